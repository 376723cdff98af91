"""User-facing errors: one line saying what went wrong and how to fix it; the CLI prints them, no traceback."""

from __future__ import annotations


class ClientError(Exception):
    """An error the user can act on. ``str(err)`` is the complete one-line message."""

    exit_code = 1


class UsageError(ClientError):
    """A bad flag or flag combination (exit status 2, like argparse)."""

    exit_code = 2
