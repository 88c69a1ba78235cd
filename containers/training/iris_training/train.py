"""Train, evaluate, log to MLflow, register, and promote through the quality gate."""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from dataclasses import dataclass
from importlib.metadata import version as installed_version
from pathlib import Path

import mlflow
import mlflow.sklearn
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlops_runtime.mlflow_auth import mlflow_failure, point_mlflow_at
from sklearn.ensemble import RandomForestClassifier

from iris_training.contract import TRAIN_CHANNEL, TrainingPaths, write_atomically
from iris_training.data import Dataset, Split, load_dataset, split
from iris_training.evaluate import (
    Evaluation,
    confusion_matrix_figure,
    evaluate,
    feature_importance_figure,
)
from iris_training.gate import ClassCoverage, GateDecision, decide
from iris_training.hyperparameters import Hyperparameters
from iris_training.profile import reference_profile, write_profile
from iris_training.registry import PRODUCTION_ALIAS, promote, score_champion, tag_version
from iris_training.settings import RunSettings
from iris_training.tuning_contract import JOB_NAME_TAG, REGISTER_HYPERPARAMETER

log = logging.getLogger("iris_training")

# skops is the safe format; a fitted forest needs its Tree type trusted explicitly.
_SKOPS_TRUSTED_TYPES = ["sklearn.tree._tree.Tree"]
# Explicit requirements: inferring them costs ~10x the whole log_model call.
_MODEL_REQUIREMENTS = ["mlflow", "scikit-learn", "skops", "numpy", "pandas", "scipy"]
MODEL_SUBDIR = "mlflow-model"
EVALUATION_FILE = "evaluation.json"
# The model's artifact name in its run: register_best registers `runs:/<run id>/model`.
MODEL_ARTIFACT = "model"


@dataclass(frozen=True)
class TrainingResult:
    """What a run did; version and decision are None when it did not register (register=false)."""

    model_name: str
    version: str | None
    run_id: str
    evaluation: Evaluation
    decision: GateDecision | None
    data_sha256: str
    data_source: str
    training_job_name: str | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "model_name": self.model_name,
            "version": self.version,
            "run_id": self.run_id,
            "training_job_name": self.training_job_name,
            "accuracy": self.evaluation.accuracy,
            "macro_f1": self.evaluation.macro_f1,
            "registered": self.version is not None,
            "gate": gate_json(self.decision),
            "alias": PRODUCTION_ALIAS if self.decision and self.decision.promote else None,
            "data": {"sha256": self.data_sha256, "source": self.data_source},
        }


def gate_json(decision: GateDecision | None) -> dict[str, object] | None:
    if decision is None:
        return None
    champion = decision.champion
    return {
        "decision": decision.verdict,
        "reason": decision.reason,
        "min_accuracy": decision.min_accuracy,
        "champion_version": champion.version if champion else None,
        "champion_accuracy": champion.accuracy if champion else None,
    }


def run_training(
    *, hyperparameters: Hyperparameters, settings: RunSettings, paths: TrainingPaths
) -> TrainingResult:
    dataset = load_dataset(paths.channel(TRAIN_CHANNEL))
    try:
        # MLflow first: an unreachable server fails the job before anything is trained or written.
        _connect(settings)
    except MlflowException as err:
        raise mlflow_failure(settings.tracking_uri, err) from err
    log.info("data: %d rows from %s (sha256 %s)", dataset.rows, dataset.source, dataset.sha256[:12])
    parts = split(
        dataset, test_size=hyperparameters.test_size, seed=hyperparameters.split_random_state
    )
    model = _fit(hyperparameters, parts)
    evaluation = evaluate(model, parts.x_test, parts.y_test)
    log.info(
        "held-out: %d rows, accuracy=%.4f macro_f1=%.4f",
        len(parts.y_test),
        evaluation.accuracy,
        evaluation.macro_f1,
    )
    # The data's distribution travels with the model: the inference job's drift report uses it.
    profile = reference_profile(dataset.features, source=dataset.source, sha256=dataset.sha256)
    with tempfile.TemporaryDirectory(prefix="iris-profile-") as scratch:
        extra_files = [str(write_profile(profile, Path(scratch)))]
        _save_model_dir(model, parts, paths.model_dir, extra_files)
        try:
            result = _track(
                model,
                hyperparameters,
                settings,
                dataset=dataset,
                parts=parts,
                evaluation=evaluation,
                extra_files=extra_files,
            )
        except MlflowException as err:
            raise mlflow_failure(settings.tracking_uri, err) from err
    write_atomically(
        paths.output_data_dir / EVALUATION_FILE, json.dumps(result.to_json(), indent=2) + "\n"
    )
    return result


def _connect(settings: RunSettings) -> None:
    point_mlflow_at(settings.tracking_uri)
    mlflow.set_experiment(settings.experiment_name)


