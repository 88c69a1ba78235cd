"""Sharded inference: the score step on N instances and the Commit step after it.

With ``pipelines.inference.instance_count`` N > 1 the score step's input is distributed
``ShardedByS3Key`` (each instance gets a share of the files under the input prefix: CreateProcessingJob
``ProcessingS3Input.S3DataDistributionType``), each instance scores its files into the
contract's STAGING_DIR (environment SHARDED_ENV="1"), and SageMaker uploads that directory to
the run's staging prefix ``<output uri>_staging/<execution id>/`` (the default output URI ends
with "/"; readers skip names starting with "_"). Then ``Commit``, one instance of the inference
image, reads every shard from that prefix (mounted at COMMIT_INPUT_DIR) and publishes the date
partition itself, manifest last. N = 1 keeps a single score step, which publishes the
partition itself in the same order (``publishing_score_request``).

Names and entry point: ``containers/inference/iris_inference/shard_contract.py``
(:data:`mlops_cdk.contracts.SHARD`).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from mlops_cdk.constructs.job_requests import JobContext, Value, processing_network
from mlops_cdk.contracts import SHARD
from mlops_cdk.settings import InferenceJobSettings

SHARD_OUTPUT = "shard"


def staging_uri(output_uri: Value, execution_id: Value) -> Mapping[str, Any]:
    """``<output uri>_staging/<execution id>/``: this run's shards, under the output prefix."""
    return {
        "Std:Join": {
            "On": "",
            "Values": [output_uri, f"{SHARD.STAGING_PREFIX}/", execution_id, "/"],
        }
    }


def publishing_score_request(single: Mapping[str, Any], *, output_uri: Value) -> dict[str, Any]:
    """The single-instance score request publishing the partition itself (OUTPUT_URI_ENV), manifest
    last, instead of through SageMaker's end-of-job upload, which orders nothing and never
    deletes the previous run's parts; so readers have one contract for every instance count."""
    request = copy.deepcopy(dict(single))
    request["Environment"] = {**request["Environment"], SHARD.OUTPUT_URI_ENV: output_uri}
    del request["ProcessingOutputConfig"]
    return request


def sharded_score_request(
    single: Mapping[str, Any], *, output_uri: Value, execution_id: Value
) -> dict[str, Any]:
    """The single-instance score request (``processing_job_request``) made sharded: input
    ShardedByS3Key, SHARDED_ENV=1, STAGING_DIR uploaded to the run's staging prefix."""
    request = copy.deepcopy(dict(single))
    for processing_input in request["ProcessingInputs"]:
        processing_input["S3Input"]["S3DataDistributionType"] = "ShardedByS3Key"
    request["Environment"] = {**request["Environment"], SHARD.SHARDED_ENV: "1"}
    request["ProcessingOutputConfig"]["Outputs"] = [
        {
            "OutputName": SHARD_OUTPUT,
            "AppManaged": False,
            "S3Output": {
                "S3Uri": staging_uri(output_uri, execution_id),
                "LocalPath": SHARD.STAGING_DIR,
                "S3UploadMode": "EndOfJob",
            },
        }
    ]
    return request


def commit_request(
    settings: InferenceJobSettings,
    *,
    context: JobContext,
    instance_type: Value,
    output_uri: Value,
    execution_id: Value,
    environment: Mapping[str, Value],
) -> dict[str, Any]:
    """The Commit step's CreateProcessingJob request (without ProcessingJobName): one instance,
    the inference image, the staging prefix mounted, the score step's environment (MLflow,
    model, date) without the shard flag."""
    cluster: dict[str, Value] = {
        "InstanceCount": 1,
        "InstanceType": instance_type,
        "VolumeSizeInGB": settings.volume_gb,
    }
    if settings.encrypt_volume:
        cluster["VolumeKmsKeyId"] = context.key_arn
    network = processing_network(context)
    return {
        "ProcessingResources": {"ClusterConfig": cluster},
        "StoppingCondition": {"MaxRuntimeInSeconds": settings.max_runtime_minutes * 60},
        "AppSpecification": {
            "ImageUri": context.image_uri,
            "ContainerEntrypoint": list(SHARD.COMMIT_ENTRYPOINT),
            "ContainerArguments": [
                "--expected-shards",
                str(settings.instance_count),
                "--output-uri",
                output_uri,
            ],
        },
        "Environment": {k: v for k, v in environment.items() if k != SHARD.SHARDED_ENV},
        "NetworkConfig": network,
        "RoleArn": context.role_arn,
        "ProcessingInputs": [
            {
                "InputName": "staging",
                "AppManaged": False,
                "S3Input": {
                    "S3Uri": staging_uri(output_uri, execution_id),
                    "LocalPath": SHARD.COMMIT_INPUT_DIR,
                    "S3DataType": "S3Prefix",
                    "S3InputMode": "File",
                    "S3DataDistributionType": "FullyReplicated",
                },
            }
        ],
    }
