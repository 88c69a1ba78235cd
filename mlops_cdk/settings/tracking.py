"""tracking: MLflow in one of four modes (serverless, managed, fargate, ec2)."""

from __future__ import annotations

import re
from typing import Annotated, Literal, Self, get_args

from pydantic import AfterValidator, Field, model_validator

from mlops_cdk.settings.common import IntChoice, Section

TrackingMode = Literal["serverless", "managed", "fargate", "ec2"]
TRACKING_MODES: tuple[TrackingMode, ...] = get_args(TrackingMode)
SELF_HOSTED_MODES: frozenset[str] = frozenset({"fargate", "ec2"})

_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _check_maintenance_window(value: str) -> str:
    match = re.fullmatch(r"(?P<day>[A-Za-z]{3}):(?P<hour>\d{2}):(?P<minute>\d{2})", value)
    day = match["day"].capitalize() if match else ""
    if not match or day not in _WEEKDAYS or int(match["hour"]) > 23 or int(match["minute"]) > 59:
        raise ValueError(f"must be Day:HH:MM in UTC with Day one of {'|'.join(_WEEKDAYS)}")
    return f"{day}:{match['hour']}:{match['minute']}"


def _check_half_acu(value: float) -> float:
    if (value * 2) != int(value * 2):
        raise ValueError("must be a multiple of 0.5 ACU (Aurora Serverless v2 capacity steps)")
    return value


HalfAcu = Annotated[float, AfterValidator(_check_half_acu)]

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
    secret_rotation_days: int = Field(
        default=30,
        ge=8,
        le=365,
        description=(
            "Days between Secrets Manager rotations of the self-hosted server's secrets "
            "(fargate, ec2: database and basic-auth users); more than the 7 days a server "
            "runs between restarts (docs/tracking.md)."
        ),
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

    @model_validator(mode="after")
    def _tls_fits_the_mode(self) -> Self:
        # ec2 mode cannot serve TLS with an ACM certificate: ACM keeps the private key of the
        # certificates it issues (they are used by integrated services such as load balancers,
        # not installed on instances). Refuse rather than serve plain HTTP behind a setting
        # that says HTTPS.
        if self.mode == "ec2" and self.fargate.certificate_arn is not None:
            raise ValueError(
                "tracking.fargate.certificate_arn is set but tracking.mode='ec2' cannot serve "
                "HTTPS (an ACM certificate cannot be installed on an instance); use "
                "tracking.mode=fargate, whose load balancer terminates TLS, or unset it"
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
