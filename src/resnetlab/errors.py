"""Errors a user can cause (a bad option, a missing or corrupt file).

The CLI prints them as one line and exits with code 2; everything else is a bug and keeps its
traceback. They subclass ``ValueError`` so that library callers can catch them the usual way.
"""

from __future__ import annotations


class UserError(ValueError):
    """A problem with what the user asked for or gave us, stated in one line."""


class ConfigError(UserError):
    """A bad option, argument or configuration value."""


class DataError(UserError):
    """A missing, corrupt or malformed dataset file."""


class MissingSplitError(DataError):
    """A dataset split whose files are absent (the other split may still be there)."""


class CheckpointError(UserError):
    """A missing, corrupt, unsafe or mismatched checkpoint."""


def check_choice(name: str, value: object, allowed: list | tuple) -> None:
    """Raise ``ConfigError`` unless ``value`` is one of ``allowed``.

    Args:
        name: the argument's name, as the user wrote it.
        value: the value given.
        allowed: the accepted values.
    """
    if value not in allowed:
        choices = ", ".join(repr(a) for a in allowed)
        raise ConfigError(f"{name} must be one of {choices}; got {value!r}")
