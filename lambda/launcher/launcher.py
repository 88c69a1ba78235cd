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


class DefinitionError(LauncherError):
    """The deployed pipeline definition does not have the shape the launcher reads."""


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
    try:
        return parsed.astimezone(dt.UTC)
    except OverflowError:
        raise LauncherError(
            f"scheduled_time={raw!r} is not a time a job can be named after (out of range)"
        ) from None


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
            if not (
                isinstance(join, Mapping) and "On" in join and isinstance(join.get("Values"), list)
            ):
                raise DefinitionError(f"Std:Join needs On and a list of Values, not {join!r}")
            return str(join["On"]).join(str(resolve_defaults(v, defaults)) for v in join["Values"])
        return {k: resolve_defaults(v, defaults) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_defaults(v, defaults) for v in value]
    return value


def training_request(definition: Mapping[str, Any], step_name: str) -> dict[str, Any]:
    """The step's CreateTrainingJob arguments at the parameters' defaults."""
    all_steps = definition.get("Steps", [])
    parameters = definition.get("Parameters", [])
    for name, value in (("Steps", all_steps), ("Parameters", parameters)):
        if not isinstance(value, list):
            raise DefinitionError(f"{name} is not a list")
    steps = [s for s in _all_steps(all_steps) if s.get("Name") == step_name]
    if len(steps) != 1 or steps[0].get("Type") != "Training":
        raise LauncherError(f"the pipeline has no training step named {step_name!r}")
    if not all(isinstance(p, Mapping) and isinstance(p.get("Name"), str) for p in parameters):
        raise DefinitionError("a parameter has no Name")
    defaults = {p["Name"]: p.get("DefaultValue") for p in parameters}
    arguments = steps[0].get("Arguments")
    if not isinstance(arguments, Mapping):
        raise DefinitionError(f"step {step_name} has no Arguments object")
    request = resolve_defaults(arguments, defaults)
    # Environment entries fed by execution variables (PIPELINE_EXECUTION_ID) have no value here.
    environment = request.get("Environment", {})
    if not isinstance(environment, Mapping):
        raise DefinitionError(f"step {step_name} Environment is not an object")
    request["Environment"] = {k: v for k, v in environment.items() if v is not None}
    if not request["Environment"]:
        del request["Environment"]
    return request  # type: ignore[no-any-return]


def _all_steps(steps: list[Any]) -> list[Mapping[str, Any]]:
    """Top-level steps and the ones nested in condition branches (the pipeline's preflight
    gates its training step; the launcher starts that step's job directly, without it)."""
    found: list[Mapping[str, Any]] = []
    for step in steps:
        if not isinstance(step, Mapping):
            continue  # not a step: the search then reports the missing training step
        found.append(step)
        if step.get("Type") == "Condition":
            arguments = step.get("Arguments")
            if not isinstance(arguments, Mapping):
                raise DefinitionError(f"step {step.get('Name')} has no Arguments object")
            branches = [arguments.get("IfSteps", []), arguments.get("ElseSteps", [])]
            if not all(isinstance(branch, list) for branch in branches):
                raise DefinitionError(f"step {step.get('Name')} branches are not lists")
            found += _all_steps([*branches[0], *branches[1]])
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


def launch(event: object, *, environ: Mapping[str, str], client: Any) -> dict[str, Any]:
    if not isinstance(event, Mapping):
        raise LauncherError(f"the event is not a JSON object: {event!r:.200}")
    prefix, pipeline, step = _settings(environ)
    when = scheduled_time(event)
    name = job_name(prefix, when)
    described = client.describe_pipeline(PipelineName=pipeline)
    try:
        definition = json.loads(described["PipelineDefinition"])
    except (KeyError, TypeError, json.JSONDecodeError) as err:
        raise LauncherError(f"pipeline {pipeline} has no readable definition: {err}") from None
    if not isinstance(definition, Mapping):
        raise LauncherError(f"pipeline {pipeline} has no readable definition: not a JSON object")
    try:
        template = training_request(definition, step)
    except DefinitionError as err:
        raise LauncherError(f"pipeline {pipeline} definition: {err}") from None
    request = build_request(template, name, when)
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


def handler(event: object, context: Any) -> dict[str, Any]:
    """Lambda entry point (``launcher.handler``).

    A LauncherError is logged as one line and raised, so the invocation fails (Scheduler
    retries it, then the dead-letter queue keeps the event) with that line as errorMessage.
    """
    try:
        return launch(event, environ=os.environ, client=boto3.client("sagemaker"))
    except LauncherError as err:
        log.error("error: %s", err)
        raise
