from mikrobot_tui.cli import main

main()
