"""pipelines: the training and inference pipelines, their schedules, launcher and alarms."""

from __future__ import annotations

import re
import sys
import zoneinfo
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import AfterValidator, Field, model_validator

from mlops_cdk.settings.common import IntChoice, Section, instance_type_of
from mlops_cdk.settings.cron import check_cron

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

# Names Lambda reserves (https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html
# "Reserved environment variables"): a function with one of them fails to deploy.
LAMBDA_RESERVED_ENVIRONMENT = frozenset(
    {"_HANDLER", "_X_AMZN_TRACE_ID", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_EXECUTION_ENV",
     "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION",
     "AWS_LAMBDA_INITIALIZATION_TYPE", "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME",
     "AWS_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
     "AWS_LAMBDA_RUNTIME_API", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR"}
)  # fmt: skip
# What the launcher construct sets itself (mlops_cdk/constructs/training_launcher.py).
LAUNCHER_OWN_ENVIRONMENT = frozenset({"JOB_NAME_PREFIX", "PIPELINE_NAME", "STEP_NAME"})


def _check_lambda_environment(value: dict[str, str]) -> dict[str, str]:
    for name in sorted(value):
        if name in LAMBDA_RESERVED_ENVIRONMENT:
            raise ValueError(
                f"pipelines.lambda_launcher.environment: {name} is reserved by AWS Lambda "
                f"(reserved: {', '.join(sorted(LAMBDA_RESERVED_ENVIRONMENT))})"
            )
        if name in LAUNCHER_OWN_ENVIRONMENT:
            raise ValueError(
                f"pipelines.lambda_launcher.environment: {name} is set by the launcher construct; "
                "remove it"
            )
    return value


_SAGEMAKER_INSTANCE_TYPE = r"^ml\.[a-z0-9-]+\.[a-z0-9]+$"


def _check_time_zone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError("must be an IANA time zone name such as UTC or Europe/Berlin") from None
    return value


CronExpression = Annotated[str, AfterValidator(check_cron)]
TimeZoneName = Annotated[str, AfterValidator(_check_time_zone)]
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


def _check_inference_environment(value: dict[str, str]) -> dict[str, str]:
    try:  # the inference container's own rules: a value it refuses would fail every run
        check_inference_environment(value)
    except InferenceRuleError as err:
        raise ValueError(f"pipelines.inference.environment: {err}") from None
    return value


def _check_hyperparameters(value: dict[str, str | int | float]) -> dict[str, str | int | float]:
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


class ScheduleSettings(Section):
    """One EventBridge Scheduler schedule."""

    enabled: bool = Field(default=False, description="Create the schedule in this environment.")
    cron: CronExpression = Field(description="cron(...) in EventBridge syntax, 6 fields.")
    time_zone: TimeZoneName = Field(default="UTC", description="IANA time zone of the cron.")


class TrainingScheduleSettings(ScheduleSettings):
    cron: CronExpression = Field(
        default="cron(0 2 ? * SUN *)", description="Weekly, Sunday 02:00 (in time_zone)."
    )


class InferenceScheduleSettings(ScheduleSettings):
    cron: CronExpression = Field(
        default="cron(0 6 * * ? *)", description="Daily at 06:00 (in time_zone)."
    )


class SchedulesSettings(Section):
    """When the pipelines run on their own, and how failed starts are retried."""

    training: TrainingScheduleSettings = TrainingScheduleSettings()
    inference: InferenceScheduleSettings = InferenceScheduleSettings()
    retry_attempts: int = Field(
        default=3,
        ge=0,
        le=185,
        description="Retries of a failed start before the dead-letter queue.",
    )
    max_event_age_minutes: int = Field(
        default=60, ge=1, le=1440, description="Give up retrying a start after this many minutes."
    )


class ProfilerSettings(Section):
    """SageMaker Profiler system metrics of the training job."""

    enabled: bool = Field(default=False, description="Collect system metrics (ProfilerConfig).")
    interval_ms: Annotated[Literal[100, 200, 500, 1000, 5000, 60000], IntChoice] = Field(
        default=500, description="Sampling interval: 100, 200, 500, 1000, 5000 or 60000 ms."
    )


class DebuggerSettings(Section):
    """SageMaker Debugger hook of the training job (tensors are saved under iris/models/)."""

    enabled: bool = Field(default=False, description="Add a DebugHookConfig.")
    collections: tuple[Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,256}$")], ...] = Field(
        default=(), description="Debugger collections to save, e.g. [metrics, feature_importance]."
    )


