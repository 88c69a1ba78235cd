"""The root model: every section of one environment, and the rules that span sections."""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, Literal, Self

from pydantic import AfterValidator, Field, computed_field, model_validator

from mlops_cdk.settings import endpoints
from mlops_cdk.settings.common import LogRetentionDays, Section, ec2_instance_types, retention_days
from mlops_cdk.settings.cron import fire_times, weekdays
from mlops_cdk.settings.loader import settings_from_context
from mlops_cdk.settings.network import (
    PRIVATE_SUBNET_MASK,
    PUBLIC_SUBNET_MASK,
    InterfaceEndpoint,
    NetworkSettings,
)
from mlops_cdk.settings.pipelines import PipelinesSettings, ScheduleSettings
from mlops_cdk.settings.storage import StorageSettings
from mlops_cdk.settings.studio import StudioSettings
from mlops_cdk.settings.tracking import SELF_HOSTED_MODES, TrackingSettings

if TYPE_CHECKING:
    from aws_cdk import Environment, RemovalPolicy
    from aws_cdk import aws_logs as logs


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
    # Off by default: a new account's concurrency quota can be below the 100 + N that reserving
    # needs, and dev must deploy anywhere; staging and prod reserve 1 in cdk.json (null there
    # turns it off: the loader keeps cdk.json's nulls, settings/loader.py _with_nulls).
    custom_resource_reserved_concurrency: int | None = Field(
        default=None,
        ge=1,
        le=10,
        description="Concurrent runs reserved for each of CDK's own custom-resource handlers (S3 "
        "auto-delete-objects, VPC default-security-group restriction); null: none, the "
        "account's unreserved pool (reserving needs a concurrency quota of at least 100 + this).",
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
        # Checked only where used: botocore's EC2 model costs ~0.05 s to load.
        used = []
        if self.tracking.mode == "ec2":
            used.append(("tracking.ec2.instance_type", self.tracking.ec2.instance_type))
        if self.needs_network and self.network.egress == "nat_instance":
            used.append(("network.nat_instance_type", self.network.nat_instance_type))
        for setting, value in used:
            if value not in ec2_instance_types():
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
        days = weekdays(fargate.working_days)
        for name in ("training", "inference"):
            schedule: ScheduleSettings = getattr(self.pipelines.schedules, name)
            if not schedule.enabled:
                continue
            for when in fire_times(schedule.cron, schedule.time_zone):
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
        """An explicit endpoint list must hold every endpoint the features call from the VPC."""
        network = self.network
        zones = len(network.availability_zones or ()) or network.max_azs
        if network.endpoint_zones is not None and network.endpoint_zones > zones:
            raise ValueError(
                f"network.endpoint_zones={network.endpoint_zones} is more than the {zones} "
                "zones of the VPC (network.max_azs or network.availability_zones)"
            )
        if network.interface_endpoints is None:
            return self
        needed = endpoints.needed_endpoints(self)
        missing = [name for name in needed if name not in network.interface_endpoints]
        if missing:
            detail = ", ".join(f"{name} ({needed[name]})" for name in missing)
            raise ValueError(
                f"network.interface_endpoints lacks {detail}; add them, leave the setting null "
                "(derived from the features) or use NAT egress"
            )
        return self

    @property
    def interface_endpoints(self) -> tuple[InterfaceEndpoint, ...]:
        """The interface endpoints the network builds (mlops_cdk/settings/endpoints.py)."""
        return endpoints.interface_endpoints(self)

    @property
    def endpoint_zones(self) -> int:
        """How many zones hold each interface endpoint (mlops_cdk/settings/endpoints.py)."""
        return endpoints.endpoint_zones(self)

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

    # The CDK values below are imported when first asked for, by the stacks: the settings
    # themselves load and validate without aws_cdk, whose import starts jsii's Node process
    # (app.py checks them first, so a bad setting is answered at once).
    @property
    def removal(self) -> RemovalPolicy:
        from aws_cdk import RemovalPolicy  # noqa: PLC0415

        return RemovalPolicy.DESTROY if self.removal_policy == "destroy" else RemovalPolicy.RETAIN

    @property
    def log_retention(self) -> logs.RetentionDays:
        return retention_days(self.log_retention_days)

    @property
    def aws_env(self) -> Environment | None:
        if self.account is None and self.region is None:
            return None  # environment-agnostic: deployable to whatever the CLI resolves
        from aws_cdk import Environment  # noqa: PLC0415

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
        return settings_from_context(cls, context, environ)
