"""The tuning step's CreateHyperParameterTuningJob request and the RegisterBest step after it.

With ``pipelines.training.strategy=tuning`` the training pipeline runs, after the preflight:

1. ``Tuning``: a SageMaker hyperparameter tuning job. Its training job definition is the plain
   training request (:func:`~mlops_cdk.constructs.job_requests.training_job_request`: image,
   role, channels, output, volume key, spot, VPC, environment) on one instance, plus the
   objective metric the container prints (``MetricDefinitions`` with the contract's regex) and
   the static hyperparameter ``register=false``: every job logs its MLflow run, none registers.
2. ``RegisterBest``: a processing job on the training image
   (``python -m iris_training.register_best``) given the tuning step's best training job name;
   it evaluates that job's model on the held-out rows of the training data (mounted at the
   contract's REGISTER_DATA_DIR), applies the quality gate, registers the model and maybe moves
   the alias.

Names, regex and entry point: ``containers/training/iris_training/tuning_contract.py``
(:data:`mlops_cdk.contracts.TUNING`). Request shapes: botocore's CreateHyperParameterTuningJob
and CreateProcessingJob (tests/unit/test_pipelines.py validates both).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlops_cdk.constructs.job_requests import (
    JobContext,
    TrainingValues,
    Value,
    processing_network,
    training_job_request,
)
from mlops_cdk.contracts import TUNING
from mlops_cdk.settings import IntegerRange, TrainingJobSettings

# What CreateTrainingJob has and a tuning job's HyperParameterTrainingJobDefinition does not
# (or names differently): the definition takes the rest of the plain request as it is.
_NOT_IN_DEFINITION = frozenset(
    {"HyperParameters", "ProfilerConfig", "DebugHookConfig", "AlgorithmSpecification"}
)
# The gate's bar is the RegisterBest step's argument; tuning's jobs never gate.
_GATE_HYPERPARAMETER = "min_accuracy"


def tuning_job_request(
    settings: TrainingJobSettings,
    *,
    context: JobContext,
    values: TrainingValues,
    experiment_name: str,
) -> dict[str, Any]:
    """The CreateHyperParameterTuningJob request without HyperParameterTuningJobName."""
    plain = training_job_request(
        settings, context=context, values=values, experiment_name=experiment_name
    )
    definition: dict[str, Any] = {k: v for k, v in plain.items() if k not in _NOT_IN_DEFINITION}
    definition["AlgorithmSpecification"] = {
        **plain["AlgorithmSpecification"],
        "MetricDefinitions": [{"Name": TUNING.OBJECTIVE_METRIC, "Regex": TUNING.OBJECTIVE_REGEX}],
    }
    static = {k: v for k, v in plain["HyperParameters"].items() if k != _GATE_HYPERPARAMETER}
    static[TUNING.REGISTER_HYPERPARAMETER] = "false"
    definition["StaticHyperParameters"] = static
    tuning = settings.tuning
    return {
        "HyperParameterTuningJobConfig": {
            "Strategy": tuning.strategy,
            "HyperParameterTuningJobObjective": {
                "Type": TUNING.OBJECTIVE_TYPE,
                "MetricName": TUNING.OBJECTIVE_METRIC,
            },
            "ResourceLimits": {
                "MaxNumberOfTrainingJobs": tuning.max_jobs,
                "MaxParallelTrainingJobs": tuning.max_parallel_jobs,
            },
            "ParameterRanges": parameter_ranges(tuning.ranges),
        },
        "TrainingJobDefinition": definition,
    }


def parameter_ranges(
    ranges: Mapping[str, IntegerRange | tuple[str, ...]],
) -> dict[str, list[dict[str, Any]]]:
    """ParameterRanges: SageMaker passes every tried value to the job as a string."""
    integer = [
        {
            "Name": name,
            "MinValue": str(searched.min),
            "MaxValue": str(searched.max),
            "ScalingType": "Auto",
        }
        for name, searched in ranges.items()
        if isinstance(searched, IntegerRange)
    ]
    categorical = [
        {"Name": name, "Values": list(searched)}
        for name, searched in ranges.items()
        if not isinstance(searched, IntegerRange)
    ]
    return {
        "IntegerParameterRanges": integer,
        "ContinuousParameterRanges": [],
        "CategoricalParameterRanges": categorical,
    }


def register_best_request(
    settings: TrainingJobSettings,
    *,
    context: JobContext,
    instance_type: str,
    training_uri: Value,
    best_job_name: Value,
    min_accuracy: Value,
    experiment_name: str,
    execution_id: Value,
) -> dict[str, Any]:
    """The CreateProcessingJob request of RegisterBest (without ProcessingJobName): the training
    image, the same MLflow environment, role, key and network as the training jobs."""
    cluster: dict[str, Value] = {
        "InstanceCount": 1,
        "InstanceType": instance_type,
        "VolumeSizeInGB": settings.volume_gb,
        "VolumeKmsKeyId": context.key_arn,  # an EBS-only type (pipelines.preflight_instance_type)
    }
    network = processing_network(context)
    return {
        "ProcessingResources": {"ClusterConfig": cluster},
        "StoppingCondition": {"MaxRuntimeInSeconds": settings.max_runtime_minutes * 60},
        "AppSpecification": {
            "ImageUri": context.image_uri,
            "ContainerEntrypoint": list(TUNING.REGISTER_BEST_ENTRYPOINT),
            "ContainerArguments": [
                "--training-job-name",
                best_job_name,
                "--min-accuracy",
                min_accuracy,
            ],
        },
        "Environment": {
            **context.tracking_environment,
            "MLFLOW_EXPERIMENT_NAME": experiment_name,
            "MODEL_NAME": context.model_name,
            "PIPELINE_EXECUTION_ID": execution_id,
            **settings.environment,
        },
        "NetworkConfig": network,
        "RoleArn": context.role_arn,
        "ProcessingInputs": [
            {
                "InputName": "train",
                "AppManaged": False,
                "S3Input": {
                    "S3Uri": training_uri,
                    "LocalPath": TUNING.REGISTER_DATA_DIR,
                    "S3DataType": "S3Prefix",
                    "S3InputMode": "File",
                    "S3DataDistributionType": "FullyReplicated",
                },
            }
        ],
    }
