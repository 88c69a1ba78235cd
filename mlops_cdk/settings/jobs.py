"""What every pipeline job's settings share: instance types, data prefixes, the job environment,
network isolation, and the containers' own rules (hyperparameters, job environment)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, Field

from mlops_cdk.settings.common import instance_type_of

# The containers' own rules (hyperparameters, job environment) are what synth checks too: one
# definition, imported from the container code. Those modules import only pydantic and the
# standard library (no scikit-learn, MLflow or pandas), so synth stays light.
_CONTAINERS = Path(__file__).resolve().parents[2] / "containers"
for _code in (_CONTAINERS / "shared", _CONTAINERS / "training", _CONTAINERS / "inference"):
    if str(_code) not in sys.path:
        sys.path.append(str(_code))

from iris_inference.errors import UserError as InferenceRuleError  # noqa: E402
from iris_inference.settings import check_job_environment as check_inference_environment  # noqa: E402
from iris_training.errors import UserError as TrainingRuleError  # noqa: E402
from iris_training.hyperparameters import parse_hyperparameters  # noqa: E402
from mlops_runtime.mlflow_auth import http_environment  # noqa: E402

__all__ = [
    "CREDENTIAL_ENVIRONMENT",
    "RESERVED_JOB_ENVIRONMENT",
    "DataPrefix",
    "EnvironmentName",
    "EnvironmentValue",
    "JobEnvironment",
    "NetworkIsolation",
    "ProcessingInstanceType",
    "TrainingInstanceType",
    "TrainingRuleError",
    "check_hyperparameters",
    "check_inference_environment_rules",
    "parse_hyperparameters",
]

_SAGEMAKER_INSTANCE_TYPE = r"^ml\.[a-z0-9-]+\.[a-z0-9]+$"


TrainingInstanceType = Annotated[
    str,
    Field(pattern=_SAGEMAKER_INSTANCE_TYPE),
    instance_type_of("TrainingInstanceType", "training"),
]
ProcessingInstanceType = Annotated[
    str,
    Field(pattern=_SAGEMAKER_INSTANCE_TYPE),
    instance_type_of("ProcessingInstanceType", "processing"),
]
# A key prefix in the data bucket: relative, ends with "/".
DataPrefix = Annotated[str, Field(pattern=r"^[A-Za-z0-9!_.*'()-]+(/[A-Za-z0-9!_.*'()=-]+)*/$")]
EnvironmentName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,1023}$")]
EnvironmentValue = Annotated[str, Field(max_length=256)]
# Set by the pipelines themselves; config may not override them.
RESERVED_JOB_ENVIRONMENT = frozenset(
    {"MLFLOW_TRACKING_URI", "MLFLOW_CREDENTIALS_SECRET_ARN", "MLFLOW_EXPERIMENT_NAME",
     "MODEL_NAME", "MODEL_ALIAS", "PIPELINE_EXECUTION_ID", "TRAINING_JOB_NAME", "INFERENCE_DATE", "INPUT_DIR", "OUTPUT_DIR"}
)  # fmt: skip


# Credentials never go into a template in plain text; jobs read them from the tracking secret.
CREDENTIAL_ENVIRONMENT = frozenset(
    {"MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"}
)


def _check_job_environment(value: dict[str, str]) -> dict[str, str]:
    credentials = sorted(CREDENTIAL_ENVIRONMENT & set(value))
    if credentials:
        raise ValueError(
            f"{', '.join(credentials)} would be stored in plain text in the template; "
            "self-hosted MLflow credentials come from the tracking stack's client secret"
        )
    reserved = sorted(RESERVED_JOB_ENVIRONMENT & set(value))
    if reserved:
        raise ValueError(
            f"{', '.join(reserved)} is set by the pipeline; remove it from environment"
        )
    try:
        http_environment(value)  # the MLflow client bounds both containers apply
    except TrainingRuleError as err:
        raise ValueError(str(err)) from None
    return value


def check_inference_environment_rules(value: dict[str, str]) -> dict[str, str]:
    try:  # the inference container's own rules: a value it refuses would fail every run
        check_inference_environment(value)
    except InferenceRuleError as err:
        raise ValueError(f"pipelines.inference.environment: {err}") from None
    return value


def check_hyperparameters(value: dict[str, str | int | float]) -> dict[str, str | int | float]:
    # As SageMaker hands them to the container: every value a string.
    raw = {name: str(v) if not isinstance(v, str) else v for name, v in value.items()}
    try:  # the training container's own rules: a value it refuses would fail every run
        parse_hyperparameters(raw)
    except TrainingRuleError as err:
        raise ValueError(f"pipelines.training.hyperparameters: {err}") from None
    return value


JobEnvironment = Annotated[
    dict[EnvironmentName, EnvironmentValue], AfterValidator(_check_job_environment)
]


def _check_network_isolation(value: bool) -> bool:
    if value:
        raise ValueError(
            "network isolation is not supported: an isolated job cannot reach MLflow (tracking and "
            "model registry); use pipelines.vpc=true for private networking instead"
        )
    return value


NetworkIsolation = Annotated[bool, AfterValidator(_check_network_isolation)]