class ChannelSettings(Section):
    """An extra training input channel read from the data bucket."""

    name: str = Field(pattern=r"^[A-Za-z0-9.\-_]{1,64}$", description="Channel name.")
    prefix: DataPrefix = Field(description="Key prefix in the data bucket, e.g. iris/extra/.")
    content_type: str | None = Field(default=None, max_length=256, description="MIME type.")


def _check_network_isolation(value: bool) -> bool:
    if value:
        raise ValueError(
            "network isolation is not supported: an isolated job cannot reach MLflow (tracking and "
            "model registry); use pipelines.vpc=true for private networking instead"
        )
    return value


NetworkIsolation = Annotated[bool, AfterValidator(_check_network_isolation)]


class TrainingJobSettings(Section):
    """The training step (and the launcher's training job)."""

    instance_type: TrainingInstanceType = Field(
        default="ml.m5.large", description="ml.* type (SageMaker's TrainingInstanceType list)."
    )
    instance_count: int = Field(default=1, ge=1, le=20, description="Training instances.")
    volume_gb: int = Field(default=30, ge=1, le=16384, description="EBS volume per instance (GB).")
    encrypt_volume: bool = Field(
        default=True,
        description="Encrypt the volume with the storage key; false for instance types with "
        "local NVMe storage (ml.*d.*, ml.g4dn...), which SageMaker encrypts itself.",
    )
    max_runtime_minutes: int = Field(default=30, ge=1, le=40320, description="Stop after this.")
    spot: bool = Field(default=False, description="Managed spot training.")
    max_wait_minutes: int | None = Field(
        default=None,
        ge=1,
        le=40320,
        description="Spot: total wait incl. interruptions (>= max_runtime_minutes); "
        "null: max_runtime_minutes.",
    )
    checkpoint_uri: str | None = Field(
        default=None,
        pattern=r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$",
        description="Spot checkpoints (s3://...); null: the data bucket's iris/checkpoints/.",
    )
    network_isolation: NetworkIsolation = Field(
        default=False, description="Must stay false: the job talks to MLflow."
    )
    min_accuracy: float = Field(
        default=0.85, ge=0, le=1, description="Quality gate (the MinAccuracy parameter's default)."
    )
    hyperparameters: Annotated[
        dict[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.-]{0,255}$")], str | int | float],
        AfterValidator(_check_hyperparameters),
    ] = Field(
        default_factory=dict,
        description="Hyperparameters of iris_training, checked with the container's own rules.",
    )
    environment: JobEnvironment = Field(
        default_factory=dict, description="Extra environment variables of the container."
    )
    profiler: ProfilerSettings = ProfilerSettings()
    debugger: DebuggerSettings = DebuggerSettings()
    extra_channels: tuple[ChannelSettings, ...] = Field(
        default=(), max_length=19, description="Channels besides train, from the data bucket."
    )

    @model_validator(mode="after")
    def _is_consistent(self) -> Self:
        if "min_accuracy" in self.hyperparameters:
            raise ValueError(
                "pipelines.training.hyperparameters.min_accuracy is set by the MinAccuracy "
                "pipeline parameter; use pipelines.training.min_accuracy"
            )
        if self.max_wait_minutes is not None and not self.spot:
            raise ValueError(
                "pipelines.training.max_wait_minutes applies to spot training only; "
                "set pipelines.training.spot=true or remove it"
            )
        if self.max_wait_minutes is not None and self.max_wait_minutes < self.max_runtime_minutes:
            raise ValueError(
                f"pipelines.training.max_wait_minutes={self.max_wait_minutes} is below "
                f"max_runtime_minutes={self.max_runtime_minutes}"
            )
        if self.checkpoint_uri is not None and not self.spot:
            raise ValueError(
                "pipelines.training.checkpoint_uri is used by spot training only; "
                "set pipelines.training.spot=true or remove it"
            )
        names = [c.name for c in self.extra_channels]
        duplicates = sorted({n for n in names if names.count(n) > 1 or n == "train"})
        if duplicates:
            raise ValueError(
                f"pipelines.training.extra_channels name {duplicates[0]!r} is used twice "
                "(train is the built-in channel)"
            )
        return self


