"""The recording plugin's map from code to actor (tests/iam/recording.py) covers every piece of
runtime code in the repository, and code both job images carry counts for the right image."""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

from tests.iam.recording import ACTOR_CODE, ROOT, SHARED_CODE, actors_of

# Runtime code that makes no AWS call of its own (the MLflow server's start-up: its database
# and secrets come in as environment variables).
NO_AWS_CALLS = {"containers/tracking"}


def test_every_runtime_code_folder_has_an_actor() -> None:
    folders = {
        folder
        for base in ("containers", "lambda")
        for folder in (ROOT / base).iterdir()
        if folder.is_dir() and any(folder.rglob("*.py"))
    }
    mapped = {prefix for prefix, _ in ACTOR_CODE} | {prefix for prefix, _ in SHARED_CODE}
    unmapped = {
        str(f.relative_to(ROOT))
        for f in folders
        if str(f) + "/" not in mapped and str(f.relative_to(ROOT)) not in NO_AWS_CALLS
    }
    assert unmapped == set(), "add these to ACTOR_CODE or SHARED_CODE in tests/iam/recording.py"


def _in_file(path: str, function: Callable[[], Any]) -> Any:
    """Call ``function`` from a frame whose code says it is in ``path`` (as if that file called)."""
    namespace: dict[str, Any] = {}
    exec(compile("def call(f):\n    return f()\n", path, "exec"), namespace)
    return namespace["call"](function)


def _here() -> FrameType:
    return sys._getframe(1)


def test_shared_code_counts_for_the_image_that_called_it_or_for_both() -> None:
    shared = str(ROOT / "containers/shared/mlops_runtime/mlflow_auth.py")
    training = str(ROOT / "containers/training/iris_training/cli.py")
    inference = str(ROOT / "containers/inference/iris_inference/cli.py")

    def from_shared() -> Any:
        return _in_file(shared, lambda: actors_of(_here()))

    assert _in_file(training, from_shared) == (
        ("training-job",),
        "containers/shared/mlops_runtime/mlflow_auth.py:2",
    )
    assert _in_file(inference, from_shared)[0] == ("inference-job",)
    assert from_shared()[0] == ("training-job", "inference-job")  # called from a test
    assert actors_of(_here()) == ((), "")  # test code alone: no actor
