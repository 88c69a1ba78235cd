"""Model registry operations: find and score the champion, tag and promote a version."""

from __future__ import annotations

import mlflow.sklearn
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, RESOURCE_DOES_NOT_EXIST, ErrorCode

from iris_training.evaluate import accuracy
from iris_training.gate import Champion

PRODUCTION_ALIAS = "production"
_NOT_FOUND = {
    ErrorCode.Name(RESOURCE_DOES_NOT_EXIST),  # no such registered model
    ErrorCode.Name(INVALID_PARAMETER_VALUE),  # model exists, alias does not
}


def production_version(client: MlflowClient, model_name: str) -> ModelVersion | None:
    """The version holding the production alias, or None when there is none yet."""
    try:
        return client.get_model_version_by_alias(model_name, PRODUCTION_ALIAS)
    except MlflowException as err:
        if err.error_code in _NOT_FOUND:
            return None
        raise


def score_champion(
    client: MlflowClient, model_name: str, x_test: pd.DataFrame, y_test: pd.Series
) -> Champion | None:
    """Score the production version on the challenger's held-out rows (None: no champion)."""
    version = production_version(client, model_name)
    if version is None:
        return None
    try:
        model = mlflow.sklearn.load_model(f"models:/{model_name}/{version.version}")
        classes = tuple(sorted(str(c) for c in getattr(model, "classes_", ())))
        return Champion(
            version=str(version.version),
            accuracy=accuracy(model, x_test, y_test),
            classes=classes or None,
        )
    except Exception as err:  # whatever the cause, the champion cannot be scored; the gate says so
        reason = f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err) else ''}"
        return Champion(version=str(version.version), accuracy=None, error=reason)


def tag_version(client: MlflowClient, model_name: str, version: str, tags: dict[str, str]) -> None:
    for key, value in tags.items():
        client.set_model_version_tag(model_name, version, key, value)


def promote(client: MlflowClient, model_name: str, version: str) -> None:
    client.set_registered_model_alias(model_name, PRODUCTION_ALIAS, version)
