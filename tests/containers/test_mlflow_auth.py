"""MLflow basic auth in both containers: credentials from the Secrets Manager secret the
pipelines name in MLFLOW_CREDENTIALS_SECRET_ARN (moto's Secrets Manager)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from iris_inference import cli as inference_cli
from iris_training import cli as training_cli
from mlops_runtime import mlflow_auth
from moto import mock_aws

from tests.containers.conftest import (
    INFERENCE_CODE,
    TRAINING_CODE,
    TrainingRun,
    image_path,
    sagemaker_tree,
)

REGION = "eu-west-1"
PASSWORD = "s3cret-Pa55word-never-logged"
# One module, built into both images (containers/shared/mlops_runtime).
MODULES = [pytest.param(mlflow_auth, id="mlops_runtime")]
Auth = ModuleType


@pytest.fixture
def secrets() -> Iterator[Callable[..., str]]:
    """Creates a secret in moto and returns its ARN."""
    with mock_aws():
        client = boto3.client("secretsmanager", region_name=REGION)

        def create(value: str | None = None, binary: bytes | None = None) -> str:
            kwargs: dict[str, Any] = {"Name": f"mlflow-client-{len(created)}"}
            if binary is not None:
                kwargs["SecretBinary"] = binary
            else:
                kwargs["SecretString"] = value
            arn = str(client.create_secret(**kwargs)["ARN"])
            created.append(arn)
            return arn

        created: list[str] = []
        yield create


@pytest.mark.parametrize("auth", MODULES)
def test_credentials_come_from_the_secret(auth: Auth, secrets: Callable[..., str]) -> None:
    arn = secrets(json.dumps({"username": "mlflow-client", "password": PASSWORD}))
    assert auth.credentials_from_secret({"MLFLOW_CREDENTIALS_SECRET_ARN": arn}) == {
        "MLFLOW_TRACKING_USERNAME": "mlflow-client",
        "MLFLOW_TRACKING_PASSWORD": PASSWORD,
    }


@pytest.mark.parametrize("auth", MODULES)
def test_a_username_already_set_wins_and_no_secret_means_nothing(auth: Auth) -> None:
    # No AWS mock: reaching Secrets Manager here would fail the test.
    arn = f"arn:aws:secretsmanager:{REGION}:123456789012:secret:unreachable-AbCdEf"
    preset = {"MLFLOW_CREDENTIALS_SECRET_ARN": arn, "MLFLOW_TRACKING_USERNAME": "me"}
    assert auth.credentials_from_secret(preset) == {}
    assert auth.credentials_from_secret({"MLFLOW_TRACKING_URI": "http://mlflow"}) == {}


@pytest.mark.parametrize("auth", MODULES)
@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("not json", 'the secret is not JSON {"username": ..., "password": ...}'),
        ('["a", "b"]', 'the secret is not a JSON object {"username": ..., "password": ...}'),
        (json.dumps({"password": PASSWORD}), "the secret has no non-empty string username"),
        (json.dumps({"username": "u", "password": ""}), "no non-empty string password"),
        (json.dumps({"user": "u", "pass": PASSWORD}), "no non-empty string username or password"),
        (b"\x00binary", "the secret has no SecretString"),
    ],
)
def test_an_unusable_secret_is_one_line_naming_it(
    auth: Auth, secrets: Callable[..., str], value: str | bytes, reason: str
) -> None:
    arn = secrets(binary=value) if isinstance(value, bytes) else secrets(value)
    with pytest.raises(auth.UserError) as caught:
        auth.credentials_from_secret({"MLFLOW_CREDENTIALS_SECRET_ARN": arn})
    message = str(caught.value)
    assert message.startswith(f"MLflow credentials secret MLFLOW_CREDENTIALS_SECRET_ARN={arn} ")
    assert message.endswith(reason)
    assert "\n" not in message and PASSWORD not in message


@pytest.mark.parametrize("auth", MODULES)
def test_an_unreadable_secret_names_the_service_error(
    auth: Auth, secrets: Callable[..., str]
) -> None:
    secrets("{}")  # the mock is on; this ARN does not exist
    arn = f"arn:aws:secretsmanager:{REGION}:123456789012:secret:missing-AbCdEf"
    with pytest.raises(auth.UserError, match=r"missing-AbCdEf unusable: ResourceNotFoundException"):
        auth.credentials_from_secret({"MLFLOW_CREDENTIALS_SECRET_ARN": arn})


def test_training_fails_in_one_line_and_writes_the_failure_file(
    tmp_path: Path, secrets: Callable[..., str], capsys: pytest.CaptureFixture[str]
) -> None:
    arn = secrets(json.dumps({"password": PASSWORD}))
    base = sagemaker_tree(tmp_path / "opt-ml")
    env = {
        "SAGEMAKER_BASE_DIR": str(base),
        "MLFLOW_TRACKING_URI": "http://mlflow.invalid",
        "MLFLOW_CREDENTIALS_SECRET_ARN": arn,
    }
    assert training_cli.main(["train"], env) == 1
    err = capsys.readouterr().err
    expected = (
        f"error: MLflow credentials secret MLFLOW_CREDENTIALS_SECRET_ARN={arn} unusable: "
        "the secret has no non-empty string username\n"
    )
    assert err == expected
    assert TrainingRun(1, base).failure == expected
    assert PASSWORD not in err


def test_inference_sets_the_credentials_before_it_talks_to_mlflow(
    tmp_path: Path, secrets: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Registered for undo, so the credentials main() sets do not leak into other tests.
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "")
    arn = secrets(json.dumps({"username": "mlflow-client", "password": PASSWORD}))
    env = {
        "MLFLOW_TRACKING_URI": "sqlite://",  # an empty store: no production alias, exit 1
        "SAGEMAKER_BASE_DIR": str(tmp_path),
        "MLFLOW_CREDENTIALS_SECRET_ARN": arn,
    }
    assert inference_cli.main([], env) == 1
    assert os.environ["MLFLOW_TRACKING_USERNAME"] == "mlflow-client"
    assert os.environ["MLFLOW_TRACKING_PASSWORD"] == PASSWORD


def test_inference_stops_on_an_unreadable_secret(
    tmp_path: Path, secrets: Callable[..., str], capsys: pytest.CaptureFixture[str]
) -> None:
    arn = secrets("not json")
    env = {
        "MLFLOW_TRACKING_URI": "http://mlflow.invalid",
        "SAGEMAKER_BASE_DIR": str(tmp_path),
        "MLFLOW_CREDENTIALS_SECRET_ARN": arn,
    }
    assert inference_cli.main([], env) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"error: MLflow credentials secret MLFLOW_CREDENTIALS_SECRET_ARN={arn} ")


# --- an unreachable tracking server fails fast (issue 13) -----------------------------------


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # closed again when the block ends


@dataclass(frozen=True)
class Unreachable:
    uri: str
    done: subprocess.CompletedProcess[str]
    seconds: float  # from the process's start to its exit


def _run_against_a_closed_port(image: str, base: Path) -> Unreachable:
    uri = f"http://127.0.0.1:{_closed_port()}"
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": uri,
        "SAGEMAKER_BASE_DIR": str(base),
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    for name in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT"):
        env.pop(name, None)
    if image == "inference":
        (base / "processing" / "input").mkdir(parents=True)
        (base / "processing" / "input" / "day.csv").write_text("sepal_length\n1\n")
    code, module = {
        "training": (TRAINING_CODE, "iris_training"),
        "inference": (INFERENCE_CODE, "iris_inference"),
    }[image]
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", module],
        env={**env, "PYTHONPATH": image_path(code)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return Unreachable(uri, done, time.monotonic() - started)


IMAGES = ("training", "inference")


@pytest.fixture(scope="module")
def unreachable(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, Future[Unreachable]]]:
    """Both images against a closed port, side by side: each spends most of its few seconds
    asleep in the client's retry backoff, which is what the test measures."""
    with ThreadPoolExecutor(max_workers=len(IMAGES)) as pool:
        yield {
            image: pool.submit(_run_against_a_closed_port, image, tmp_path_factory.mktemp(image))
            for image in IMAGES
        }


@pytest.mark.slow
@pytest.mark.xdist_group("unreachable-tracking-server")  # one worker starts both runs
@pytest.mark.parametrize("image", IMAGES)
def test_an_unreachable_tracking_server_fails_within_30_seconds_naming_it(
    unreachable: dict[str, Future[Unreachable]], image: str
) -> None:
    run = unreachable[image].result()
    assert run.done.returncode == 1, run.done.stderr
    last = run.done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: MLflow at {run.uri} is unreachable"), run.done.stderr
    assert "Traceback" not in run.done.stderr
    assert run.seconds < 30, f"{run.seconds:.1f} s"