def _fit(hyperparameters: Hyperparameters, parts: Split) -> RandomForestClassifier:
    model = RandomForestClassifier(
        n_estimators=hyperparameters.n_estimators,
        max_depth=hyperparameters.max_depth,
        min_samples_leaf=hyperparameters.min_samples_leaf,
        max_features=hyperparameters.sklearn_max_features,
        criterion=hyperparameters.criterion,
        random_state=hyperparameters.random_state,
    )
    return model.fit(parts.x_train, parts.y_train.to_numpy(dtype=object))


def model_kwargs(
    model: RandomForestClassifier, parts: Split, extra_files: list[str]
) -> dict[str, object]:
    example = parts.x_train.head(3)
    return {
        "extra_files": extra_files,  # stored as extra_files/<name> in the model directory
        "signature": infer_signature(example, model.predict(example)),
        "input_example": example,
        "serialization_format": "skops",
        "skops_trusted_types": _SKOPS_TRUSTED_TYPES,
        "pip_requirements": [f"{name}=={installed_version(name)}" for name in _MODEL_REQUIREMENTS],
    }


def _save_model_dir(
    model: RandomForestClassifier, parts: Split, model_dir: Path, extra_files: list[str]
) -> None:
    """The MLflow model under /opt/ml/model, so SageMaker's model.tar.gz holds it too."""
    target = model_dir / MODEL_SUBDIR
    staging = model_dir / f".{MODEL_SUBDIR}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    model_dir.mkdir(parents=True, exist_ok=True)
    mlflow.sklearn.save_model(model, str(staging), **model_kwargs(model, parts, extra_files))
    shutil.rmtree(target, ignore_errors=True)  # a local re-run; SageMaker starts empty
    staging.replace(target)


def _track(
    model: RandomForestClassifier,
    hyperparameters: Hyperparameters,
    settings: RunSettings,
    *,
    dataset: Dataset,
    parts: Split,
    evaluation: Evaluation,
    extra_files: list[str],
) -> TrainingResult:
    client = MlflowClient()
    lineage = {"data.sha256": dataset.sha256, "data.source": dataset.source}
    if settings.pipeline_execution_id:
        lineage["pipeline.execution_id"] = settings.pipeline_execution_id
    if settings.training_job_name:
        # SageMaker sets TRAINING_JOB_NAME in every training container ("How Amazon SageMaker AI
        # provides training information", Environment variables,
        # https://docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-training-algo-running-container.html);
        # register_best finds a tuning job's run by this tag.
        lineage[JOB_NAME_TAG] = settings.training_job_name

    with mlflow.start_run(run_name=settings.training_job_name) as run:
        log.info("mlflow: run %s in experiment %r", run.info.run_id, settings.experiment_name)
        mlflow.set_tags(lineage)
        mlflow.log_params(hyperparameters.model_dump(by_alias=True))
        mlflow.log_params({"data.rows": dataset.rows, "data.test_rows": len(parts.y_test)})
        mlflow.log_metrics(evaluation.metrics())
        mlflow.log_figure(
            confusion_matrix_figure(model, parts.x_test, parts.y_test),
            "plots/confusion_matrix.png",
        )
        mlflow.log_figure(
            feature_importance_figure(model.feature_importances_, list(parts.x_train.columns)),
            "plots/feature_importance.png",
        )

        if not hyperparameters.registers:
            # A tuning job: the model stays in its run; register_best gates and registers the
            # best job's model after the tuning step.
            mlflow.sklearn.log_model(
                model, name=MODEL_ARTIFACT, **model_kwargs(model, parts, extra_files)
            )
            log.info("not registered: hyperparameter %s=false", REGISTER_HYPERPARAMETER)
            return TrainingResult(
                model_name=settings.model_name,
                version=None,
                run_id=run.info.run_id,
                evaluation=evaluation,
                decision=None,
                data_sha256=dataset.sha256,
                data_source=dataset.source,
                training_job_name=settings.training_job_name,
            )

        champion = score_champion(client, settings.model_name, parts.x_test, parts.y_test)
        decision = decide(
            challenger_accuracy=evaluation.accuracy,
            min_accuracy=hyperparameters.min_accuracy,
            champion=champion,
            classes=ClassCoverage.of(
                train=parts.y_train, evaluation=parts.y_test, model=model.classes_
            ),
        )
        mlflow.set_tags(decision.tags())
        if champion is not None and champion.accuracy is not None:
            mlflow.log_metric("champion_accuracy", champion.accuracy)

        info = mlflow.sklearn.log_model(
            model,
            name=MODEL_ARTIFACT,
            registered_model_name=settings.model_name,
            **model_kwargs(model, parts, extra_files),
        )
        version = str(info.registered_model_version)
        tag_version(client, settings.model_name, version, {**lineage, **decision.tags()})
        if decision.promote:
            promote(client, settings.model_name, version)
        log.info(
            "gate: %s version %s of %r: %s",
            decision.verdict,
            version,
            settings.model_name,
            decision.reason,
        )
        return TrainingResult(
            model_name=settings.model_name,
            version=version,
            run_id=run.info.run_id,
            evaluation=evaluation,
            decision=decision,
            data_sha256=dataset.sha256,
            data_source=dataset.source,
            training_job_name=settings.training_job_name,
        )
