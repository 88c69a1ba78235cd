"""Command line: `python -m iris_training [train]`.

SageMaker starts training images as `docker run IMAGE train`, so a lone `train` argument is
accepted. Exit status 0 covers both gate outcomes (a rejected challenger is a normal result) and a
follower host of a multi-instance job (iris_training.hosts); any failure exits 1 after writing
its reason to /opt/ml/output/failure.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import traceback
from collections.abc import Mapping, Sequence

from mlops_runtime.logs import configure_logging
from mlops_runtime.mlflow_auth import credentials_from_secret, http_environment

from iris_training.contract import TrainingPaths, read_hyperparameters, write_atomically
from iris_training.errors import UserError
from iris_training.hosts import read_cluster
from iris_training.hyperparameters import parse_hyperparameters
from iris_training.settings import RunSettings
from iris_training.tuning_contract import OBJECTIVE_METRIC

log = logging.getLogger("iris_training")


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    _parser().parse_args(argv)
    env = os.environ if env is None else env
    configure_logging(log)
    paths = TrainingPaths.from_env(env)
    try:
        cluster = read_cluster(paths.resource_config_file)
        if cluster is not None and not cluster.is_leader:
            log.info("%s", cluster.follower_line())
            return 0
        if cluster is not None and len(cluster.hosts) > 1:
            log.info(
                "host %s leads %d hosts: it alone trains", cluster.current_host, len(cluster.hosts)
            )
        hyperparameters = parse_hyperparameters(read_hyperparameters(paths.hyperparameters_file))
        settings = RunSettings.from_env(env)
        paths.check_writable()
        os.environ.update(http_environment(env))  # bounded retries: fail fast, name the server
        os.environ.update(credentials_from_secret(env))  # MLflow basic auth, when configured
        log.info("hyperparameters: %s", json.dumps(hyperparameters.model_dump(by_alias=True)))
        from iris_training.train import run_training  # noqa: PLC0415 -- mlflow import is slow; bad input fails fast

        result = run_training(hyperparameters=hyperparameters, settings=settings, paths=paths)
    except UserError as err:
        return fail_job(paths, f"error: {err}")
    except Exception as err:  # a bug or an outage: keep the traceback, SageMaker needs a reason
        traceback.print_exc()
        return fail_job(paths, f"unexpected error: {type(err).__name__}: {err}")
    print(objective_line(result.evaluation.accuracy), flush=True)
    print(json.dumps(result.to_json()), flush=True)
    return 0


def objective_line(accuracy: float) -> str:
    """What a tuning job reads from the log (tuning_contract.OBJECTIVE_REGEX): fixed-point, so
    the regex never meets an exponent."""
    return f"{OBJECTIVE_METRIC}={accuracy:.6f}"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m iris_training",
        description="Train the Iris RandomForest and promote it through the quality gate. "
        "Hyperparameters come from $SAGEMAKER_BASE_DIR/input/config/hyperparameters.json "
        "(default base /opt/ml); settings from MLFLOW_TRACKING_URI, MLFLOW_EXPERIMENT_NAME, "
        "MODEL_NAME, PIPELINE_EXECUTION_ID; MLflow basic auth from MLFLOW_CREDENTIALS_SECRET_ARN.",
    )
    parser.add_argument(
        "command", nargs="?", choices=["train"], help="what SageMaker passes; optional"
    )
    return parser


def fail_job(paths: TrainingPaths, message: str) -> int:
    try:
        # SageMaker shows the first 1024 characters as the job's FailureReason.
        write_atomically(paths.failure_file, message + "\n")
    except OSError as err:  # still one line: the reason, then why it is not in the file
        message += f" (not written to {paths.failure_file}: {err.strerror or err})"
    print(message, file=sys.stderr, flush=True)
    return 1
