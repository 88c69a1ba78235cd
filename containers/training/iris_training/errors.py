"""Errors the caller can fix: reported as one line, never as a traceback.

One class for both images and their shared code (mlops_runtime), so a CLI catches them all.
"""

from mlops_runtime.errors import UserError

__all__ = ["UserError"]
