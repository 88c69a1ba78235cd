"""Errors the caller can fix: reported as one line, never as a traceback."""


class UserError(Exception):
    """A bad hyperparameter, setting or input file; the message names it and what is allowed."""
