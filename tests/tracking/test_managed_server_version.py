"""The job images' code against a real MLflow server of the version the managed mode runs.

SageMaker's newest documented tracking-server version is 3.0 (AWS: "For tracking server
3.0.x, use mlflow==3.0.0"), but the job images need a newer client (the training code logs
skops models, which MLflow 3.0 cannot). So the pair the template deploys, a 3.0 server and the
images' client, is run for real: an open-source MLflow server of that version (installed once
from the lock file beside this test into .local/, ~3 minutes) and the training and inference
entry points in this process with the images' MLflow, through two trainings (register,
promote, then a challenger against the champion) and a scoring run. What this cannot show:
SageMaker's own build of that server (its SigV4 front end, its patches).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.containers.conftest import SMALL_FOREST, sagemaker_tree
from tests.synth import ROOT
from tests.tracking.databases import LOOPBACK, free_port

LOCKS = sorted(Path(__file__).parent.glob("mlflow-server-*.txt"))
VENVS = ROOT / ".local" / "mlflow-servers"


def server_versions() -> list[str]:
    """The server versions (major.minor) with a lock file: the versions this test covers."""
    return [lock.stem.removeprefix("mlflow-server-") for lock in LOCKS]


def _server_venv(version: str) -> Path:
    """A venv with the locked server, created on first use (pip from the package index)."""
    venv = VENVS / version
    lock = Path(__file__).parent / f"mlflow-server-{version}.txt"
    stamp = venv / ".installed"
    if stamp.exists() and stamp.read_text() == lock.read_text():
        return venv
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True, timeout=300)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "--no-deps", "-r", str(lock)], check=True, timeout=1800)
    stamp.write_text(lock.read_text())
    return venv


@pytest.fixture(params=server_versions())
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    venv = _server_venv(str(request.param))
    port = free_port()
    log = tmp_path / "server.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [
                str(venv / "bin" / "python"), "-m", "mlflow", "server",
                f"--host={LOOPBACK}", f"--port={port}", "--workers=1",
                f"--backend-store-uri=sqlite:///{tmp_path / 'mlflow.db'}",
                "--serve-artifacts", f"--artifacts-destination={tmp_path / 'artifacts'}",
            ],
            env={"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "MLFLOW_DISABLE_TELEMETRY": "true"},
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    uri = f"http://{LOOPBACK}:{port}"
    try:
        deadline = time.monotonic() + 240
        while True:
            assert process.poll() is None, log.read_text()[-3000:]
            try:
                version = requests.get(f"{uri}/version", timeout=10).text
                break
            except requests.RequestException:
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.5)
        assert version.startswith(f"{request.param}."), version
        yield uri
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)


@pytest.mark.slow
def test_training_and_inference_work_against_the_managed_servers_version(
    server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from iris_inference.cli import main as infer_main  # noqa: PLC0415
    from iris_training.cli import main as train_main  # noqa: PLC0415
    from mlflow import MlflowClient  # noqa: PLC0415

    env = {
        "MLFLOW_TRACKING_URI": server,
        "MLFLOW_EXPERIMENT_NAME": "managed-version",
        "MODEL_NAME": "iris-model",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    for run in ("first", "challenger"):
        base = sagemaker_tree(tmp_path / run, SMALL_FOREST)
        assert train_main(["train"], {**env, "SAGEMAKER_BASE_DIR": str(base)}) == 0, run
    champion = MlflowClient(server).get_model_version_by_alias("iris-model", "production")
    assert champion.version in ("1", "2")
    scoring = tmp_path / "scoring"
    day = scoring / "processing" / "input"
    day.mkdir(parents=True)
    (day / "day.csv").write_text(
        "sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n"
    )
    assert infer_main([], {**env, "SAGEMAKER_BASE_DIR": str(scoring)}) == 0
