"""The job CLIs' logging: timestamped lines on the run's own stdout."""

from __future__ import annotations

import logging
import sys


def configure_logging(log: logging.Logger) -> None:
    """Send ``log`` (INFO and up) to this run's stdout, replacing any earlier handler."""
    # Each run logs to the stdout of that run: a handler kept from an earlier in-process run
    # (tests, an embedding caller) would otherwise write to a stream that may be closed.
    for existing in list(log.handlers):
        log.removeHandler(existing)  # no flush: its stream may already be closed
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
