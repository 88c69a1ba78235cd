"""Typed, frozen, validated settings: the one place that holds every default.

Settings come from cdk.json context, in this order (later wins):

1. the defaults written in the models below,
2. ``environments.<env>`` in cdk.json,
3. command-line overrides with dotted keys, e.g. ``-c tracking.mode=fargate``.

Only ``app.py`` calls :meth:`Settings.from_context`; everything else receives the
frozen section it needs as an argument.  Adding a section is one small model class
plus one field on :class:`Settings`.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import re
import sys
import zoneinfo
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal, Self, get_args

from aws_cdk import Environment, RemovalPolicy
from aws_cdk import aws_logs as logs
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    computed_field,
    model_validator,
)

# The containers' own rules (hyperparameters, job environment) are what synth checks too: one
# definition, imported from the container code. Those modules import only pydantic and the
# standard library (no scikit-learn, MLflow or pandas), so synth stays light.
_CONTAINERS = Path(__file__).resolve().parents[1] / "containers"
for _code in (_CONTAINERS / "shared", _CONTAINERS / "training", _CONTAINERS / "inference"):
    if str(_code) not in sys.path:
        sys.path.append(str(_code))

from iris_inference.errors import UserError as InferenceRuleError  # noqa: E402
from iris_inference.settings import check_job_environment as check_inference_environment  # noqa: E402
from iris_training.errors import UserError as TrainingRuleError  # noqa: E402
from iris_training.hyperparameters import parse_hyperparameters  # noqa: E402
from mlops_runtime.mlflow_auth import http_environment  # noqa: E402

DEFAULT_ENVIRONMENT = "dev"

# Context keys that belong to the CDK itself, never to our settings.
_CDK_CONTEXT_KEYS = frozenset({"acknowledged-issue-numbers"})
_OWN_CONTEXT_KEYS = frozenset({"env", "environments"})

# CloudWatch Logs accepts only these retention periods.
_RETENTION_BY_DAYS = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    5: logs.RetentionDays.FIVE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    120: logs.RetentionDays.FOUR_MONTHS,
    150: logs.RetentionDays.FIVE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
    400: logs.RetentionDays.THIRTEEN_MONTHS,
    545: logs.RetentionDays.EIGHTEEN_MONTHS,
    731: logs.RetentionDays.TWO_YEARS,
    1096: logs.RetentionDays.THREE_YEARS,
    1827: logs.RetentionDays.FIVE_YEARS,
    2192: logs.RetentionDays.SIX_YEARS,
    2557: logs.RetentionDays.SEVEN_YEARS,
    2922: logs.RetentionDays.EIGHT_YEARS,
    3288: logs.RetentionDays.NINE_YEARS,
    3653: logs.RetentionDays.TEN_YEARS,
}
LOG_RETENTION_DAYS = tuple(_RETENTION_BY_DAYS)


def retention_days(days: int) -> logs.RetentionDays:
    """The CDK enum member for a validated number of days."""
    return _RETENTION_BY_DAYS[days]


class ConfigError(Exception):
    """A setting is wrong. The message is one line: the setting, the value, what is allowed."""


class Section(BaseModel):
    """Base of every settings model: immutable and strict about unknown keys."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)


def check_log_retention(days: int) -> int:
    if days not in LOG_RETENTION_DAYS:
        allowed = ", ".join(str(d) for d in LOG_RETENTION_DAYS)
        raise ValueError(f"must be one of {allowed}")
    return days


LogRetentionDays = Annotated[int, AfterValidator(check_log_retention)]


def _int_from_text(value: Any) -> Any:
    """``-c`` values arrive as strings: "2048" is the integer choice 2048."""
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        return int(value)
    return value


IntChoice = BeforeValidator(_int_from_text)


def _check_half_acu(value: float) -> float:
    if (value * 2) != int(value * 2):
        raise ValueError("must be a multiple of 0.5 ACU (Aurora Serverless v2 capacity steps)")
    return value


HalfAcu = Annotated[float, AfterValidator(_check_half_acu)]

# S3 bucket naming rules (general purpose buckets):
# https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html
_BUCKET_RULES = (
    "3-63 lowercase letters, digits, dots and hyphens, starting and ending with a letter or "
    "digit, no '..', '.-' or '-.', not an IP address, not starting with xn--, sthree- or "
    "amzn-s3-demo-, not ending with -s3alias, --ol-s3, .mrap or --x-s3"
)


def bucket_name_problem(name: str) -> str | None:
    """Why `name` is not a valid S3 bucket name (None when it is)."""
    if (
        not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", name)
        or any(bad in name for bad in ("..", ".-", "-."))
        or re.fullmatch(r"\d+\.\d+\.\d+\.\d+", name)
        or name.startswith(("xn--", "sthree-", "amzn-s3-demo-"))
        or name.endswith(("-s3alias", "--ol-s3", ".mrap", "--x-s3"))
    ):
        return f"bucket name {name!r} is not a valid S3 bucket name ({_BUCKET_RULES})"
    return None


def _no_duplicates(setting: str) -> Any:
    def check(values: tuple[Any, ...]) -> tuple[Any, ...]:
        twice = sorted({str(v) for v in values if values.count(v) > 1})
        if twice:
            raise ValueError(f"{setting} lists {', '.join(twice)} more than once")
        return values

    return AfterValidator(check)


@cache
def _sagemaker_enum(shape: str) -> frozenset[str]:
    """Instance types SageMaker accepts, from botocore's service model (updated with each
    botocore release): TrainingInstanceType, ProcessingInstanceType, AppInstanceType."""
    import botocore.session  # noqa: PLC0415 -- only when a setting names an instance type

    model = botocore.session.get_session().get_service_model("sagemaker")
    return frozenset(model.shape_for(shape).enum)


@cache
def _ec2_instance_types() -> frozenset[str]:
    import botocore.session  # noqa: PLC0415

    model = botocore.session.get_session().get_service_model("ec2")
    return frozenset(model.shape_for("InstanceType").enum)


def _instance_type_of(shape: str, what: str) -> AfterValidator:
    def check(value: str) -> str:
        if value not in _sagemaker_enum(shape):
            raise ValueError(
                f"is not a SageMaker {what} instance type (botocore's {shape} list, "
                "e.g. ml.m5.large)"
            )
        return value

    return AfterValidator(check)


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


