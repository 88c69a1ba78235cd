"""CreateTrainingJob / CreateProcessingJob request bodies, built once from typed settings.

The training pipeline's step, the inference pipeline's step and the Lambda launcher all use
these functions, so a job started by a schedule through either launcher is the same job.
Values a pipeline parameter may override arrive as :class:`TrainingValues` /
:class:`InferenceValues`: pipeline references in a pipeline, literal defaults in the launcher.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mlops_cdk.settings import InferenceJobSettings, TrainingJobSettings

TRAIN_CHANNEL = "train"  # iris_training.contract.TRAIN_CHANNEL
PROCESSING_INPUT_DIR = "/opt/ml/processing/input"  # iris_inference.settings defaults
PROCESSING_OUTPUT_DIR = "/opt/ml/processing/output"

Value = Any  # a literal, a CDK token, or a pipeline reference such as {"Get": "Parameters.X"}


@dataclass(frozen=True)
class JobNetwork:
    """Private subnets and the job security group (VpcConfig)."""

    subnet_ids: Sequence[str]
    security_group_ids: Sequence[str]

    def vpc_config(self) -> dict[str, list[str]]:
        return {"SecurityGroupIds": list(self.security_group_ids), "Subnets": list(self.subnet_ids)}


@dataclass(frozen=True)
class JobContext:
    """What every job needs besides its settings: image, role, key, MLflow, network."""

    image_uri: str
    role_arn: str
    key_arn: str
    tracking_environment: Mapping[str, str]  # TrackingBackend.client_environment
    model_name: str
    network: JobNetwork | None


@dataclass(frozen=True)
class TrainingValues:
    input_uri: Value
    output_uri: Value
    instance_type: Value
    instance_count: Value
    min_accuracy: Value  # a string (hyperparameters are strings)
    checkpoint_uri: str | None
    extra_channel_uris: Mapping[str, str]  # channel name -> s3:// URI
    execution_id: Value | None = None  # PIPELINE_EXECUTION_ID when run by a pipeline


@dataclass(frozen=True)
class InferenceValues:
    input_uri: Value
    output_uri: Value
    instance_type: Value
    model_alias: Value
    inference_date: Value  # "" means today (UTC), decided by the container


def _s3_channel(name: str, uri: Value, content_type: str | None = None) -> dict[str, Any]:
    channel: dict[str, Any] = {
        "ChannelName": name,
        "DataSource": {
            "S3DataSource": {
                "S3DataType": "S3Prefix",
                "S3Uri": uri,
                "S3DataDistributionType": "FullyReplicated",
            }
        },
        "InputMode": "File",
    }
    if content_type:
        channel["ContentType"] = content_type
    return channel


def training_job_request(
    settings: TrainingJobSettings,
    *,
    context: JobContext,
    values: TrainingValues,
    experiment_name: str,
) -> dict[str, Any]:
    """The CreateTrainingJob request without TrainingJobName (the caller names the job)."""
    environment: dict[str, Value] = {
        **context.tracking_environment,
        "MLFLOW_EXPERIMENT_NAME": experiment_name,
        "MODEL_NAME": context.model_name,
    }
    if values.execution_id is not None:
        environment["PIPELINE_EXECUTION_ID"] = values.execution_id
    environment.update(settings.environment)

    hyperparameters: dict[str, Value] = {k: str(v) for k, v in settings.hyperparameters.items()}
    hyperparameters["min_accuracy"] = values.min_accuracy

    resources: dict[str, Value] = {
        "InstanceType": values.instance_type,
        "InstanceCount": values.instance_count,
        "VolumeSizeInGB": settings.volume_gb,
    }
    if settings.encrypt_volume:
        resources["VolumeKmsKeyId"] = context.key_arn

    stopping: dict[str, int] = {"MaxRuntimeInSeconds": settings.max_runtime_minutes * 60}
    if settings.spot:
        wait = settings.max_wait_minutes or settings.max_runtime_minutes
        stopping["MaxWaitTimeInSeconds"] = wait * 60

    channels = [_s3_channel(TRAIN_CHANNEL, values.input_uri)]
    channels += [
        _s3_channel(c.name, values.extra_channel_uris[c.name], c.content_type)
        for c in settings.extra_channels
    ]

    request: dict[str, Any] = {
        "AlgorithmSpecification": {"TrainingImage": context.image_uri, "TrainingInputMode": "File"},
        "RoleArn": context.role_arn,
        "InputDataConfig": channels,
        "OutputDataConfig": {"S3OutputPath": values.output_uri, "KmsKeyId": context.key_arn},
        "ResourceConfig": resources,
        "StoppingCondition": stopping,
        "HyperParameters": hyperparameters,
        "Environment": environment,
        "EnableNetworkIsolation": False,  # config rejects true: the job must reach MLflow
        "EnableInterContainerTrafficEncryption": True,
        "EnableManagedSpotTraining": settings.spot,
    }
    if settings.spot:
        request["CheckpointConfig"] = {"S3Uri": values.checkpoint_uri}
    if context.network is not None:
        request["VpcConfig"] = context.network.vpc_config()
    if settings.profiler.enabled:
        request["ProfilerConfig"] = {
            "S3OutputPath": values.output_uri,
            "ProfilingIntervalInMilliseconds": settings.profiler.interval_ms,
            "DisableProfiler": False,
        }
    else:
        request["ProfilerConfig"] = {"DisableProfiler": True}
    if settings.debugger.enabled:
        hook: dict[str, Any] = {"S3OutputPath": values.output_uri}
        if settings.debugger.collections:
            hook["CollectionConfigurations"] = [
                {"CollectionName": name} for name in settings.debugger.collections
            ]
        request["DebugHookConfig"] = hook
    return request


def processing_network(context: JobContext) -> dict[str, Any]:
    """A processing job's NetworkConfig: not isolated (every job calls S3 or MLflow), traffic
    between its instances encrypted, in the VPC when the environment has one."""
    network: dict[str, Any] = {
        "EnableNetworkIsolation": False,
        "EnableInterContainerTrafficEncryption": True,
    }
    if context.network is not None:
        network["VpcConfig"] = context.network.vpc_config()
    return network


def processing_job_request(
    settings: InferenceJobSettings,
    *,
    context: JobContext,
    values: InferenceValues,
) -> dict[str, Any]:
    """The CreateProcessingJob request without ProcessingJobName."""
    cluster: dict[str, Value] = {
        # N > 1: sharded, the Commit step is the one writer (constructs/shard_requests.py).
        "InstanceCount": settings.instance_count,
        "InstanceType": values.instance_type,
        "VolumeSizeInGB": settings.volume_gb,
    }
    if settings.encrypt_volume:
        cluster["VolumeKmsKeyId"] = context.key_arn
    network = processing_network(context)
    return {
        "ProcessingResources": {"ClusterConfig": cluster},
        "StoppingCondition": {"MaxRuntimeInSeconds": settings.max_runtime_minutes * 60},
        "AppSpecification": {"ImageUri": context.image_uri},
        "Environment": {
            **context.tracking_environment,
            "MODEL_NAME": context.model_name,
            "MODEL_ALIAS": values.model_alias,
            "INFERENCE_DATE": values.inference_date,
            **settings.environment,
        },
        "NetworkConfig": network,
        "RoleArn": context.role_arn,
        "ProcessingInputs": [
            {
                "InputName": "input",
                "AppManaged": False,
                "S3Input": {
                    "S3Uri": values.input_uri,
                    "LocalPath": PROCESSING_INPUT_DIR,
                    "S3DataType": "S3Prefix",
                    "S3InputMode": "File",
                    "S3DataDistributionType": "FullyReplicated",
                },
            }
        ],
        "ProcessingOutputConfig": {
            "Outputs": [
                {
                    "OutputName": "predictions",
                    "AppManaged": False,
                    "S3Output": {
                        "S3Uri": values.output_uri,
                        "LocalPath": PROCESSING_OUTPUT_DIR,
                        "S3UploadMode": "EndOfJob",
                    },
                }
            ],
            "KmsKeyId": context.key_arn,
        },
    }
