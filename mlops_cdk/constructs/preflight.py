"""The preflight step and the decision after it: how a pipeline with nothing to do skips.

Each pipeline starts with a small processing step (``Preflight``) in the inference image
(``python -m iris_inference.preflight``): it checks the job's S3 input prefixes hold an object
and, for inference, that ``models:/<model>@<alias>`` exists, and writes a decision file. The
condition step ``Ready`` reads ``ready`` from that file (JsonGet on a property file) and runs
the real job(s) only when true; when false the execution ends there, Succeeded, with the reason
in the decision file and the preflight's log. Names of the file and its keys come from
``containers/inference/iris_inference/preflight_contract.py`` (one definition, read here at
synth and by the container at run time). Why a processing step and not a Lambda step:
docs/pipelines.md ("Day one").
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from mlops_cdk.constructs.job_requests import JobContext, Value, processing_network
from mlops_cdk.constructs.pipeline_definition import (
    ConditionStep,
    PropertyFile,
    Step,
    equals,
    json_get,
)

PREFLIGHT_STEP = "Preflight"
READY_STEP = "Ready"
PREFLIGHT_MAX_RUNTIME_SECONDS = 10 * 60
PREFLIGHT_VOLUME_GB = 1  # the smallest volume; it holds one small JSON file
# MLflow's client retries 7 times with 120 s timeouts by default (longer than the step may
# run); an unreachable server should fail the step in about two minutes, with its one line.
MLFLOW_RETRIES = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}

CONTRACT_FILE = (
    Path(__file__).resolve().parents[2]
    / "containers"
    / "inference"
    / "iris_inference"
    / "preflight_contract.py"
)


def _load_contract() -> ModuleType:
    """The container's contract module, loaded by path (the app does not import the image's
    package; the file has no imports beyond ``__future__``)."""
    spec = importlib.util.spec_from_file_location("_iris_preflight_contract", CONTRACT_FILE)
    if spec is None or spec.loader is None:  # pragma: no cover -- the file is in the repo
        raise ImportError(f"cannot load {CONTRACT_FILE}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CONTRACT = _load_contract()
DECISION = PropertyFile(
    name=CONTRACT.PROPERTY_FILE, output_name=CONTRACT.OUTPUT_NAME, path=CONTRACT.FILE_NAME
)


def decision_uri(runs_uri: str) -> Mapping[str, Any]:
    """``<runs_uri><pipeline name>/<execution id>/preflight``: one record per execution."""
    return {
        "Std:Join": {
            "On": "/",
            "Values": [
                runs_uri.rstrip("/"),
                {"Get": "Execution.PipelineName"},
                {"Get": "Execution.PipelineExecutionId"},
                "preflight",
            ],
        }
    }


def preflight_request(
    *,
    context: JobContext,
    instance_type: str,
    object_uris: Sequence[Value],
    runs_uri: str,
    region: str,
    model_alias: Value | None = None,
) -> dict[str, Any]:
    """The CreateProcessingJob request of the preflight (without ProcessingJobName).

    ``context`` is the inference image's: the same role, network, key and MLflow settings as
    the jobs it guards, so it reaches what they reach. ``model_alias``: also require
    ``models:/<model>@<alias>``.
    """
    arguments: list[Value] = [CONTRACT.REGION_FLAG, region]
    for uri in object_uris:
        arguments += [CONTRACT.OBJECTS_FLAG, uri]
    environment: dict[str, Value] = {}
    if model_alias is not None:
        arguments.append(CONTRACT.ALIAS_FLAG)
        environment = {
            **context.tracking_environment,
            "MODEL_NAME": context.model_name,
            "MODEL_ALIAS": model_alias,
            **MLFLOW_RETRIES,
        }
    arguments += [CONTRACT.OUTPUT_FLAG, CONTRACT.LOCAL_DIR]
    network = processing_network(context)
    request: dict[str, Any] = {
        "ProcessingResources": {
            "ClusterConfig": {
                "InstanceCount": 1,
                "InstanceType": instance_type,
                "VolumeSizeInGB": PREFLIGHT_VOLUME_GB,
                "VolumeKmsKeyId": context.key_arn,
            }
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": PREFLIGHT_MAX_RUNTIME_SECONDS},
        "AppSpecification": {
            "ImageUri": context.image_uri,
            "ContainerEntrypoint": list(CONTRACT.ENTRYPOINT),
            "ContainerArguments": arguments,
        },
        "NetworkConfig": network,
        "RoleArn": context.role_arn,
        "ProcessingOutputConfig": {
            "Outputs": [
                {
                    "OutputName": DECISION.output_name,
                    "AppManaged": False,
                    "S3Output": {
                        "S3Uri": decision_uri(runs_uri),
                        "LocalPath": CONTRACT.LOCAL_DIR,
                        "S3UploadMode": "EndOfJob",
                    },
                }
            ],
            "KmsKeyId": context.key_arn,
        },
    }
    if environment:
        request["Environment"] = environment
    return request


def gated_steps(
    *, preflight: Mapping[str, Any], jobs: tuple[Step, ...], checks: str
) -> tuple[Step, ConditionStep]:
    """The preflight step and the condition that runs ``jobs`` only when it decided "ready"."""
    step = Step(
        name=PREFLIGHT_STEP,
        type="Processing",
        arguments=preflight,
        description=f"Checks {checks}; writes {DECISION.path} (ready, reason)",
        property_files=(DECISION,),
    )
    ready = ConditionStep(
        name=READY_STEP,
        conditions=(equals(json_get(PREFLIGHT_STEP, DECISION, CONTRACT.READY), True),),
        if_steps=jobs,
        else_steps=(),  # not ready: the execution ends here and succeeds (a recorded skip)
        description=f"Runs {', '.join(j.name for j in jobs)} when the preflight found work; "
        "otherwise skips (reason in the preflight's decision file and log)",
    )
    return step, ready
