"""What every settings section shares: the base model, the error type and common field types."""

from __future__ import annotations

import gzip
import importlib.util
import json
import re
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict

if TYPE_CHECKING:
    from aws_cdk import aws_logs as logs

# CloudWatch Logs accepts only these retention periods (the names of CDK's RetentionDays).
_RETENTION_BY_DAYS = {
    1: "ONE_DAY",
    3: "THREE_DAYS",
    5: "FIVE_DAYS",
    7: "ONE_WEEK",
    14: "TWO_WEEKS",
    30: "ONE_MONTH",
    60: "TWO_MONTHS",
    90: "THREE_MONTHS",
    120: "FOUR_MONTHS",
    150: "FIVE_MONTHS",
    180: "SIX_MONTHS",
    365: "ONE_YEAR",
    400: "THIRTEEN_MONTHS",
    545: "EIGHTEEN_MONTHS",
    731: "TWO_YEARS",
    1096: "THREE_YEARS",
    1827: "FIVE_YEARS",
    2192: "SIX_YEARS",
    2557: "SEVEN_YEARS",
    2922: "EIGHT_YEARS",
    3288: "NINE_YEARS",
    3653: "TEN_YEARS",
}
LOG_RETENTION_DAYS = tuple(_RETENTION_BY_DAYS)


def retention_days(days: int) -> logs.RetentionDays:
    """The CDK enum member for a validated number of days."""
    from aws_cdk import aws_logs  # noqa: PLC0415 -- settings load without jsii (app.py)

    return aws_logs.RetentionDays[_RETENTION_BY_DAYS[days]]


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
def _botocore_shapes(service: str) -> dict[str, Any]:
    """The shapes of ``service`` in the model bundled with botocore (its newest API version),
    loaded once per process. Read from the package's data files rather than through a botocore
    session: the session costs ~0.15 s more per model (its imports, endpoint data, a shape
    resolver; a staging synth's two models 0.39 s -> 0.09 s), and it would also read models
    from ~/.aws/models, so synthesis could differ from one machine to another. The same file and
    version choice as botocore's loader (Loader.determine_latest_version: the highest API
    version directory); tests/unit/test_settings_botocore.py checks the enums match the
    session's."""
    spec = importlib.util.find_spec("botocore")
    if spec is None or spec.origin is None:
        raise RuntimeError("botocore is not installed (requirements.txt lists it)")
    versions = Path(spec.origin).parent / "data" / service
    newest = max(path for path in versions.iterdir() if path.is_dir())  # YYYY-MM-DD names
    packed = newest / "service-2.json.gz"
    if packed.exists():
        raw = gzip.decompress(packed.read_bytes())
    else:
        raw = (newest / "service-2.json").read_bytes()
    shapes: dict[str, Any] = json.loads(raw)["shapes"]
    return shapes


@cache
def sagemaker_enum(shape: str) -> frozenset[str]:
    """Instance types SageMaker accepts, from botocore's service model (updated with each
    botocore release): TrainingInstanceType, ProcessingInstanceType, AppInstanceType."""
    return frozenset(_botocore_shapes("sagemaker")[shape]["enum"])


@cache
def ec2_instance_types() -> frozenset[str]:
    return frozenset(_botocore_shapes("ec2")["InstanceType"]["enum"])


def instance_type_of(shape: str, what: str) -> AfterValidator:
    def check(value: str) -> str:
        if value not in sagemaker_enum(shape):
            raise ValueError(
                f"is not a SageMaker {what} instance type (botocore's {shape} list, "
                "e.g. ml.m5.large)"
            )
        return value

    return AfterValidator(check)
