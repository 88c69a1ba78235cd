"""Errors the caller can fix: reported as one line, never as a traceback."""


class UserError(Exception):
    """A bad setting, hyperparameter or input, a missing model alias or an unreadable secret;
    the message names it and what is allowed."""
