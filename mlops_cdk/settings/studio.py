"""studio: the SageMaker Studio domain (users, apps, idle shutdown, storage)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from mlops_cdk.settings.common import Section, instance_type_of

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
    instance_type_of("AppInstanceType", "Studio app"),
]


class StudioSettings(Section):
    """The SageMaker Studio domain: users, apps, idle shutdown and storage."""

    enabled: bool = Field(default=False, description="Deploy the Studio stack.")
    cleanup_reserved_concurrency: int | None = Field(
        default=1,
        ge=1,
        le=10,
        description="Concurrent runs reserved for the teardown function; null: the account's "
        "unreserved pool (accounts whose concurrency quota is below 100 + this cannot reserve).",
    )
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
