"""How configuration goes wrong: an error stops the program, a warning does not."""

from __future__ import annotations


class ConfigError(Exception):
    """Bad configuration: the message names each key, its bad value and the fix."""


class ConfigWarning(UserWarning):
    """A configuration that works but is probably not what was meant (an unknown variable)."""
