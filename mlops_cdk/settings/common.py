"""What every settings section shares: the base model, the error type and common field types."""

from __future__ import annotations

import re
from functools import cache
from typing import Annotated, Any

from aws_cdk import aws_logs as logs
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict

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


def no_duplicates(setting: str) -> Any:
    def check(values: tuple[Any, ...]) -> tuple[Any, ...]:
        twice = sorted({str(v) for v in values if values.count(v) > 1})
        if twice:
            raise ValueError(f"{setting} lists {', '.join(twice)} more than once")
        return values

    return AfterValidator(check)


@cache
def _service_model(service: str) -> Any:
    """botocore's model of ``service``, loaded once per process: each load parses a large JSON
    file (SageMaker's ~0.25 s, EC2's ~0.3 s), and every botocore session loads it anew."""
    import botocore.session  # noqa: PLC0415 -- only when a setting names an instance type

    return botocore.session.get_session().get_service_model(service)


@cache
def sagemaker_enum(shape: str) -> frozenset[str]:
    """Instance types SageMaker accepts, from botocore's service model (updated with each
    botocore release): TrainingInstanceType, ProcessingInstanceType, AppInstanceType."""
    return frozenset(_service_model("sagemaker").shape_for(shape).enum)


@cache
def ec2_instance_types() -> frozenset[str]:
    return frozenset(_service_model("ec2").shape_for("InstanceType").enum)


def instance_type_of(shape: str, what: str) -> AfterValidator:
    def check(value: str) -> str:
        if value not in sagemaker_enum(shape):
            raise ValueError(
                f"is not a SageMaker {what} instance type (botocore's {shape} list, "
                "e.g. ml.m5.large)"
            )
        return value

    return AfterValidator(check)
