"""`python -m mikrobot_tui.cli`: the same program as the `mikrobot` command."""

from mikrobot_tui.cli import main

main()
