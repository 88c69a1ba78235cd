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

import ipaddress
import json
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Self, get_args

from aws_cdk import Environment, RemovalPolicy
from aws_cdk import aws_logs as logs
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    computed_field,
    model_validator,
)

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


def _check_log_retention(days: int) -> int:
    if days not in LOG_RETENTION_DAYS:
        allowed = ", ".join(str(d) for d in LOG_RETENTION_DAYS)
        raise ValueError(f"must be one of {allowed}")
    return days


LogRetentionDays = Annotated[int, AfterValidator(_check_log_retention)]

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
            if not _S3_URI.match(self.artifact_store_uri):
                raise ValueError(
                    f"storage.artifact_store_uri={self.artifact_store_uri!r} "
                    "is not of the form s3://bucket[/prefix]"
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
    cidr: Annotated[str, AfterValidator(_check_cidr)] = "10.0.0.0/16"
    max_azs: int = Field(
        default=2,
        ge=2,
        le=3,
        description="Zones to span; an environment-agnostic synth can see only 2 (set availability_zones).",
    )
    availability_zones: tuple[str, ...] | None = Field(
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
    interface_endpoints: tuple[InterfaceEndpoint, ...] = Field(
        default=INTERFACE_ENDPOINT_NAMES,
        description="Interface endpoints created in endpoints egress (each costs per hour and AZ).",
    )
    flow_log_retention_days: LogRetentionDays = 90


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


class TrackingSettings(Section):
    """MLflow: which of the four modes, and the settings every mode shares."""

    mode: TrackingMode = Field(
        default="serverless",
        description="serverless (SageMaker MLflow App), managed (tracking server), fargate or ec2.",
    )
    mlflow_version: str = Field(
        default="3.0",
        pattern=r"^\d+\.\d+(\.\d+)?$",
        description="MLflow version of the server (major.minor[.patch]).",
    )
    automatic_model_registration: bool = Field(
        default=True, description="Register models logged by SageMaker automatically."
    )
    maintenance_window: MaintenanceWindow = Field(
        default="Tue:03:30", description="Weekly maintenance start, Day:HH:MM UTC."
    )


class Settings(Section):
    """Everything one environment needs, validated once."""

    env_name: str = Field(pattern=r"^[a-z][a-z0-9]{1,9}$")
    project: str = Field(
        default="mlops",
        pattern=r"^[a-z][a-z0-9-]{1,18}[a-z0-9]$",
        description="Prefix of every stack and resource name.",
    )
    account: str | None = Field(default=None, pattern=r"^\d{12}$")
    region: str | None = Field(default=None, pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")
    removal_policy: Literal["destroy", "retain"] = Field(
        default="retain",
        description="destroy: stateful resources go with the stack; retain: they stay.",
    )
    termination_protection: bool = Field(
        default=False, description="Protect the stateful stacks from deletion."
    )
    log_retention_days: LogRetentionDays = 30
    tags: dict[str, str] = Field(default_factory=dict, description="Extra tags on every resource.")
    storage: StorageSettings = StorageSettings()
    network: NetworkSettings = NetworkSettings()
    tracking: TrackingSettings = TrackingSettings()

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
            self.network.enabled is True or self.tracking.mode in SELF_HOSTED_MODES
        )

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
        raw = _deep_merge(raw, _overrides(context, field_names=set(cls.model_fields)))
        raw["env_name"] = env_name
        try:
            return cls.model_validate(raw)
        except ValidationError as err:
            raise ConfigError(describe(err)) from None


def _overrides(context: Mapping[str, Any], *, field_names: set[str]) -> dict[str, Any]:
    """Turn ``-c a.b=value`` context keys into a nested dict; reject unknown keys."""
    nested: dict[str, Any] = {}
    for key, value in context.items():
        if key in _OWN_CONTEXT_KEYS or key in _CDK_CONTEXT_KEYS or _is_cdk_key(key):
            continue
        path = key.split(".")
        if path[0] not in field_names or path[0] == "env_name":
            allowed = ", ".join(sorted((field_names - {"env_name"}) | _OWN_CONTEXT_KEYS))
            raise ConfigError(f"unknown setting {key!r} (-c); top-level settings are: {allowed}")
        cursor = nested
        for part in path[:-1]:
            cursor = cursor.setdefault(part, {})
            if not isinstance(cursor, dict):
                raise ConfigError(f"setting {key!r} conflicts with another -c override")
        cursor[path[-1]] = _parse_cli_value(value)
    return nested


def _is_cdk_key(key: str) -> bool:
    # Feature flags ("@aws-cdk/..."), CDK internals ("aws:cdk:..."), cached lookups ("...:account=...").
    return key.startswith("@") or ":" in key


def _parse_cli_value(value: Any) -> Any:
    """``-c`` values arrive as strings; lists, objects and null may be written as JSON."""
    if isinstance(value, str) and (value[:1] in "[{" or value == "null"):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def describe(err: ValidationError) -> str:
    """One line per the project's error style: setting, bad value, what is allowed."""
    parts = []
    for error in err.errors(include_url=False):
        location = ".".join(str(p) for p in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            parts.append(f"unknown setting {location!r}{_allowed_keys_hint(error['loc'])}")
        elif error["type"] == "missing":
            parts.append(f"{location} is required")
        elif not location or isinstance(error["input"], dict):
            parts.append(message)  # a model-level check: its message names the settings
        else:
            parts.append(f"{location}={error['input']!r}: {_lower_first(message)}")
    return "; ".join(parts)


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
