"""storage: the KMS key and the buckets for MLflow artifacts, data and access logs."""

from __future__ import annotations

import re
from typing import Self

from pydantic import Field, model_validator

from mlops_cdk.settings.common import Section

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
