"""Resolve `models:/NAME@ALIAS` to one version and load it, recording what was used."""

from __future__ import annotations

from dataclasses import dataclass

import mlflow
import mlflow.sklearn
import numpy as np
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, RESOURCE_DOES_NOT_EXIST, ErrorCode
from mlops_runtime.mlflow_auth import mlflow_failure, point_mlflow_at
from sklearn.base import ClassifierMixin

from iris_inference.errors import UserError
from iris_inference.sources import CANONICAL_FEATURES


@dataclass(frozen=True)
class ProductionModel:
    name: str
    alias: str
    version: str
    run_id: str
    estimator: ClassifierMixin
    features: tuple[str, ...]
    classes: tuple[str, ...]

    @property
    def uri(self) -> str:
        return f"models:/{self.name}@{self.alias}"


def load_production_model(*, tracking_uri: str, name: str, alias: str) -> ProductionModel:
    point_mlflow_at(tracking_uri)
    try:
        version = _resolve(MlflowClient(), name, alias)
        # Load the resolved version, not the alias: the alias may move while this job runs.
        estimator = mlflow.sklearn.load_model(f"models:/{name}/{version.version}")
    except MlflowException as err:
        raise mlflow_failure(tracking_uri, err) from err
    if not hasattr(estimator, "predict_proba") or not hasattr(estimator, "classes_"):
        raise UserError(
            f"models:/{name}/{version.version} is a {type(estimator).__name__}, "
            "not a classifier with predict_proba"
        )
    features = getattr(estimator, "feature_names_in_", None)
    return ProductionModel(
        name=name,
        alias=alias,
        version=str(version.version),
        run_id=str(version.run_id or ""),
        estimator=estimator,
        features=tuple(str(f) for f in features) if features is not None else CANONICAL_FEATURES,
        classes=tuple(str(c) for c in np.asarray(estimator.classes_)),
    )


def _resolve(client: MlflowClient, name: str, alias: str) -> ModelVersion:
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as err:
        if err.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
            raise UserError(
                f"registered model {name!r} does not exist: train and promote a version first"
            ) from err
        if err.error_code == ErrorCode.Name(INVALID_PARAMETER_VALUE):
            raise UserError(
                f"registered model {name!r} has no {alias!r} alias: no version has passed the "
                "quality gate yet"
            ) from err
        raise