def _check_tags(value: dict[str, str]) -> dict[str, str]:
    # https://docs.aws.amazon.com/tag-editor/latest/userguide/tagging.html (tag naming limits)
    allowed = r"[\w\s.:/=+\-@]*"
    for key, text in value.items():
        if not key.strip():
            raise ValueError(f"tags: key {key!r} is empty (1-128 characters)")
        if key.lower().startswith("aws:"):
            raise ValueError(f"tags: key {key!r} starts with aws:, which AWS reserves")
        if len(key) > 128:
            raise ValueError(f"tags: key {key[:20]!r}... is longer than 128 characters")
        if len(text) > 256:
            raise ValueError(f"tags: value of {key!r} is longer than 256 characters")
        for what, item in (("key", key), ("value", text)):
            if not re.fullmatch(allowed, item):
                raise ValueError(
                    f"tags: {what} {item!r} holds a character tags do not allow "
                    "(letters, digits, spaces and _ . : / = + - @)"
                )
    return value


_S3_URI = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:/(?P<prefix>.*))?$")


class StorageSettings(Section):
    """KMS key and the buckets for MLflow artifacts, data and access logs."""

    create_bucket: bool = Field(
        default=True,
        description="Create the artifacts bucket; false brings an existing one (artifact_store_uri).",
    )
    artifact_store_uri: str | None = Field(
        default=None,
        description="s3://bucket[/prefix] of an existing artifact store (needs create_bucket: false).",
    )
    artifact_store_kms_key_arn: str | None = Field(
        default=None,
        pattern=r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[a-f0-9-]+$",
        description="KMS key that encrypts the existing artifact store, if any.",
    )
    noncurrent_version_days: int = Field(
        default=90, ge=1, le=3650, description="Days a replaced object version is kept."
    )
    incomplete_upload_days: int = Field(
        default=7,
        ge=1,
        le=365,
        description="Days before an unfinished multipart upload is aborted.",
    )
    access_log_days: int = Field(
        default=365, ge=1, le=3650, description="Days S3 server access logs are kept."
    )

    @model_validator(mode="after")
    def _bring_your_own_bucket_is_consistent(self) -> Self:
        if self.create_bucket and self.artifact_store_uri is not None:
            raise ValueError(
                f"storage.artifact_store_uri={self.artifact_store_uri!r} needs "
                "storage.create_bucket=false (or remove artifact_store_uri)"
            )
        if not self.create_bucket:
            if self.artifact_store_uri is None:
                raise ValueError(
                    "storage.create_bucket=false needs storage.artifact_store_uri "
                    "(an existing bucket as s3://bucket[/prefix])"
                )
            bucket = re.match(r"s3://([^/]*)", self.artifact_store_uri)
            if bucket is None:
                raise ValueError(
                    f"storage.artifact_store_uri={self.artifact_store_uri!r} "
                    "is not of the form s3://bucket[/prefix]"
                )
            problem = bucket_name_problem(bucket[1])
            if problem is not None:
                raise ValueError(
                    f"storage.artifact_store_uri={self.artifact_store_uri!r}: {problem}"
                )
        return self

    @property
    def existing_bucket_name(self) -> str | None:
        match = _S3_URI.match(self.artifact_store_uri or "")
        return match["bucket"] if match else None

    @property
    def existing_bucket_prefix(self) -> str:
        match = _S3_URI.match(self.artifact_store_uri or "")
        return (match["prefix"] or "").strip("/") if match else ""


def _check_cidr(value: str) -> str:
    try:
        network = ipaddress.IPv4Network(value)
    except ValueError:
        raise ValueError("must be an IPv4 network such as 10.0.0.0/16") from None
    if not 16 <= network.prefixlen <= 24:
        raise ValueError("must have a prefix length between /16 and /24")
    return value


EgressMode = Literal["endpoints", "nat_gateway", "nat_instance"]
InterfaceEndpoint = Literal[
    "sagemaker_api",
    "sagemaker_runtime",
    "sagemaker_studio",
    "sagemaker_notebook",
    "sagemaker_experiments",
    "sts",
    "logs",
    "monitoring",
    "ecr_api",
    "ecr_docker",
    "secrets_manager",
    "kms",
    "ssm",
    "ssm_messages",
    "ec2_messages",
]
INTERFACE_ENDPOINT_NAMES: tuple[InterfaceEndpoint, ...] = get_args(InterfaceEndpoint)


class NetworkSettings(Section):
    """The VPC that self-hosted tracking, VPC-only Studio and VPC training jobs run in."""

    enabled: bool | None = Field(
        default=None,
        description="null: built when a stack needs it; true: always; false: never.",
    )
    egress: EgressMode = Field(
        default="endpoints",
        description="endpoints (no NAT, VPC endpoints), nat_gateway or nat_instance.",
    )
    cidr: Annotated[str, AfterValidator(_check_cidr)] = Field(
        default="10.0.0.0/16", description="IPv4 range of the VPC, /16 to /24."
    )
    max_azs: int = Field(
        default=2,
        ge=2,
        le=3,
        description="Zones to span; an environment-agnostic synth can see only 2 (set availability_zones).",
    )
    availability_zones: (
        Annotated[tuple[str, ...], _no_duplicates("network.availability_zones")] | None
    ) = Field(
        default=None,
        min_length=2,
        max_length=6,
        description="Explicit zones, e.g. [eu-west-1a, eu-west-1b, eu-west-1c]; needs region.",
    )
    nat_gateways: int = Field(
        default=1, ge=1, le=3, description="NAT gateways or instances (nat_* egress)."
    )
    nat_instance_type: str = Field(
        default="t4g.nano",
        pattern=r"^[a-z][a-z0-9-]*\.[a-z0-9]+$",
        description="Instance type of the NAT instance (egress: nat_instance).",
    )
    interface_endpoints: Annotated[
        tuple[InterfaceEndpoint, ...], _no_duplicates("network.interface_endpoints")
    ] = Field(
        default=INTERFACE_ENDPOINT_NAMES,
        description="Interface endpoints created in endpoints egress (each costs per hour and AZ).",
    )
    flow_log_retention_days: LogRetentionDays = Field(
        default=90, description="Retention of the VPC flow logs (a CloudWatch Logs period)."
    )


