"""The preflight entry point against moto S3 and a real MLflow store: ready, not ready (with the
reason), and "cannot check" (the only case that fails the step, and so raises the alarm)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from iris_inference import preflight_contract as contract
from iris_inference.preflight import main
from mlflow import MlflowClient
from moto import mock_aws

from tests.containers.conftest import INFERENCE_CODE, MODEL_NAME, Store, new_store, run_module

BUCKET = "data-bucket"
TRAINING = f"s3://{BUCKET}/iris/training/"
INPUT = f"s3://{BUCKET}/iris/inference-input/"
# MLflow's HTTP client retries with backoff (minutes) by default; the failure case must be quick.
NO_RETRIES = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="eu-west-1")
        client.create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
        )
        yield client


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return new_store(tmp_path / "store")


def _promote(store: Store, tmp_path: Path, alias: str | None = "production") -> str:
    """A registered version (no training needed: the preflight only resolves the alias)."""
    client = MlflowClient(store.tracking_uri)
    client.create_registered_model(MODEL_NAME)
    version = client.create_model_version(MODEL_NAME, source=(tmp_path / "model").as_uri())
    if alias is not None:
        client.set_registered_model_alias(MODEL_NAME, alias, version.version)
    return str(version.version)


def _decide(
    tmp_path: Path, args: list[str], env: dict[str, str], s3: Any = None
) -> tuple[int, dict[str, Any] | None]:
    out = tmp_path / "decision"
    code = main([*args, contract.OUTPUT_FLAG, str(out)], env, s3=s3)
    path = out / contract.FILE_NAME
    return code, (json.loads(path.read_text()) if path.exists() else None)


# --- S3 prefixes (training) -------------------------------------------------------------------


def test_an_empty_training_prefix_is_a_skip_with_its_reason(s3: Any, tmp_path: Path) -> None:
    code, decision = _decide(tmp_path, [contract.OBJECTS_FLAG, TRAINING], {}, s3)
    assert code == 0  # decided: a skip is not a failure
    assert decision is not None
    assert decision[contract.READY] is False
    assert decision[contract.REASON] == f"skipped: no object under {TRAINING}"
    assert set(decision) == {contract.READY, contract.REASON, contract.CHECKS}


def test_an_object_under_every_prefix_is_ready(s3: Any, tmp_path: Path) -> None:
    s3.put_object(Bucket=BUCKET, Key="iris/training/iris.csv", Body=b"x")
    extra = f"s3://{BUCKET}/iris/extra/"
    args = [contract.OBJECTS_FLAG, TRAINING, contract.OBJECTS_FLAG, extra]
    code, decision = _decide(tmp_path, args, {}, s3)
    assert code == 0 and decision is not None
    assert decision[contract.READY] is False  # the extra channel is still empty
    assert decision[contract.REASON] == f"skipped: no object under {extra}"
    s3.put_object(Bucket=BUCKET, Key="iris/extra/more.csv", Body=b"x")
    code, decision = _decide(tmp_path, args, {}, s3)
    assert code == 0 and decision is not None
    assert decision[contract.READY] is True
    assert "iris/training/iris.csv" in decision[contract.REASON]


def test_objects_beside_the_prefix_do_not_count(s3: Any, tmp_path: Path) -> None:
    s3.put_object(Bucket=BUCKET, Key="iris/training-old/iris.csv", Body=b"x")
    code, decision = _decide(tmp_path, [contract.OBJECTS_FLAG, TRAINING], {}, s3)
    assert code == 0 and decision is not None and decision[contract.READY] is False


def test_an_unreadable_bucket_cannot_be_checked_and_fails(
    s3: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uri = "s3://no-such-bucket/iris/training/"
    code, decision = _decide(tmp_path, [contract.OBJECTS_FLAG, uri], {}, s3)
    assert code == 1 and decision is None  # no decision: the step fails, the alarm fires
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"error: cannot list {uri}: NoSuchBucket")


def test_a_malformed_uri_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = _decide(tmp_path, [contract.OBJECTS_FLAG, "iris/training/"], {})
    assert code == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == (
        f"error: {contract.OBJECTS_FLAG}='iris/training/' is not an s3://bucket/prefix URI"
    )


# --- the model alias (inference) --------------------------------------------------------------


def test_no_registered_model_is_a_skip(s3: Any, store: Store, tmp_path: Path) -> None:
    s3.put_object(Bucket=BUCKET, Key="iris/inference-input/day.csv", Body=b"x")
    args = [contract.OBJECTS_FLAG, INPUT, contract.ALIAS_FLAG]
    code, decision = _decide(tmp_path, args, store.env(MODEL_ALIAS="production"), s3)
    assert code == 0 and decision is not None
    assert decision[contract.READY] is False
    assert decision[contract.REASON] == (
        f"skipped: registered model {MODEL_NAME!r} does not exist (no training run registered it)"
    )


def test_a_model_without_the_alias_is_a_skip_and_both_reasons_are_given(
    s3: Any, store: Store, tmp_path: Path
) -> None:
    _promote(store, tmp_path, alias=None)
    args = [contract.OBJECTS_FLAG, INPUT, contract.ALIAS_FLAG]
    code, decision = _decide(tmp_path, args, store.env(MODEL_ALIAS="production"), s3)
    assert code == 0 and decision is not None
    assert decision[contract.READY] is False
    assert decision[contract.REASON] == (
        f"skipped: no object under {INPUT}; registered model {MODEL_NAME!r} has no "
        "'production' alias (none passed the gate)"
    )
    assert [c["ok"] for c in decision[contract.CHECKS]] == [False, False]


def test_input_and_alias_make_it_ready(s3: Any, store: Store, tmp_path: Path) -> None:
    version = _promote(store, tmp_path)
    s3.put_object(Bucket=BUCKET, Key="iris/inference-input/_KEEP", Body=b"")
    args = [contract.OBJECTS_FLAG, INPUT, contract.ALIAS_FLAG]
    code, decision = _decide(tmp_path, args, store.env(MODEL_ALIAS="production"), s3)
    assert code == 0 and decision is not None
    assert decision[contract.READY] is True
    assert f"models:/{MODEL_NAME}@production is version {version}" in decision[contract.REASON]


def test_an_unreachable_mlflow_cannot_be_checked_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in NO_RETRIES.items():
        monkeypatch.setenv(name, value)
    env = {"MLFLOW_TRACKING_URI": "http://127.0.0.1:9", "MODEL_NAME": MODEL_NAME, **NO_RETRIES}
    code, decision = _decide(tmp_path, [contract.ALIAS_FLAG], env)
    assert code == 1 and decision is None
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1].startswith(
        f"error: cannot check models:/{MODEL_NAME}@production in MLflow at http://127.0.0.1:9: "
    )
    assert len(lines) == 1, lines


def test_the_module_runs_as_the_step_starts_it(store: Store, tmp_path: Path) -> None:
    # `python -m iris_inference.preflight` (the step's ContainerEntrypoint), fresh interpreter.
    assert contract.ENTRYPOINT == ("python", "-m", contract.MODULE)
    out = tmp_path / "decision"
    result = run_module(
        contract.MODULE,
        [contract.ALIAS_FLAG, contract.OUTPUT_FLAG, str(out)],
        store.env(MODEL_ALIAS="production"),
        INFERENCE_CODE,
    )
    assert result.returncode == 0, result.stderr
    decision = json.loads((out / contract.FILE_NAME).read_text())
    assert decision[contract.READY] is False
    assert result.stdout.strip().splitlines()[-1].startswith("preflight skipped: registered model")


def test_the_aws_calls_the_preflight_makes(s3: Any, store: Store, tmp_path: Path) -> None:
    # For the permissions check (issue 11, class 3): every AWS API call, recorded by a botocore
    # event hook. MLflow's own call (GetModelVersionByAlias) goes to the tracking server, signed
    # with SigV4 in the SageMaker modes; with a self-hosted server the container first reads the
    # basic-auth secret (secretsmanager:GetSecretValue, mlops_runtime.mlflow_auth).
    calls: list[str] = []
    s3.meta.events.register("before-call.*.*", lambda model, **_: calls.append(f"s3:{model.name}"))
    args = [contract.OBJECTS_FLAG, TRAINING, contract.OBJECTS_FLAG, INPUT, contract.ALIAS_FLAG]
    code, _ = _decide(tmp_path, args, store.env(MODEL_ALIAS="production"), s3)
    assert code == 0
    assert calls == ["s3:ListObjectsV2", "s3:ListObjectsV2"]  # IAM: s3:ListBucket, one per prefix
