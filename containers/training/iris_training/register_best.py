"""`python -m iris_training.register_best --training-job-name NAME --min-accuracy X`.

The step after a tuning step (tuning_contract.REGISTER_BEST_ENTRYPOINT): a SageMaker processing
job on the training image, with the training data at tuning_contract.REGISTER_DATA_DIR and the
same MLflow environment as training. It finds the MLflow run of the tuning step's best training
job, re-evaluates that run's model on the same held-out rows, applies the plain training's
quality gate, registers the model and moves the production alias only when the gate passes
(iris_training.best). Exit 0 for both gate outcomes; any failure exits 1 with one line.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import re
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path

from mlops_runtime.logs import configure_logging
from mlops_runtime.mlflow_auth import credentials_from_secret, http_environment

from iris_training.cli import fail_job
from iris_training.contract import DEFAULT_BASE_DIR, TrainingPaths
from iris_training.errors import UserError
from iris_training.settings import RunSettings
from iris_training.tuning_contract import REGISTER_DATA_DIR

log = logging.getLogger("iris_training")

# CreateTrainingJob's TrainingJobName pattern (botocore sagemaker service-2.json).
_JOB_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    args = _parser().parse_args(argv)
    env = os.environ if env is None else env
    configure_logging(log)
    paths = TrainingPaths.from_env(env)
    try:
        job_name = _job_name(args.training_job_name)
        min_accuracy = _min_accuracy(args.min_accuracy)
        settings = RunSettings.from_env(env)
        data_dir = Path(args.data_dir) if args.data_dir else _default_data_dir(paths)
        os.environ.update(http_environment(env))  # bounded retries: fail fast, name the server
        os.environ.update(credentials_from_secret(env))  # MLflow basic auth, when configured
        from iris_training.best import register_best  # noqa: PLC0415 -- mlflow import is slow; bad input fails fast

        result = register_best(
            job_name=job_name,
            min_accuracy=min_accuracy,
            settings=settings,
            data_dir=data_dir,
            output_dir=paths.output_data_dir,
        )
    except UserError as err:
        return fail_job(paths, f"error: {err}")
    except Exception as err:  # a bug or an outage: keep the traceback
        traceback.print_exc()
        return fail_job(paths, f"unexpected error: {type(err).__name__}: {err}")
    print(json.dumps(result.to_json()), flush=True)
    return 0


def _default_data_dir(paths: TrainingPaths) -> Path:
    """REGISTER_DATA_DIR under SAGEMAKER_BASE_DIR (the same root the training contract moves)."""
    return paths.base / Path(REGISTER_DATA_DIR).relative_to(DEFAULT_BASE_DIR)


def _job_name(value: str) -> str:
    if not _JOB_NAME.match(value):
        raise UserError(
            f"--training-job-name {value!r} is not a SageMaker training job name "
            "(1-63 letters, digits or '-', starting and ending with a letter or digit)"
        )
    return value


def _min_accuracy(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not 0.0 <= number <= 1.0:  # also refuses nan
        raise UserError(f"--min-accuracy {value!r} is not a number between 0 and 1")
    return number


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m iris_training.register_best",
        description="Gate and register the model of a tuning step's best training job. "
        "Finds its MLflow run by the tag sagemaker.training_job_name, re-evaluates it on the "
        "held-out rows of the data at --data-dir (default "
        "$SAGEMAKER_BASE_DIR/processing/input/train), applies the quality gate, registers it as "
        "MODEL_NAME and moves the production alias when the gate passes. Settings as for "
        "training: MLFLOW_TRACKING_URI, MLFLOW_EXPERIMENT_NAME, MODEL_NAME, "
        "PIPELINE_EXECUTION_ID, MLFLOW_CREDENTIALS_SECRET_ARN. The decision goes to "
        "$SAGEMAKER_BASE_DIR/output/data/evaluation.json and stdout.",
    )
    parser.add_argument("--training-job-name", required=True, help="the best training job")
    parser.add_argument("--min-accuracy", required=True, help="the gate's bar, 0-1")
    parser.add_argument("--data-dir", help="the training data (CSV files)")
    return parser


if __name__ == "__main__":
    raise SystemExit(main())