TrackingMode = Literal["serverless", "managed", "fargate", "ec2"]
SELF_HOSTED_MODES: frozenset[str] = frozenset({"fargate", "ec2"})

_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _check_maintenance_window(value: str) -> str:
    match = re.fullmatch(r"(?P<day>[A-Za-z]{3}):(?P<hour>\d{2}):(?P<minute>\d{2})", value)
    day = match["day"].capitalize() if match else ""
    if not match or day not in _WEEKDAYS or int(match["hour"]) > 23 or int(match["minute"]) > 59:
        raise ValueError(f"must be Day:HH:MM in UTC with Day one of {'|'.join(_WEEKDAYS)}")
    return f"{day}:{match['hour']}:{match['minute']}"


MaintenanceWindow = Annotated[str, AfterValidator(_check_maintenance_window)]

# MLflow server versions: SageMaker takes major.minor; self-hosted modes pin an exact release
# (keep SELF_HOSTED_MLFLOW_VERSION equal to the ARG default in containers/tracking/Dockerfile).
MANAGED_MLFLOW_VERSION = "3.0"
SELF_HOSTED_MLFLOW_VERSION = "3.17.2"

_IAM_POLICY_ARN = re.compile(r"^arn:aws[a-z-]*:iam::(\d{12}|aws):policy/[\w+=,.@/-]{1,512}$")
_HTTPS_URL = r"^https://[A-Za-z0-9.-]+(:\d+)?(/[^\s]*)?$"
_WORK_DAY = r"(MON|TUE|WED|THU|FRI|SAT|SUN)"
_FARGATE_MEMORY_MIB = {  # Fargate's allowed memory for each CPU size
    256: (512, 1024, 2048),
    512: tuple(range(1024, 4097, 1024)),
    1024: tuple(range(2048, 8193, 1024)),
    2048: tuple(range(4096, 16385, 1024)),
    4096: tuple(range(8192, 30721, 1024)),
}


def _check_policy_arn(value: str) -> str:
    if not _IAM_POLICY_ARN.match(value):
        raise ValueError("must be an IAM policy ARN such as arn:aws:iam::123456789012:policy/Name")
    if value.endswith("FullAccess"):
        raise ValueError("*FullAccess policies are not allowed; attach a scoped policy instead")
    return value


PolicyArn = Annotated[str, AfterValidator(_check_policy_arn)]


class OidcSettings(Section):
    """ALB OpenID Connect authentication in front of the Fargate MLflow server."""

    issuer: str = Field(pattern=_HTTPS_URL, description="OIDC issuer URL (https).")
    authorization_endpoint: str = Field(pattern=_HTTPS_URL, description="Authorization endpoint.")
    token_endpoint: str = Field(pattern=_HTTPS_URL, description="Token endpoint.")
    user_info_endpoint: str = Field(pattern=_HTTPS_URL, description="User-info endpoint.")
    client_id: str = Field(min_length=1, description="OIDC client (application) id.")
    client_secret_name: str = Field(
        pattern=r"^[A-Za-z0-9_/+=.@:-]+$",
        description="Secrets Manager secret (name or ARN) holding the client secret as plain text.",
    )
    scope: str = Field(default="openid email", description="Scopes the ALB requests.")


class FargateTrackingSettings(Section):
    """Self-hosted MLflow on ECS Fargate (tracking.mode=fargate)."""

    cpu: Annotated[Literal[256, 512, 1024, 2048, 4096], IntChoice] = Field(
        default=1024, description="Task CPU units (256, 512, 1024, 2048, 4096)."
    )
    memory_mib: int = Field(default=2048, description="Task memory; must fit the CPU size.")
    min_tasks: int = Field(default=1, ge=1, le=10, description="Tasks during working hours.")
    max_tasks: int = Field(default=2, ge=1, le=10, description="Upper bound of CPU autoscaling.")
    target_cpu_percent: int = Field(default=70, ge=10, le=95, description="Autoscaling target.")
    scale_to_zero: bool = Field(
        default=False, description="Stop every task outside the working hours below."
    )
    working_days: str = Field(
        default="MON-FRI",
        pattern=rf"^{_WORK_DAY}(-{_WORK_DAY})?(,{_WORK_DAY}(-{_WORK_DAY})?)*$",
        description="Days with tasks running when scale_to_zero (cron day-of-week, UTC).",
    )
    working_hours_start: int = Field(default=7, ge=0, le=23, description="Start hour, UTC.")
    working_hours_end: int = Field(default=19, ge=1, le=23, description="End hour, UTC.")
    certificate_arn: str | None = Field(
        default=None,
        pattern=r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[A-Za-z0-9-]+$",
        description="ACM certificate: serve HTTPS on 443 (else HTTP on 80, inside the VPC).",
    )
    oidc: OidcSettings | None = Field(
        default=None, description="ALB OIDC authentication (needs certificate_arn)."
    )
    allowed_hosts: tuple[str, ...] = Field(
        default=(), description="Extra Host names MLflow accepts besides the ALB's DNS name."
    )
    db_min_capacity: HalfAcu = Field(
        default=0,
        ge=0,
        le=256,
        description="Aurora ACUs when idle, in 0.5 steps; 0 pauses the database.",
    )
    db_max_capacity: HalfAcu = Field(
        default=2, ge=1, le=256, description="Aurora ACU ceiling, in 0.5 steps."
    )
    db_multi_az: bool = Field(default=False, description="Add a reader in a second zone.")
    db_backup_days: int = Field(default=7, ge=1, le=35, description="Automated backup retention.")

    @model_validator(mode="after")
    def _is_consistent(self) -> Self:
        allowed = _FARGATE_MEMORY_MIB[self.cpu]
        if self.memory_mib not in allowed:
            raise ValueError(
                f"tracking.fargate.memory_mib={self.memory_mib} does not fit cpu={self.cpu}: "
                f"use {allowed[0]}..{allowed[-1]} in steps of {allowed[1] - allowed[0]}"
            )
        if self.max_tasks < self.min_tasks:
            raise ValueError(
                f"tracking.fargate.max_tasks={self.max_tasks} is below min_tasks={self.min_tasks}"
            )
        if self.working_hours_end <= self.working_hours_start:
            raise ValueError(
                f"tracking.fargate.working_hours_end={self.working_hours_end} must be after "
                f"working_hours_start={self.working_hours_start} (UTC, same day)"
            )
        if self.db_max_capacity < self.db_min_capacity:
            raise ValueError(
                f"tracking.fargate.db_max_capacity={self.db_max_capacity} is below "
                f"db_min_capacity={self.db_min_capacity}"
            )
        if self.oidc is not None and self.certificate_arn is None:
            raise ValueError(
                "tracking.fargate.oidc needs tracking.fargate.certificate_arn "
                "(the ALB authenticates only on HTTPS listeners)"
            )
        return self


