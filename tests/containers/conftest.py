"""Fixtures for the ML containers: throwaway MLflow stores and SageMaker-shaped directories.

Entry points run in-process through their `main(argv, env)` (same code as `python -m ...`,
without paying the interpreter and import start-up each time); a few tests run them as real
subprocesses to pin the command-line contract.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import skops.io  # noqa: F401 -- first: see the comment below the imports
from iris_inference.drift import INFERENCE_EXPERIMENT
from iris_training.cli import main as train_main
from mlflow import MlflowClient

# skops (the format MLflow keeps the models in) builds its trusted-type lists when imported,
# looking each numpy and scipy ufunc up in sys.modules, in load order (skops/io/_utils.py
# whichmodule). Imported here, during collection and before MLflow and the tests' other
# imports, that walk is short: the import takes about 0.4 s, against 1.7-2 s when the first
# model save imported it into a process that had loaded the rest.
ROOT = Path(__file__).resolve().parents[2]
TRAINING_CODE = ROOT / "containers" / "training"
INFERENCE_CODE = ROOT / "containers" / "inference"
SHARED_CODE = ROOT / "containers" / "shared"  # mlops_runtime, in both images
EXPERIMENT = "iris-tests"
MODEL_NAME = "iris-model"
# Hyperparameters no forest can pass the default gate with: a single stump separates one
# species of three, so its accuracy is at most 2/3 on a stratified held-out set.
HOPELESS = {"n_estimators": "1", "max_depth": "1"}
# Enough trees to pass the default gate on Iris, and a tenth of the default 100 to save, log
# and load: the champion's model is loaded some 100 times a run (0.03 s against 0.09 s each),
# and what the tests check does not depend on the forest's size. The default forest is
# trained by the end-to-end tests.
SMALL_FOREST = {"n_estimators": "10"}


@dataclass(frozen=True)
class Store:
    """A SQLite MLflow store (no server) with its artifacts in the same temporary tree."""

    root: Path

    @property
    def tracking_uri(self) -> str:
        return f"sqlite:///{self.root / 'mlflow.db'}"

    def env(self, **extra: str) -> dict[str, str]:
        return {
            "MLFLOW_TRACKING_URI": self.tracking_uri,
            "MLFLOW_EXPERIMENT_NAME": EXPERIMENT,
            "MODEL_NAME": MODEL_NAME,
            "MLFLOW_DISABLE_TELEMETRY": "true",
            **extra,
        }

    def client(self) -> MlflowClient:
        return MlflowClient(self.tracking_uri)

    def production_version(self) -> str:
        return str(self.client().get_model_version_by_alias(MODEL_NAME, "production").version)

    def version_tags(self, version: str) -> dict[str, str]:
        return dict(self.client().get_model_version(MODEL_NAME, version).tags)


@functools.cache
def _migrated_empty_database() -> bytes:
    """The bytes of an MLflow SQLite database with every schema migration applied and nothing
    logged, made once per process. Opening a new SQLite store runs MLflow's alembic migrations
    from the first (mlflow/store/db/utils.py `_initialize_tables`), about 1 s each time; an
    up-to-date copy is opened as it is (the schema is checked, not migrated again)."""
    with tempfile.TemporaryDirectory(prefix="mlflow-template-") as tmp:
        database = Path(tmp) / "mlflow.db"
        MlflowClient(f"sqlite:///{database}").search_experiments()  # creates and migrates it
        return database.read_bytes()


def new_store(root: Path) -> Store:
    root.mkdir(parents=True, exist_ok=True)
    store = Store(root)
    (root / "mlflow.db").write_bytes(_migrated_empty_database())
    # Created up front so artifacts land in the temporary tree, not under the working directory.
    MlflowClient(store.tracking_uri).create_experiment(
        EXPERIMENT, artifact_location=(root / "artifacts").as_uri()
    )
    # Where the inference job logs its drift report (one run per scored partition).
    MlflowClient(store.tracking_uri).create_experiment(
        INFERENCE_EXPERIMENT, artifact_location=(root / "inference-artifacts").as_uri()
    )
    return store


@dataclass(frozen=True)
class TrainingRun:
    exit_code: int
    base: Path  # SAGEMAKER_BASE_DIR of the run

    @property
    def evaluation(self) -> dict[str, Any]:
        path = self.base / "output" / "data" / "evaluation.json"
        return dict(json.loads(path.read_text()))

    @property
    def failure(self) -> str | None:
        path = self.base / "output" / "failure"
        return path.read_text() if path.exists() else None


def sagemaker_tree(
    base: Path, hyperparameters: Mapping[str, str] | None = None, train_csv: str | None = None
) -> Path:
    """What SageMaker lays out before starting a training container."""
    config = base / "input" / "config"
    config.mkdir(parents=True, exist_ok=True)
    (config / "hyperparameters.json").write_text(json.dumps(dict(hyperparameters or {})))
    if train_csv is not None:
        channel = base / "input" / "data" / "train"
        channel.mkdir(parents=True, exist_ok=True)
        (channel / "iris.csv").write_text(train_csv)
    return base


def train(
    store: Store,
    base: Path,
    hyperparameters: Mapping[str, str] | None = None,
    **env: str,
) -> TrainingRun:
    sagemaker_tree(base, hyperparameters)
    code = train_main(["train"], {**store.env(**env), "SAGEMAKER_BASE_DIR": str(base)})
    return TrainingRun(code, base)


def image_path(code: Path) -> str:
    """PYTHONPATH of an image's code as its /opt/program holds it: its package and mlops_runtime."""
    return os.pathsep.join([str(code), str(SHARED_CODE)])


def run_module(
    module: str, args: list[str], env: Mapping[str, str], code: Path
) -> subprocess.CompletedProcess[str]:
    """`python -m module args` as SageMaker would start it (a fresh interpreter)."""
    full_env = {**os.environ, **env, "PYTHONPATH": image_path(code)}
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="session")
def champion(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, TrainingRun]:
    """A store whose production alias holds a version trained on :data:`SMALL_FOREST`.

    Tests may add rejected versions to it but must never move the alias.
    """
    root = tmp_path_factory.mktemp("champion")
    store = new_store(root / "store")
    run = train(store, root / "opt-ml", SMALL_FOREST, PIPELINE_EXECUTION_ID="pipeline-exec-0001")
    assert run.exit_code == 0, run.failure
    return store, run
