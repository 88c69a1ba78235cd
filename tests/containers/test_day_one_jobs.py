"""Day one, the other path: a job started anyway (the Lambda launcher, a manual start of the job,
a pipeline run with the condition bypassed) still fails loudly, with one line.

Read-only checks of the job containers as they are: with no `production` alias or no input
they exit 1 with one `error: ...` line on stderr (the job's FailureReason / log), which makes
the job and so the execution Failed, and the failure alarm fires. The preflight reports the
same conditions as a skip (tests/containers/test_preflight.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from iris_inference.cli import main as inference_main
from iris_training.cli import main as train_main
from mlflow import MlflowClient

from tests.containers.conftest import (
    INFERENCE_CODE,
    MODEL_NAME,
    Store,
    new_store,
    run_module,
    sagemaker_tree,
)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return new_store(tmp_path / "store")


DAY_CSV = "sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,1.4,0.2\n"


def _day_input(tmp_path: Path, *, rows: bool = True) -> Path:
    """The day's input directory; with ``rows`` one valid CSV, so the model is what fails."""
    (tmp_path / "input").mkdir(exist_ok=True)
    if rows:
        (tmp_path / "input" / "day.csv").write_text(DAY_CSV)
    return tmp_path / "input"


def _score(store: Store, tmp_path: Path, *, rows: bool = True, **env: str) -> int:
    _day_input(tmp_path, rows=rows)
    return inference_main(
        ["--input-dir", str(tmp_path / "input"), "--output-dir", str(tmp_path / "output")],
        store.env(MODEL_ALIAS="production", **env),
    )


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: "), lines
    return lines[0]


def test_scoring_without_a_registered_model_fails_with_one_line(
    store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _score(store, tmp_path) == 1
    line = _one_error_line(capsys)
    assert repr(MODEL_NAME) in line
    assert not (tmp_path / "output").exists() or not any((tmp_path / "output").iterdir())


def test_scoring_without_the_alias_fails_with_one_line(
    store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    client = MlflowClient(store.tracking_uri)
    client.create_registered_model(MODEL_NAME)
    client.create_model_version(MODEL_NAME, source=(tmp_path / "model").as_uri())
    assert _score(store, tmp_path) == 1
    line = _one_error_line(capsys)
    assert "'production'" in line


def test_scoring_nothing_fails_with_one_line(
    store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Rows are generated only when the demo or a benchmark asks (--generate-rows).
    assert _score(store, tmp_path, rows=False) == 1
    line = _one_error_line(capsys)
    assert str(tmp_path / "input") in line


def test_training_on_an_empty_channel_fails_with_one_line(
    store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # SageMaker itself refuses an empty S3 prefix before the container starts (a service
    # behaviour, unverified here); a channel that arrives without CSV fails in the container.
    base = sagemaker_tree(tmp_path / "opt-ml")
    (base / "input" / "data" / "train").mkdir(parents=True)
    code = train_main(["train"], {**store.env(), "SAGEMAKER_BASE_DIR": str(base)})
    assert code == 1
    line = _one_error_line(capsys)
    assert "train" in line
    assert (base / "output" / "failure").read_text().strip() == line  # the job's FailureReason


def test_the_scoring_process_exits_non_zero_with_one_line(store: Store, tmp_path: Path) -> None:
    _day_input(tmp_path)
    result = run_module(
        "iris_inference",
        ["--input-dir", str(tmp_path / "input"), "--output-dir", str(tmp_path / "output")],
        store.env(MODEL_ALIAS="production"),
        INFERENCE_CODE,
    )
    assert result.returncode == 1
    errors = [line for line in result.stderr.strip().splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    assert repr(MODEL_NAME) in errors[0]