class Ec2TrackingSettings(Section):
    """Self-hosted MLflow on one EC2 instance with RDS MySQL (tracking.mode=ec2)."""

    instance_type: str = Field(
        default="t3.small",
        pattern=r"^[a-z][a-z0-9-]*\.[a-z0-9]+$",
        description="Instance type of the MLflow server (x86_64 or Graviton).",
    )
    volume_gib: int = Field(default=30, ge=30, le=1000, description="Encrypted root volume.")
    key_pair_name: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_ .@/+=-]{1,255}$",
        description="Optional existing EC2 key pair; shell access is through SSM without it.",
    )
    db_instance_type: str = Field(
        default="db.t3.micro",
        pattern=r"^db\.[a-z][a-z0-9-]*\.[a-z0-9]+$",
        description="RDS MySQL instance class.",
    )
    db_storage_gib: int = Field(default=20, ge=20, le=1000, description="RDS storage (gp3).")
    db_multi_az: bool = Field(default=False, description="RDS standby in a second zone.")
    db_backup_days: int = Field(default=7, ge=1, le=35, description="Automated backup retention.")
    cpu_alarm_percent: int = Field(default=80, ge=1, le=100, description="CPU alarm threshold.")
    disk_alarm_percent: int = Field(default=80, ge=1, le=100, description="Disk alarm threshold.")


class TrackingSettings(Section):
    """MLflow: which of the four modes, and the settings every mode shares."""

    mode: TrackingMode = Field(
        default="serverless",
        description="serverless (SageMaker MLflow App), managed (tracking server), fargate or ec2.",
    )
    mlflow_version: str | None = Field(
        default=None,
        pattern=r"^\d+\.\d+(\.\d+)?$",
        description=(
            f"MLflow server version; null: {MANAGED_MLFLOW_VERSION} (managed), "
            f"{SELF_HOSTED_MLFLOW_VERSION} (fargate, ec2: an exact release). The App picks its own."
        ),
    )
    automatic_model_registration: bool = Field(
        default=True, description="Register models logged by SageMaker automatically."
    )
    maintenance_window: MaintenanceWindow = Field(
        default="Tue:03:30", description="Weekly maintenance start, Day:HH:MM UTC."
    )
    size: Literal["Small", "Medium", "Large"] = Field(
        default="Small", description="Managed tracking server size (tracking.mode=managed)."
    )
    extra_policy_arns: tuple[PolicyArn, ...] = Field(
        default=(), description="Managed policies added to the MLflow server's role (any mode)."
    )
    fargate: FargateTrackingSettings = Field(
        default=FargateTrackingSettings(), description="Settings of tracking.mode=fargate."
    )
    ec2: Ec2TrackingSettings = Field(
        default=Ec2TrackingSettings(), description="Settings of tracking.mode=ec2."
    )

    @model_validator(mode="after")
    def _version_fits_the_mode(self) -> Self:
        version = self.mlflow_version
        if version is None or self.mode not in SELF_HOSTED_MODES:
            return self
        if not re.fullmatch(r"3\.\d+\.\d+", version):
            raise ValueError(
                f"tracking.mlflow_version={version!r}: tracking.mode={self.mode!r} installs an "
                "exact MLflow 3 release, e.g. 3.17.2"
            )
        return self

    @property
    def server_mlflow_version(self) -> str:
        """The version the server runs (for serverless the App reports its own at deploy)."""
        if self.mlflow_version is not None:
            return self.mlflow_version
        return (
            SELF_HOSTED_MLFLOW_VERSION if self.mode in SELF_HOSTED_MODES else MANAGED_MLFLOW_VERSION
        )


# SageMaker's rule for user profile (and domain, space, app) names.
_STUDIO_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")


def _check_user_profile_name(value: str) -> str:
    if not _STUDIO_NAME.match(value):
        raise ValueError(
            "must be 1-63 letters, digits and hyphens, starting and ending with a letter or digit"
        )
    return value


def _split_names(value: Any) -> Any:
    """``-c studio.user_profiles=alice,bob`` arrives as one string: accept it as a list."""
    if isinstance(value, str):
        return tuple(name.strip() for name in value.split(",") if name.strip())
    return value


UserProfileName = Annotated[str, AfterValidator(_check_user_profile_name)]
# Studio's idle-shutdown bounds (AWS::SageMaker::Domain IdleSettings).
IdleMinutes = Annotated[int, Field(ge=60, le=525600)]
StudioInstanceType = Annotated[
    str,
    Field(pattern=r"^ml\.[a-z0-9-]+\.[a-z0-9]+$"),
    _instance_type_of("AppInstanceType", "Studio app"),
]


