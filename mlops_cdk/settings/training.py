"""pipelines.training: the training step (plain, or a tuning step and RegisterBest), its options."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import AfterValidator, Field, model_validator

from mlops_cdk.contracts import TUNING
from mlops_cdk.settings.common import IntChoice, Section
from mlops_cdk.settings.jobs import (
    DataPrefix,
    JobEnvironment,
    NetworkIsolation,
    TrainingInstanceType,
    check_hyperparameters,
)
from mlops_cdk.settings.tuning import TuningSettings


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


class TrainingJobSettings(Section):
    """The training step (and the launcher's training job)."""

    strategy: Literal["plain", "tuning"] = Field(
        default="plain",
        description="plain: one training job trains, gates and registers; tuning: a SageMaker "
        "tuning job runs several training jobs (pipelines.training.tuning) and only the best "
        "one's model is gated and registered (RegisterBest step).",
    )
    tuning: TuningSettings = TuningSettings()
    instance_type: TrainingInstanceType = Field(
        default="ml.m5.large", description="ml.* type (SageMaker's TrainingInstanceType list)."
    )
    instance_count: int = Field(
        default=1,
        ge=1,
        le=20,
        description="Instances of the plain training job (the TrainingInstanceCount parameter's "
        "default). Only the first host trains, logs and registers; the others exit cleanly, so "
        "more than 1 buys nothing: use strategy=tuning to use several instances.",
    )
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
        AfterValidator(check_hyperparameters),
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
        if TUNING.REGISTER_HYPERPARAMETER in self.hyperparameters:
            raise ValueError(
                f"pipelines.training.hyperparameters.{TUNING.REGISTER_HYPERPARAMETER} is set by "
                "the tuning step (its jobs never register); remove it"
            )
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
        if self.strategy == "tuning":
            self._check_tuning()
        names = [c.name for c in self.extra_channels]
        duplicates = sorted({n for n in names if names.count(n) > 1 or n == "train"})
        if duplicates:
            raise ValueError(
                f"pipelines.training.extra_channels name {duplicates[0]!r} is used twice "
                "(train is the built-in channel)"
            )
        return self

    def _check_tuning(self) -> None:
        """What a tuning job's training job definition cannot take, or takes from the step."""
        if self.instance_count != 1:
            raise ValueError(
                f"pipelines.training.instance_count={self.instance_count} with strategy=tuning: "
                "each tuning job trains on one instance; use "
                "pipelines.training.tuning.max_parallel_jobs to use several"
            )
        for section in ("profiler", "debugger"):
            if getattr(self, section).enabled:
                raise ValueError(
                    f"pipelines.training.{section}.enabled applies to strategy=plain: a tuning "
                    "job's training job definition has no profiler or debugger configuration"
                )
        tuned = sorted(set(self.hyperparameters) & set(self.tuning.ranges))
        if tuned:
            raise ValueError(
                f"pipelines.training.hyperparameters.{tuned[0]} is also searched by "
                f"pipelines.training.tuning.ranges.{tuned[0]}; remove one"
            )
