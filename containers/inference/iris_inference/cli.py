"""Command line: `python -m iris_inference [--date YYYY-MM-DD] [--generate-rows N] ...`.

Exit status 0 when the partition is published (sharded mode: when this host's shard is
staged, complete marker last); 1 with one line on stderr when anything stops the run (nothing
partial is left behind: no complete marker, the previous partition whole); 2 for unknown
options.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import traceback
from collections.abc import Mapping, Sequence
from types import FrameType

from mlops_runtime.logs import configure_logging
from mlops_runtime.mlflow_auth import credentials_from_secret, http_environment

from iris_inference.errors import UserError
from iris_inference.settings import load_settings

log = logging.getLogger("iris_inference")


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    configure_logging(log)
    # StopProcessingJob sends SIGTERM: unwind so the staging directory is removed.
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        settings = load_settings(argv, env)
        os.environ.update(http_environment(env))  # bounded retries: fail fast, name the server
        os.environ.update(credentials_from_secret(env))  # MLflow basic auth, when configured
        from iris_inference.score import run  # noqa: PLC0415 -- mlflow import is slow; bad settings fail fast

        summary = run(settings)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        return 1
    except Exception as err:  # a bug or an outage: keep the traceback, end on one line
        traceback.print_exc()
        print(f"unexpected error: {type(err).__name__}: {err}", file=sys.stderr, flush=True)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(json.dumps(summary), flush=True)
    return 0


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)