class StudioSettings(Section):
    """The SageMaker Studio domain: users, apps, idle shutdown and storage."""

    enabled: bool = Field(default=False, description="Deploy the Studio stack.")
    user_profiles: Annotated[tuple[UserProfileName, ...], BeforeValidator(_split_names)] = Field(
        default=(),
        description="User profiles to create (SageMaker names: letters, digits, hyphens; max 63).",
    )
    network_access: Literal["VpcOnly", "PublicInternetOnly"] = Field(
        default="VpcOnly",
        description="VpcOnly: all app traffic through the VPC; PublicInternetOnly: SageMaker's internet.",
    )
    idle_timeout_minutes: IdleMinutes = Field(
        default=60, description="JupyterLab/Code Editor apps stop after this many idle minutes."
    )
    max_idle_timeout_minutes: IdleMinutes = Field(
        default=480, description="The longest idle timeout a user may choose (minutes)."
    )
    jupyterlab_instance_type: StudioInstanceType = Field(
        default="ml.t3.medium", description="Default instance type of JupyterLab spaces."
    )
    code_editor_instance_type: StudioInstanceType = Field(
        default="ml.t3.medium", description="Default instance type of Code Editor spaces."
    )
    default_ebs_volume_gb: int = Field(
        default=5, ge=5, le=16384, description="EBS size of a new space (GB)."
    )
    max_ebs_volume_gb: int = Field(
        default=100, ge=5, le=16384, description="Largest EBS size a user may give a space (GB)."
    )

    @model_validator(mode="after")
    def _limits_are_consistent(self) -> Self:
        duplicates = sorted({n for n in self.user_profiles if self.user_profiles.count(n) > 1})
        if duplicates:
            raise ValueError(
                f"studio.user_profiles lists {', '.join(duplicates)} more than once; "
                "each profile name must be unique"
            )
        if self.idle_timeout_minutes > self.max_idle_timeout_minutes:
            raise ValueError(
                f"studio.idle_timeout_minutes={self.idle_timeout_minutes} is above "
                f"studio.max_idle_timeout_minutes={self.max_idle_timeout_minutes}"
            )
        if self.default_ebs_volume_gb > self.max_ebs_volume_gb:
            raise ValueError(
                f"studio.default_ebs_volume_gb={self.default_ebs_volume_gb} is above "
                f"studio.max_ebs_volume_gb={self.max_ebs_volume_gb}"
            )
        return self


# --- pipelines -------------------------------------------------------------------------------

_SAGEMAKER_INSTANCE_TYPE = r"^ml\.[a-z0-9-]+\.[a-z0-9]+$"
# EventBridge cron fields: minutes hours day-of-month month day-of-week year.
_CRON_FIELD_PATTERNS = (
    ("minutes", r"[0-9*,/-]+"),
    ("hours", r"[0-9*,/-]+"),
    ("day-of-month", r"(\?|[0-9*,/-]+|L|LW|[0-9]{1,2}W)"),
    ("month", r"([0-9*,/-]|JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC)+"),
    ("day-of-week", r"(\?|([1-7*,/#-]|L|SUN|MON|TUE|WED|THU|FRI|SAT)+)"),
    ("year", r"[0-9*,/-]+"),
)
_CRON_RANGES = {"minutes": (0, 59), "hours": (0, 23), "day-of-month": (1, 31), "month": (1, 12),
                "day-of-week": (1, 7), "year": (1970, 2199)}  # fmt: skip
_CRON_HELP = (
    "must be cron(minutes hours day-of-month month day-of-week year): 6 fields in EventBridge "
    "syntax with ? in day-of-month or day-of-week, e.g. cron(0 2 ? * SUN *)"
)


def _check_cron(value: str) -> str:
    match = re.fullmatch(r"cron\((?P<fields>[^()]+)\)", value.strip())
    fields = match["fields"].split() if match else []
    if len(fields) != len(_CRON_FIELD_PATTERNS):
        raise ValueError(_CRON_HELP)
    for (name, pattern), field in zip(_CRON_FIELD_PATTERNS, fields, strict=True):
        if not re.fullmatch(pattern, field.upper()):
            raise ValueError(f"{name} field {field!r} is not valid; {_CRON_HELP}")
        low, high = _CRON_RANGES[name]
        for number in re.findall(r"(?<![/#])\b\d+", field):
            if not low <= int(number) <= high:
                raise ValueError(f"{name} field {field!r} is outside {low}-{high}; {_CRON_HELP}")
    for nth in re.findall(r"#(\d+)", fields[4]):
        if not 1 <= int(nth) <= 5:
            raise ValueError(
                f"day-of-week field {fields[4]!r}: #{nth} is not a week of the month (1-5); "
                f"{_CRON_HELP}"
            )
    if (fields[2] == "?") == (fields[4] == "?"):
        raise ValueError(f"exactly one of day-of-month and day-of-week must be ?; {_CRON_HELP}")
    return f"cron({' '.join(fields)})"


def _check_time_zone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError("must be an IANA time zone name such as UTC or Europe/Berlin") from None
    return value


