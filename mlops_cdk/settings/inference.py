"""pipelines.inference: the inference processing step (one instance, or N sharded + a commit)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

from mlops_cdk.settings.common import Section
from mlops_cdk.settings.jobs import (
    JobEnvironment,
    NetworkIsolation,
    ProcessingInstanceType,
    check_inference_environment_rules,
)


class InferenceJobSettings(Section):
    """The inference processing step."""

    instance_type: ProcessingInstanceType = Field(
        default="ml.m5.large", description="ml.* type (SageMaker's ProcessingInstanceType list)."
    )
    instance_count: int = Field(
        default=1,
        ge=1,
        le=20,
        description="Instances of the score step. 1: one job writes the partition; N > 1: the "
        "input files are sharded over N instances (ShardedByS3Key) into a staging prefix and a "
        "Commit step publishes the partition.",
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
    environment: Annotated[JobEnvironment, AfterValidator(check_inference_environment_rules)] = (
        Field(
            default_factory=dict,
            description="Extra environment variables, e.g. CHUNK_ROWS, DRIFT_THRESHOLD; checked with "
            "the inference container's own rules.",
        )
    )
