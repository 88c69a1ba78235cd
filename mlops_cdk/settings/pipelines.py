"""pipelines: the training and inference pipelines, their schedules, launcher and alarms.

The job sections live beside it: :mod:`mlops_cdk.settings.jobs` (shared job types and the
containers' rules), :mod:`~mlops_cdk.settings.training`, :mod:`~mlops_cdk.settings.tuning`,
:mod:`~mlops_cdk.settings.inference`; their names are re-exported here.
"""

from __future__ import annotations

import re
import zoneinfo
from typing import Annotated, Literal, Self

from pydantic import AfterValidator, Field, model_validator

from mlops_cdk.settings.common import Section
from mlops_cdk.settings.cron import check_cron
from mlops_cdk.settings.inference import InferenceJobSettings
from mlops_cdk.settings.jobs import (
    CREDENTIAL_ENVIRONMENT,
    RESERVED_JOB_ENVIRONMENT,
    DataPrefix,
    EnvironmentName,
    EnvironmentValue,
    JobEnvironment,
    NetworkIsolation,
    ProcessingInstanceType,
    TrainingInstanceType,
)
from mlops_cdk.settings.training import (
    ChannelSettings,
    DebuggerSettings,
    ProfilerSettings,
    TrainingJobSettings,
)
from mlops_cdk.settings.tuning import IntegerRange, TuningSettings

__all__ = [
    "CREDENTIAL_ENVIRONMENT",
    "LAMBDA_RESERVED_ENVIRONMENT",
    "LAUNCHER_OWN_ENVIRONMENT",
    "RESERVED_JOB_ENVIRONMENT",
    "ChannelSettings",
    "CronExpression",
    "DataPrefix",
    "DebuggerSettings",
    "EmailAddress",
    "EnvironmentName",
    "EnvironmentValue",
    "InferenceJobSettings",
    "InferenceScheduleSettings",
    "IntegerRange",
    "JobEnvironment",
    "LambdaLauncherSettings",
    "NetworkIsolation",
    "PipelinesSettings",
    "ProcessingInstanceType",
    "ProfilerSettings",
    "ScheduleSettings",
    "SchedulesSettings",
    "TimeZoneName",
    "TrainingInstanceType",
    "TrainingJobSettings",
    "TrainingScheduleSettings",
    "TuningSettings",
]

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


def _check_time_zone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError("must be an IANA time zone name such as UTC or Europe/Berlin") from None
    return value


CronExpression = Annotated[str, AfterValidator(check_cron)]
TimeZoneName = Annotated[str, AfterValidator(_check_time_zone)]


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

    @model_validator(mode="after")
    def _launcher_has_a_training_step(self) -> Self:
        if self.launcher == "lambda" and self.training.strategy == "tuning":
            raise ValueError(
                "pipelines.launcher=lambda starts plain training jobs (the pipeline's Train "
                "step), which pipelines.training.strategy=tuning does not have; use "
                "launcher=pipeline or strategy=plain"
            )
        return self