CronExpression = Annotated[str, AfterValidator(_check_cron)]
TimeZoneName = Annotated[str, AfterValidator(_check_time_zone)]
TrainingInstanceType = Annotated[
    str,
    Field(pattern=_SAGEMAKER_INSTANCE_TYPE),
    _instance_type_of("TrainingInstanceType", "training"),
]
ProcessingInstanceType = Annotated[
    str,
    Field(pattern=_SAGEMAKER_INSTANCE_TYPE),
    _instance_type_of("ProcessingInstanceType", "processing"),
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


# Subnet sizes of the private network construct (mlops_cdk/constructs/private_network.py).
PRIVATE_SUBNET_MASK = 20
PUBLIC_SUBNET_MASK = 24

_DAY_NUMBERS = {"SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7}
_MONTH_NUMBERS = {name: i for i, name in enumerate(
    ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), 1)}  # fmt: skip


def _cron_set(field: str, low: int, high: int, names: Mapping[str, int]) -> set[int] | None:
    """The values a cron field matches; None for what this check does not model (L, W, #)."""
    if field in ("*", "?"):
        return set(range(low, high + 1))
    if any(mark in field for mark in ("L", "W", "#")):
        return None
    values: set[int] = set()
    for part in field.upper().split(","):
        base, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if base == "*":
            first, last = low, high
        elif "-" in base:
            first_text, last_text = base.split("-", 1)
            first, last = (
                names.get(first_text) or int(first_text),
                names.get(last_text) or int(last_text),
            )
        else:
            first = names.get(base) or int(base)
            last = high if step_text else first
        if first <= last:
            values.update(range(first, last + 1, step))
        else:  # a range that wraps (FRI-MON)
            values.update(range(first, high + 1, step), range(low, last + 1, step))
    return values


def _cron_fire_times(cron: str, time_zone: str) -> list[dt.datetime]:
    """When an EventBridge cron fires over one year (2027, both DST changes), as aware datetimes.

    Day fields with L, W or # are treated as matching any day (the hours still count)."""
    minutes, hours, dom, month, dow, _year = cron[len("cron(") : -1].split()
    minute_set = _cron_set(minutes, 0, 59, {}) or set()
    hour_set = _cron_set(hours, 0, 23, {}) or set()
    dom_set = _cron_set(dom, 1, 31, {})
    month_set = _cron_set(month, 1, 12, _MONTH_NUMBERS)
    dow_set = _cron_set(dow, 1, 7, _DAY_NUMBERS)
    zone = zoneinfo.ZoneInfo(time_zone)
    times: list[dt.datetime] = []
    day = dt.date(2027, 1, 1)
    while day.year == 2027:
        weekday = (day.isoweekday() % 7) + 1  # EventBridge: 1 = SUN
        if (
            (month_set is None or day.month in month_set)
            and (dom_set is None or day.day in dom_set)
            and (dow_set is None or weekday in dow_set)
        ):
            times.extend(
                dt.datetime(day.year, day.month, day.day, h, m, tzinfo=zone)
                for h in sorted(hour_set)
                for m in sorted(minute_set)
            )
        day += dt.timedelta(days=1)
    return times


def _weekdays(working_days: str) -> set[int]:
    """Python weekdays (MON = 0) of a cron day-of-week list such as MON-FRI or SAT,SUN."""
    python = {"MON": 0, "TUE": 1, "WED": 2, "THU": 3, "FRI": 4, "SAT": 5, "SUN": 6}
    order = list(python)
    days: set[int] = set()
    for part in working_days.split(","):
        first, _, last = part.partition("-")
        start, end = order.index(first), order.index(last or first)
        span = range(start, end + 1) if start <= end else [*range(start, 7), *range(0, end + 1)]
        days.update(python[order[i]] for i in span)
    return days


class Settings(Section):
    """Everything one environment needs, validated once."""

    env_name: str = Field(pattern=r"^[a-z][a-z0-9]{1,9}$")
    project: str = Field(
        default="mlops",
        pattern=r"^[a-z][a-z0-9-]{1,18}[a-z0-9]$",
        description="Prefix of every stack and resource name.",
    )
    account: str | None = Field(
        default=None,
        pattern=r"^\d{12}$",
        description="Target account; default CDK_DEFAULT_ACCOUNT, else environment-agnostic.",
    )
    region: str | None = Field(
        default=None,
        pattern=r"^[a-z]{2}(-[a-z]+)+-\d$",
        description="Target region; default CDK_DEFAULT_REGION, else environment-agnostic.",
    )
    removal_policy: Literal["destroy", "retain"] = Field(
        default="retain",
        description="destroy: stateful resources go with the stack; retain: they stay.",
    )
    termination_protection: bool = Field(
        default=False, description="Protect the stateful stacks from deletion."
    )
    log_retention_days: LogRetentionDays = Field(
        default=30, description="Retention of every log group (a CloudWatch Logs period)."
    )
    tags: Annotated[dict[str, str], AfterValidator(_check_tags)] = Field(
        default_factory=dict,
        description="Extra tags on every resource (keys 1-128 characters, not aws:; values <= 256).",
    )
    storage: StorageSettings = StorageSettings()
    network: NetworkSettings = NetworkSettings()
    tracking: TrackingSettings = TrackingSettings()
    studio: StudioSettings = StudioSettings()
    pipelines: PipelinesSettings = PipelinesSettings()

    @model_validator(mode="after")
    def _zones_are_in_the_region(self) -> Self:
        zones = self.network.availability_zones
        if zones is None:
            return self
        if self.region is None:
            raise ValueError(
                "network.availability_zones needs region (in cdk.json or CDK_DEFAULT_REGION)"
            )
        for zone in zones:
            if not re.fullmatch(rf"{re.escape(self.region)}[a-z]", zone):
                raise ValueError(
                    f"network.availability_zones entry {zone!r} is not a zone of region "
                    f"{self.region!r} (expected e.g. {self.region}a)"
                )
        return self

    @model_validator(mode="after")
    def _network_is_there_when_needed(self) -> Self:
        if self.network.enabled is False and self.tracking.mode in SELF_HOSTED_MODES:
            raise ValueError(
                f"tracking.mode={self.tracking.mode!r} runs in a VPC but network.enabled=false; "
                "enable the network or pick tracking.mode serverless or managed"
            )
        return self

    @model_validator(mode="before")
    @classmethod
    def _ec2_tracking_defaults_to_nat(cls, data: Any) -> Any:
        """The ec2 mode installs MLflow from PyPI at boot: without an explicit egress, use NAT."""
        if not isinstance(data, dict):
            return data
        tracking, network = data.get("tracking"), data.get("network")
        if isinstance(tracking, Mapping) and tracking.get("mode") == "ec2":
            network = dict(network) if isinstance(network, Mapping) else {}
            network.setdefault("egress", "nat_instance")
            return {**data, "network": network}
        return data

    @model_validator(mode="after")
    def _self_hosted_tracking_can_reach_aws(self) -> Self:
        mode, network = self.tracking.mode, self.network
        if mode == "ec2" and network.egress == "endpoints":
            raise ValueError(
                "tracking.mode='ec2' installs MLflow from PyPI at boot and needs internet "
                "egress, but network.egress='endpoints'; set network.egress to nat_instance or "
                "nat_gateway, or use tracking.mode=fargate"
            )
        needed = ("ecr_api", "ecr_docker", "logs", "secrets_manager")
        missing = [e for e in needed if e not in network.interface_endpoints]
        if mode == "fargate" and network.egress == "endpoints" and missing:
            raise ValueError(
                f"tracking.mode='fargate' with network.egress='endpoints' needs interface "
                f"endpoints {', '.join(missing)} in network.interface_endpoints"
            )
        if mode == "fargate" and self.tracking.fargate.oidc and network.egress == "endpoints":
            raise ValueError(
                "tracking.fargate.oidc needs the load balancer to reach the identity provider, "
                "but network.egress='endpoints' has no internet; set network.egress to "
                "nat_gateway or nat_instance"
            )
        return self

    @model_validator(mode="after")
    def _subnets_fit_the_cidr(self) -> Self:
        if not self.needs_network:
            return self
        network = self.network
        zones = len(network.availability_zones or ()) or network.max_azs
        public = network.egress != "endpoints"
        needed = zones * 2 ** (32 - PRIVATE_SUBNET_MASK)
        needed += zones * 2 ** (32 - PUBLIC_SUBNET_MASK) if public else 0
        size = ipaddress.IPv4Network(network.cidr).num_addresses
        if needed > size:
            smallest = 32 - (needed - 1).bit_length()
            subnets = f"{zones} private /{PRIVATE_SUBNET_MASK}" + (
                f" and {zones} public /{PUBLIC_SUBNET_MASK}" if public else ""
            )
            raise ValueError(
                f"network.cidr={network.cidr!r} is too small for {subnets} subnets (one per "
                f"zone): use a /{smallest} or larger"
            )
        return self

    @model_validator(mode="after")
    def _ec2_instance_types_exist(self) -> Self:
        # Checked only where used: botocore's EC2 model costs ~0.3 s to load.
        used = []
        if self.tracking.mode == "ec2":
            used.append(("tracking.ec2.instance_type", self.tracking.ec2.instance_type))
        if self.needs_network and self.network.egress == "nat_instance":
            used.append(("network.nat_instance_type", self.network.nat_instance_type))
        for setting, value in used:
            if value not in _ec2_instance_types():
                raise ValueError(
                    f"{setting}={value!r} is not an EC2 instance type (botocore's ec2 "
                    "InstanceType list, e.g. t3.small)"
                )
        return self

    @model_validator(mode="after")
    def _mlflow_is_up_when_the_schedules_run(self) -> Self:
        fargate = self.tracking.fargate
        if self.tracking.mode != "fargate" or not fargate.scale_to_zero:
            return self
        days = _weekdays(fargate.working_days)
        for name in ("training", "inference"):
            schedule: ScheduleSettings = getattr(self.pipelines.schedules, name)
            if not schedule.enabled:
                continue
            for when in _cron_fire_times(schedule.cron, schedule.time_zone):
                utc = when.astimezone(dt.UTC)
                if utc.weekday() in days and (
                    fargate.working_hours_start <= utc.hour < fargate.working_hours_end
                ):
                    continue
                raise ValueError(
                    f"pipelines.schedules.{name}.cron={schedule.cron!r} ({schedule.time_zone}) "
                    "starts runs while tracking.fargate.scale_to_zero stops MLflow (working hours "
                    f"{fargate.working_days} {fargate.working_hours_start}-"
                    f"{fargate.working_hours_end} UTC), e.g. {utc:%a %H:%M} UTC; move the "
                    "schedule into the working hours or set scale_to_zero=false"
                )
        return self

    @model_validator(mode="after")
    def _private_clients_have_their_endpoints(self) -> Self:
        network = self.network
        if not self.needs_network or network.egress != "endpoints":
            return self
        needs: list[tuple[str, tuple[str, ...]]] = []
        if self.studio.enabled and self.studio.network_access == "VpcOnly":
            # https://docs.aws.amazon.com/sagemaker/latest/dg/studio-updated-and-internet-access.html
            needs.append(
                (
                    "studio.network_access='VpcOnly'",
                    ("sagemaker_api", "sagemaker_runtime", "sagemaker_studio", "sts"),
                )
            )
        if self.jobs_in_vpc:
            # https://docs.aws.amazon.com/sagemaker/latest/dg/train-vpc.html: the image from ECR,
            # logs to CloudWatch; SageMaker MLflow (serverless, managed) through its API.
            job_needs: tuple[str, ...] = ("sagemaker_api", "ecr_api", "ecr_docker", "logs")
            if self.tracking.mode not in SELF_HOSTED_MODES:
                job_needs += ("sagemaker_experiments",)
            setting = (
                "pipelines.vpc=true"
                if self.pipelines.vpc
                else (
                    f"pipelines.vpc (null: jobs in the VPC for tracking.mode={self.tracking.mode!r})"
                )
            )
            needs.append((setting, job_needs))
        for who, wanted in needs:
            missing = [e for e in wanted if e not in network.interface_endpoints]
            if missing:
                raise ValueError(
                    f"{who} with network.egress='endpoints' needs interface endpoints "
                    f"{', '.join(missing)} in network.interface_endpoints (or use NAT egress)"
                )
        return self

    @model_validator(mode="after")
    def _studio_can_reach_what_it_needs(self) -> Self:
        if not self.studio.enabled:
            return self
        if self.network.enabled is False:
            raise ValueError(
                "studio.enabled=true needs the VPC (a Studio domain's home file system lives in "
                "its subnets) but network.enabled=false; enable the network or disable studio"
            )
        if self.tracking.mode in SELF_HOSTED_MODES and self.studio.network_access != "VpcOnly":
            raise ValueError(
                f"studio.network_access={self.studio.network_access!r} cannot reach the private "
                f"MLflow of tracking.mode={self.tracking.mode!r}; use VpcOnly"
            )
        return self

    @model_validator(mode="after")
    def _pipelines_can_reach_mlflow(self) -> Self:
        if self.pipelines.vpc is True and self.network.enabled is False:
            raise ValueError(
                "pipelines.vpc=true runs jobs in the private subnets but network.enabled=false; "
                "enable the network or set pipelines.vpc=false"
            )
        if self.pipelines.vpc is False and self.tracking.mode in SELF_HOSTED_MODES:
            raise ValueError(
                f"pipelines.vpc=false cannot reach the private MLflow of tracking.mode="
                f"{self.tracking.mode!r}; set pipelines.vpc=true (or leave it null)"
            )
        prefix = self.pipelines.lambda_launcher.job_name_prefix or f"{self.name_prefix}-train"
        if len(prefix) > 50:
            raise ValueError(
                f"pipelines.lambda_launcher.job_name_prefix={prefix!r} is longer than 50 "
                "characters (job names add -yyyymmddHHMM and stop at 63)"
            )
        return self

    @computed_field  # type: ignore[prop-decorator]
    @property
    def name_prefix(self) -> str:
        return f"{self.project}-{self.env_name}"

    def stack_name(self, unit: str) -> str:
        return f"{self.name_prefix}-{unit}"

    @property
    def removal(self) -> RemovalPolicy:
        return RemovalPolicy.DESTROY if self.removal_policy == "destroy" else RemovalPolicy.RETAIN

    @property
    def log_retention(self) -> logs.RetentionDays:
        return retention_days(self.log_retention_days)

    @property
    def aws_env(self) -> Environment | None:
        if self.account is None and self.region is None:
            return None  # environment-agnostic: deployable to whatever the CLI resolves
        return Environment(account=self.account, region=self.region)

    @property
    def needs_network(self) -> bool:
        """Whether this environment deploys the network stack."""
        return self.network.enabled is not False and (
            self.network.enabled is True
            or self.tracking.mode in SELF_HOSTED_MODES
            or self.studio.enabled
            or self.pipelines.vpc is True
        )

    @property
    def jobs_in_vpc(self) -> bool:
        """Whether SageMaker jobs run in the private subnets (pipelines.vpc, null: auto)."""
        if self.pipelines.vpc is not None:
            return self.pipelines.vpc
        return self.tracking.mode in SELF_HOSTED_MODES

    @classmethod
    def from_context(cls, context: Mapping[str, Any], environ: Mapping[str, str]) -> Self:
        """Build settings from CDK context (cdk.json + ``-c``) and the process environment.

        Raises :class:`ConfigError` with a one-line message for any bad input.
        """
        env_name = context.get("env")
        if env_name is None:
            env_name = DEFAULT_ENVIRONMENT
        environments = context.get("environments")
        if not isinstance(environments, Mapping):
            raise ConfigError("cdk.json context has no 'environments' object")
        if env_name not in environments:
            allowed = ", ".join(sorted(environments))
            raise ConfigError(f"env={env_name!r} is not one of {allowed}")
        env_values = environments[env_name]
        if not isinstance(env_values, Mapping):
            raise ConfigError(f"environments.{env_name} in cdk.json must be an object")

        raw: dict[str, Any] = {
            "account": environ.get("CDK_DEFAULT_ACCOUNT"),
            "region": environ.get("CDK_DEFAULT_REGION"),
        }
        raw = _deep_merge(raw, dict(env_values))
        overrides = _overrides(context, field_names=set(cls.model_fields))
        raw = _deep_merge(raw, overrides)
        raw["env_name"] = env_name
        try:
            return cls.model_validate(raw)
        except ValidationError as err:
            sources = (("-c", overrides), (f"cdk.json environments.{env_name}", env_values))
            raise ConfigError(describe(err, sources=sources)) from None


def _overrides(context: Mapping[str, Any], *, field_names: set[str]) -> dict[str, Any]:
    """Turn ``-c a.b=value`` context keys into a nested dict; reject unknown keys.

    Merge order: the shorter key first, whatever the order on the command line. A whole
    section (``-c tracking={...}``) is merged into cdk.json's values, and a dotted key inside
    it (``-c tracking.size=Large``) is merged after it, so the more specific setting wins and
    neither silently drops the other.
    """
    keys = [
        key
        for key in context
        if key not in _OWN_CONTEXT_KEYS and key not in _CDK_CONTEXT_KEYS and not _is_cdk_key(key)
    ]
    nested: dict[str, Any] = {}
    for key in sorted(keys, key=lambda k: k.count(".")):  # stable: same depth keeps its order
        path = key.split(".")
        if path[0] not in field_names or path[0] == "env_name":
            allowed = ", ".join(sorted((field_names - {"env_name"}) | _OWN_CONTEXT_KEYS))
            raise ConfigError(f"unknown setting {key!r} (-c); top-level settings are: {allowed}")
        value = _parse_cli_value(key, context[key])
        deeper = [k for k in keys if k.startswith(key + ".")]
        if deeper and not isinstance(value, dict):
            raise ConfigError(
                f"-c {key}={context[key]!r} must be a JSON object: -c {deeper[0]} sets a key "
                "inside it"
            )
        cursor = nested
        for part in path[:-1]:
            cursor = cursor.setdefault(part, {})
        if isinstance(value, dict) and isinstance(cursor.get(path[-1]), dict):
            cursor[path[-1]] = _deep_merge(cursor[path[-1]], value)
        else:
            cursor[path[-1]] = value
    return nested


def _is_cdk_key(key: str) -> bool:
    # Feature flags ("@aws-cdk/..."), CDK internals ("aws:cdk:..."), cached lookups ("...:account=...").
    return key.startswith("@") or ":" in key


def _parse_cli_value(key: str, value: Any) -> Any:
    """``-c`` values arrive as strings; lists, objects and null may be written as JSON."""
    if isinstance(value, str) and (value.lstrip()[:1] in "[{" or value == "null"):
        try:
            return json.loads(value)
        except json.JSONDecodeError as err:
            raise ConfigError(
                f"-c {key}={value!r} is not valid JSON: {err.msg} at line {err.lineno} "
                f"column {err.colno} (char {err.pos})"
            ) from None
    return value


def _deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def describe(
    err: ValidationError, *, sources: tuple[tuple[str, Mapping[str, Any]], ...] = ()
) -> str:
    """One line per the project's error style: setting, bad value, what is allowed, and where
    the value was set (``-c`` or ``cdk.json environments.<env>``) when that is one place."""
    parts = []
    for error in err.errors(include_url=False):
        location = ".".join(str(p) for p in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            part = f"unknown setting {location!r}{_allowed_keys_hint(error['loc'])}"
        elif error["type"] == "missing":
            part = f"{location} is required"
        elif not location or isinstance(error["input"], dict):
            part = message  # a model-level check: its message names the settings
        else:
            part = f"{location}={error['input']!r}: {_lower_first(message)}"
        where = [name for name, values in sources if _holds(values, error["loc"])]
        parts.append(f"{part} (set in {where[0]})" if len(where) == 1 else part)
    return "; ".join(parts)


def _holds(values: Mapping[str, Any], loc: tuple[int | str, ...]) -> bool:
    """Whether the nested mapping sets the setting at `loc` (an empty loc is no one place)."""
    cursor: Any = values
    for part in loc:
        if isinstance(cursor, Mapping) and str(part) in cursor:
            cursor = cursor[str(part)]
        elif isinstance(cursor, list | tuple) and isinstance(part, int) and part < len(cursor):
            cursor = cursor[part]
        else:
            return False
    return bool(loc)


def _allowed_keys_hint(loc: tuple[int | str, ...]) -> str:
    model: type[BaseModel] = Settings
    for part in loc[:-1]:
        annotation = model.model_fields[str(part)].annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return ""
        model = annotation
    allowed = ", ".join(name for name in model.model_fields if name != "env_name")
    return f"; allowed here: {allowed}"


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]
