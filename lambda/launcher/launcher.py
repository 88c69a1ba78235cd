"""Training launcher: EventBridge Scheduler invokes it; it starts one SageMaker training job.

Event (from the schedule): ``{"scheduled_time": "2025-01-05T02:00:00Z", "schedule_arn": "..."}``.
Environment: ``PIPELINE_NAME`` and ``STEP_NAME`` (the training pipeline and its training step)
and ``JOB_NAME_PREFIX``. The job is that step's CreateTrainingJob request with every pipeline
parameter at its default, read from the deployed definition: the pipeline is the one source of
the job's settings, and Lambda's 4 KB environment limit does not apply.

The job name is ``<prefix>-<yyyymmddHHMM>`` of the scheduled time (UTC), so a retried or
duplicated invocation for the same time names the same job; SageMaker answers ResourceInUse
for it, which counts as success. boto3 only: the Lambda runtime provides it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from collections.abc import Mapping
from typing import Any

import boto3
from botocore.exceptions import ClientError

log = logging.getLogger()
log.setLevel(logging.INFO)

MAX_JOB_NAME = 63


class LauncherError(Exception):
    """The event or the configuration is unusable; retrying will not help."""


def scheduled_time(event: Mapping[str, Any], now: dt.datetime | None = None) -> dt.datetime:
    """The event's scheduled time in UTC; the current time for a manual invocation without one."""
    raw = event.get("scheduled_time")
    if raw in (None, ""):
        return (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    if not isinstance(raw, str):
        raise LauncherError(f"scheduled_time={raw!r} is not an ISO 8601 string")
    try:
        parsed = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise LauncherError(f"scheduled_time={raw!r} is not an ISO 8601 time") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC)


def job_name(prefix: str, when: dt.datetime) -> str:
    name = f"{prefix}-{when.astimezone(dt.UTC):%Y%m%d%H%M}"
    if len(name) > MAX_JOB_NAME:
        raise LauncherError(f"job name {name!r} is longer than {MAX_JOB_NAME} characters")
    return name


def resolve_defaults(value: Any, defaults: Mapping[str, Any]) -> Any:
    """Pipeline references replaced by parameter defaults; ``None`` for execution variables."""
    if isinstance(value, Mapping):
        if set(value) == {"Get"} and isinstance(value["Get"], str):
            kind, _, name = value["Get"].partition(".")
            if kind == "Parameters":
                if name not in defaults:
                    raise LauncherError(f"the step uses parameter {name}, which has no default")
                return defaults[name]
            return None  # Execution.*: there is no pipeline execution
        if set(value) == {"Std:Join"}:
            join = value["Std:Join"]
            return str(join["On"]).join(str(resolve_defaults(v, defaults)) for v in join["Values"])
        return {k: resolve_defaults(v, defaults) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_defaults(v, defaults) for v in value]
    return value


def training_request(definition: Mapping[str, Any], step_name: str) -> dict[str, Any]:
    """The step's CreateTrainingJob arguments at the parameters' defaults."""
    steps = [s for s in _all_steps(definition.get("Steps", [])) if s.get("Name") == step_name]
    if len(steps) != 1 or steps[0].get("Type") != "Training":
        raise LauncherError(f"the pipeline has no training step named {step_name!r}")
    defaults = {p["Name"]: p.get("DefaultValue") for p in definition.get("Parameters", [])}
    request = resolve_defaults(steps[0]["Arguments"], defaults)
    # Environment entries fed by execution variables (PIPELINE_EXECUTION_ID) have no value here.
    environment = request.get("Environment", {})
    request["Environment"] = {k: v for k, v in environment.items() if v is not None}
    if not request["Environment"]:
        del request["Environment"]
    return request  # type: ignore[no-any-return]


def _all_steps(steps: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Top-level steps and the ones nested in condition branches (the pipeline's preflight
    gates its training step; the launcher starts that step's job directly, without it)."""
    found: list[Mapping[str, Any]] = []
    for step in steps:
        found.append(step)
        if step.get("Type") == "Condition":
            arguments = step.get("Arguments", {})
            found += _all_steps([*arguments.get("IfSteps", []), *arguments.get("ElseSteps", [])])
    return found


def build_request(template: Mapping[str, Any], name: str, when: dt.datetime) -> dict[str, Any]:
    request = dict(template)
    request["TrainingJobName"] = name
    tags = [t for t in request.get("Tags", []) if t.get("Key") != "ScheduledTime"]
    request["Tags"] = [*tags, {"Key": "ScheduledTime", "Value": when.strftime("%Y-%m-%dT%H:%MZ")}]
    return request


def _settings(environ: Mapping[str, str]) -> tuple[str, str, str]:
    values = tuple(environ.get(n, "") for n in ("JOB_NAME_PREFIX", "PIPELINE_NAME", "STEP_NAME"))
    for name, value in zip(("JOB_NAME_PREFIX", "PIPELINE_NAME", "STEP_NAME"), values, strict=True):
        if not value:
            raise LauncherError(f"environment variable {name} is not set")
    return values  # type: ignore[return-value]


def launch(event: Mapping[str, Any], *, environ: Mapping[str, str], client: Any) -> dict[str, Any]:
    prefix, pipeline, step = _settings(environ)
    when = scheduled_time(event)
    name = job_name(prefix, when)
    described = client.describe_pipeline(PipelineName=pipeline)
    try:
        definition = json.loads(described["PipelineDefinition"])
    except (KeyError, json.JSONDecodeError) as err:
        raise LauncherError(f"pipeline {pipeline} has no readable definition: {err}") from None
    request = build_request(training_request(definition, step), name, when)
    try:
        response = client.create_training_job(**request)
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") == "ResourceInUse":
            log.info("training job %s exists already (a retry for %s): nothing to do", name, when)
            return {"training_job_name": name, "created": False}
        raise
    log.info("started training job %s for %s", name, when.isoformat())
    return {
        "training_job_name": name,
        "training_job_arn": response.get("TrainingJobArn"),
        "created": True,
    }


def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """Lambda entry point (``launcher.handler``)."""
    return launch(event, environ=os.environ, client=boto3.client("sagemaker"))
