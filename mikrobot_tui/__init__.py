"""mikrobot_tui: a terminal trading cockpit that paper-trades live markets."""

__version__ = "0.1.0"
