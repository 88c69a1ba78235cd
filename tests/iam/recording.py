"""Record every AWS API call the project's runtime code makes in the tests (a pytest plugin).

A botocore ``before-call.*.*`` hook is registered first on every botocore session (so it runs
before a ``Stubber``'s canned response and before moto answers). For each call it walks the
Python stack to the innermost frame of runtime code (:data:`ACTOR_CODE`: the containers, the
Lambdas, the Studio start-up hook) and records ``(actor, IAM action)``; code both job images
carry (:data:`SHARED_CODE`) counts for the image that called it, or for both. Calls made by
test code itself (creating a secret in moto, say) belong to no actor and are ignored.

After each test, every recorded call must be in :data:`tests.iam.expected.CODE_CALLS` for its
actor; otherwise the test errors at teardown with the line to add. The permission check
(tests/iam/test_permissions.py) in turn simulates every ``CODE_CALLS`` entry against the
deployed policies, so a new call in the code cannot reach production unpermitted unnoticed.

Limits: calls made in a subprocess (``python -m ...`` runs, the AWS CLI in shell scripts) are
not recorded; the EC2 start-up script's CLI calls are listed in tests/iam/expected.py by hand.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Runtime code -> the actor that runs it in AWS (first match from the innermost frame).
ACTOR_CODE: tuple[tuple[str, str], ...] = (
    (str(ROOT / "containers" / "training") + "/", "training-job"),
    (str(ROOT / "containers" / "inference") + "/", "inference-job"),
    (str(ROOT / "lambda" / "launcher") + "/", "launcher"),
    (str(ROOT / "lambda" / "studio_cleanup") + "/", "studio-cleanup"),
    (str(ROOT / "lambda" / "mlflow_rotation") + "/", "mlflow-rotation"),
)
# Runtime code built into several images (containers/shared/mlops_runtime): a call made there
# belongs to the image whose code called it; called from no image's code (a test calling it
# directly), to every image that carries it.
SHARED_CODE: tuple[tuple[str, tuple[str, ...]], ...] = (
    (str(ROOT / "containers" / "shared") + "/", ("training-job", "inference-job")),
)
# The Studio lifecycle script writes this IPython start-up file into the user's home.
STUDIO_STARTUP_SUFFIX = "/.ipython/profile_default/startup/00-mlflow-tracking-uri.py"
NOT_RUNTIME = ("/tests/", "/test_")  # test helpers inside those trees are not runtime code

# Signing names that differ from the IAM service prefix.
IAM_PREFIX = {"monitoring": "cloudwatch", "email": "ses"}
# Operations whose IAM action has another name (Service Authorization Reference).
IAM_ACTION = {
    "s3:ListObjectsV2": "s3:ListBucket",
    "s3:ListObjects": "s3:ListBucket",
    "s3:HeadObject": "s3:GetObject",
    "s3:HeadBucket": "s3:ListBucket",
    "s3:CreateMultipartUpload": "s3:PutObject",
    "s3:UploadPart": "s3:PutObject",
    "s3:CompleteMultipartUpload": "s3:PutObject",
    "s3:CopyObject": "s3:PutObject",
    "lambda:Invoke": "lambda:InvokeFunction",
}


def iam_action(signing_name: str, operation: str) -> str:
    """``sagemaker.CreateTrainingJob`` -> ``sagemaker:CreateTrainingJob``."""
    action = f"{IAM_PREFIX.get(signing_name, signing_name)}:{operation}"
    return IAM_ACTION.get(action, action)


@dataclass(frozen=True)
class Recorded:
    actor: str
    action: str
    code: str  # file:line of the runtime frame that made the call


class Recorder:
    def __init__(self) -> None:
        self.calls: list[Recorded] = []
        self.seen: set[tuple[str, str]] = set()  # the whole session's (actor, action)
        self._lock = threading.Lock()

    def before_call(self, model: Any = None, **_: Any) -> None:
        if model is None:
            return
        service = model.service_model
        signing = service.signing_name or service.endpoint_prefix
        actors, code = actors_of(sys._getframe(1))
        with self._lock:
            for actor in actors:
                call = Recorded(actor, iam_action(signing, model.name), code)
                self.calls.append(call)
                self.seen.add((call.actor, call.action))

    def take(self) -> list[Recorded]:
        with self._lock:
            calls, self.calls = self.calls, []
        return calls


def actors_of(frame: FrameType | None) -> tuple[tuple[str, ...], str]:
    """The actors a call from ``frame`` is made by (none: test code) and the runtime line."""
    shared: tuple[tuple[str, ...], str] | None = None  # the innermost shared-code frame
    while frame is not None:
        filename = frame.f_code.co_filename
        where = f"{filename}:{frame.f_lineno}"
        if filename.endswith(STUDIO_STARTUP_SUFFIX):
            return ("studio-user",), shared[1] if shared else where
        if not any(part in filename for part in NOT_RUNTIME):
            where = (
                f"{Path(filename).relative_to(ROOT)}:{frame.f_lineno}"
                if filename.startswith(str(ROOT))
                else where
            )
            for prefix, actor in ACTOR_CODE:
                if filename.startswith(prefix):
                    return (actor,), shared[1] if shared else where
            for prefix, carriers in SHARED_CODE:
                if shared is None and filename.startswith(prefix):
                    shared = carriers, where
        frame = frame.f_back
    return shared if shared else ((), "")


RECORDER = Recorder()
_HOOK_ID = "tests.iam.recording"


def _hook(session: Any) -> None:
    emitter = session.get_component("event_emitter")
    emitter.register_first("before-call.*.*", RECORDER.before_call, unique_id=_HOOK_ID)


def pytest_configure(config: pytest.Config) -> None:
    import botocore.session  # noqa: PLC0415 -- only when the plugin runs

    original = botocore.session.Session.__init__
    if getattr(original, "_iam_recording", False):
        return

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        _hook(self)

    init._iam_recording = True  # type: ignore[attr-defined]
    botocore.session.Session.__init__ = init
    try:
        import boto3  # noqa: PLC0415

        if boto3.DEFAULT_SESSION is not None:
            _hook(boto3.DEFAULT_SESSION._session)
    except ImportError:
        pass


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """With IAM_RECORDED_CALLS=path, write the session's recorded calls (actor, action)."""
    import json  # noqa: PLC0415
    import os  # noqa: PLC0415

    path = os.environ.get("IAM_RECORDED_CALLS")
    if path:
        by_actor: dict[str, list[str]] = {}
        for actor, action in sorted(RECORDER.seen):
            by_actor.setdefault(actor, []).append(action)
        Path(path).write_text(json.dumps(by_actor, indent=2) + "\n")
        terminalreporter.write_line(f"recorded AWS calls by actor: {path}")


def unexpected(calls: list[Recorded]) -> list[str]:
    from tests.iam.expected import CODE_CALLS  # noqa: PLC0415 -- imports aws_cdk

    return sorted(
        {
            f"{c.actor}: {c.action} (called at {c.code}); add it to CODE_CALLS[{c.actor!r}] "
            "in tests/iam/expected.py and give the actor's role the permission"
            for c in calls
            if c.action not in CODE_CALLS.get(c.actor, frozenset())
        }
    )


@pytest.fixture(autouse=True)
def _recorded_aws_calls() -> Iterator[None]:
    """Fails the test (at teardown) when runtime code made a call its actor is not listed for."""
    RECORDER.take()
    yield
    calls = RECORDER.take()
    if calls:
        problems = unexpected(calls)
        if problems:
            pytest.fail(
                "runtime code made AWS calls that the permission check does not simulate:\n"
                + "\n".join(problems),
                pytrace=False,
            )
