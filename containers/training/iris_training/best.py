"""Gate and register the model of a tuning step's best training job (see register_best).

Everything the plain training does after fitting, reused, not repeated: the same split of the
same data (the split parameters logged in the run, the data checked against the run's hash),
the same evaluation, the same champion scoring and gate, the same registry calls.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import mlflow
import mlflow.sklearn
from mlflow import MlflowClient
from mlflow.entities import Run, RunStatus
from mlflow.exceptions import MlflowException
from mlops_runtime.mlflow_auth import mlflow_failure, point_mlflow_at

from iris_training.contract import write_atomically
from iris_training.data import load_dataset, split
from iris_training.errors import UserError
from iris_training.evaluate import evaluate
from iris_training.gate import ClassCoverage, decide
from iris_training.hyperparameters import parse_hyperparameters
from iris_training.registry import promote, score_champion, tag_version
from iris_training.settings import RunSettings
from iris_training.train import EVALUATION_FILE, MODEL_ARTIFACT, TrainingResult
from iris_training.tuning_contract import JOB_NAME_TAG

log = logging.getLogger("iris_training")

# The run's parameters that fix its held-out rows (logged from Hyperparameters).
_SPLIT_PARAMS = ("test_size", "split_random_state")
# Run tags copied to the registered version (set by train._track).
_LINEAGE_TAGS = ("data.sha256", "data.source", "pipeline.execution_id", JOB_NAME_TAG)


def register_best(
    *,
    job_name: str,
    min_accuracy: float,
    settings: RunSettings,
    data_dir: Path,
    output_dir: Path,
) -> TrainingResult:
    dataset = load_dataset(data_dir)
    try:
        point_mlflow_at(settings.tracking_uri)
        client = MlflowClient()
        run = find_run(client, settings.experiment_name, job_name)
    except MlflowException as err:
        raise mlflow_failure(settings.tracking_uri, err) from err
    run_id = run.info.run_id
    trained_on = run.data.tags.get("data.sha256")
    if trained_on != dataset.sha256:
        raise UserError(
            f"the data in {data_dir} ({dataset.source}, sha256 {dataset.sha256[:12]}) is not the "
            f"data training job {job_name} trained on (sha256 {str(trained_on)[:12]}): its "
            "held-out rows could not be rebuilt"
        )
    missing = [name for name in _SPLIT_PARAMS if name not in run.data.params]
    if missing:
        raise UserError(
            f"MLflow run {run_id} of training job {job_name} lacks param(s) {', '.join(missing)}"
        )
    split_params = parse_hyperparameters({name: run.data.params[name] for name in _SPLIT_PARAMS})
    parts = split(dataset, test_size=split_params.test_size, seed=split_params.split_random_state)
    try:
        model = mlflow.sklearn.load_model(f"runs:/{run_id}/{MODEL_ARTIFACT}")
        evaluation = evaluate(model, parts.x_test, parts.y_test)
        log.info(
            "training job %s: run %s, held-out %d rows, accuracy=%.4f",
            job_name,
            run_id,
            len(parts.y_test),
            evaluation.accuracy,
        )
        champion = score_champion(client, settings.model_name, parts.x_test, parts.y_test)
        decision = decide(
            challenger_accuracy=evaluation.accuracy,
            min_accuracy=min_accuracy,
            champion=champion,
            classes=ClassCoverage.of(
                train=parts.y_train, evaluation=parts.y_test, model=model.classes_
            ),
        )
        version = _version_of(client, settings.model_name, run_id)
        lineage = {k: run.data.tags[k] for k in _LINEAGE_TAGS if k in run.data.tags}
        if settings.pipeline_execution_id:
            lineage["pipeline.execution_id"] = settings.pipeline_execution_id
        tag_version(client, settings.model_name, version, {**lineage, **decision.tags()})
        for key, value in decision.tags().items():
            client.set_tag(run_id, key, value)
        if decision.promote:
            promote(client, settings.model_name, version)
    except MlflowException as err:
        raise mlflow_failure(settings.tracking_uri, err) from err
    log.info(
        "gate: %s version %s of %r: %s",
        decision.verdict,
        version,
        settings.model_name,
        decision.reason,
    )
    result = TrainingResult(
        model_name=settings.model_name,
        version=version,
        run_id=run_id,
        evaluation=evaluation,
        decision=decision,
        data_sha256=dataset.sha256,
        data_source=dataset.source,
        training_job_name=job_name,
    )
    write_atomically(output_dir / EVALUATION_FILE, json.dumps(result.to_json(), indent=2) + "\n")
    return result


def find_run(client: MlflowClient, experiment_name: str, job_name: str) -> Run:
    """The one finished run tagged with the job's name; anything else is a one-line error."""
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        raise UserError(
            f"MLflow experiment {experiment_name!r} does not exist: no run of training job "
            f"{job_name} to register"
        )
    # job_name matches SageMaker's job-name pattern (letters, digits, '-'): safe to quote.
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`{JOB_NAME_TAG}` = '{job_name}'",
        max_results=10,
    )
    where = f"in experiment {experiment_name!r} tagged {JOB_NAME_TAG}={job_name}"
    if not runs:
        raise UserError(f"no MLflow run {where}: nothing to register for training job {job_name}")
    if len(runs) > 1:
        ids = ", ".join(r.info.run_id for r in runs)
        raise UserError(
            f"{len(runs)} MLflow runs {where} ({ids}): expected exactly one for training job "
            f"{job_name}; delete the extra runs"
        )
    run = runs[0]
    if run.info.status != RunStatus.to_string(RunStatus.FINISHED):
        raise UserError(
            f"MLflow run {run.info.run_id} of training job {job_name} is {run.info.status}, "
            "not FINISHED"
        )
    return run


def _version_of(client: MlflowClient, model_name: str, run_id: str) -> str:
    """The version registered from the run: an existing one (a retried step), else a new one."""
    existing = client.search_model_versions(f"name='{model_name}' and run_id='{run_id}'")
    if existing:
        version = str(max(int(v.version) for v in existing))
        log.info("run %s is already version %s of %r (a retry)", run_id, version, model_name)
        return version
    registered = mlflow.register_model(f"runs:/{run_id}/{MODEL_ARTIFACT}", model_name)
    return str(registered.version)