class InferenceJobSettings(Section):
    """The inference processing step."""

    instance_type: ProcessingInstanceType = Field(
        default="ml.m5.large", description="ml.* type (SageMaker's ProcessingInstanceType list)."
    )
    volume_gb: int = Field(default=30, ge=1, le=16384, description="EBS volume (GB).")
    encrypt_volume: bool = Field(
        default=True, description="Encrypt the volume with the storage key (see training)."
    )
    max_runtime_minutes: int = Field(default=20, ge=1, le=10080, description="Stop after this.")
    model_alias: str = Field(
        default="production",
        pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,62}$",
        description="Alias of the model version that scores (the ModelAlias parameter's default).",
    )
    network_isolation: NetworkIsolation = Field(
        default=False, description="Must stay false: the job talks to MLflow."
    )
    environment: Annotated[JobEnvironment, AfterValidator(_check_inference_environment)] = Field(
        default_factory=dict,
        description="Extra environment variables, e.g. CHUNK_ROWS, DRIFT_THRESHOLD; checked with "
        "the inference container's own rules.",
    )


class LambdaLauncherSettings(Section):
    """The Lambda function a schedule invokes when pipelines.launcher=lambda."""

    runtime: Literal["python3.12", "python3.13", "python3.14"] = Field(
        default="python3.14", description="Lambda Python runtime."
    )
    handler: str = Field(
        default="launcher.handler",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$",
        description="module.function in lambda/launcher/.",
    )
    timeout_seconds: int = Field(default=30, ge=3, le=900, description="Function timeout.")
    memory_mb: int = Field(default=256, ge=128, le=10240, description="Function memory (MB).")
    reserved_concurrency: int | None = Field(
        default=1,
        ge=1,
        le=10,
        description="Concurrent runs reserved for (and capping) the function; null: the account's "
        "unreserved pool (accounts whose concurrency quota is below 100 + this cannot reserve).",
    )
    environment: Annotated[
        dict[EnvironmentName, EnvironmentValue], AfterValidator(_check_lambda_environment)
    ] = Field(
        default_factory=dict,
        description="Extra environment variables of the function (not Lambda's reserved names).",
    )
    job_name_prefix: str | None = Field(
        default=None,
        pattern=r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,48}$",
        description="Training job names are <prefix>-<yyyymmddHHMM>; null: <project>-<env>-train.",
    )


def _check_email(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}", value):
        raise ValueError("must be an e-mail address such as ml-team@example.com")
    return value


EmailAddress = Annotated[str, AfterValidator(_check_email)]


class PipelinesSettings(Section):
    """Training and inference pipelines, their schedules, the launcher and failure alarms."""

    model_name: str = Field(
        default="iris-model",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$",
        description="Registered model name in MLflow.",
    )
    experiment_name: str = Field(
        default="iris", min_length=1, max_length=256, description="MLflow experiment of training."
    )
    launcher: Literal["pipeline", "lambda"] = Field(
        default="pipeline",
        description="pipeline: the training schedule starts the pipeline; lambda: it invokes the "
        "launcher function, which starts a plain training job.",
    )
    vpc: bool | None = Field(
        default=None,
        description="Run jobs in the private subnets; null: when tracking is self-hosted.",
    )
    alarm_email: EmailAddress | None = Field(
        default=None,
        description="E-mail subscribed to failure alarms (confirm the first message).",
    )
    preflight_instance_type: ProcessingInstanceType = Field(
        default="ml.t3.medium",
        description="Instance of the preflight step that decides whether a run has work to do "
        "(an EBS-only type from SageMaker's ProcessingInstanceType list: its volume is encrypted "
        "with the storage key).",
    )
    training: TrainingJobSettings = TrainingJobSettings()
    inference: InferenceJobSettings = InferenceJobSettings()
    schedules: SchedulesSettings = SchedulesSettings()
    lambda_launcher: LambdaLauncherSettings = LambdaLauncherSettings()
