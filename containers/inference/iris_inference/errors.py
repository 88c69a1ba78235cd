"""Errors the caller can fix: reported as one line, never as a traceback."""


class UserError(Exception):
    """A bad setting, a missing model alias or an unreadable input; the message names it."""
