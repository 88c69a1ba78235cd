"""A small typed builder for SageMaker Pipelines definitions (schema version 2020-12-01).

Why not the ``sagemaker`` SDK: see docs/pipelines.md ("Builder, not the SDK"). In short, the
definition is plain JSON whose step ``Arguments`` are the CreateTrainingJob /
CreateProcessingJob request bodies; building it here keeps synthesis offline, fast and
byte-for-byte reproducible, and lets CloudFormation tokens (bucket names, role ARNs, image URIs)
flow in through :meth:`aws_cdk.Stack.to_json_string`.

Values inside ``Arguments`` may be literals, CDK tokens, or pipeline references:

* ``Parameter(...).ref``           -> ``{"Get": "Parameters.<Name>"}``
* ``Parameter(...).as_string()``   -> ``{"Std:Join": {"On": "", "Values": [<ref>]}}``
* :data:`EXECUTION_ID`             -> ``{"Get": "Execution.PipelineExecutionId"}``
* :func:`json_get`                 -> ``{"Std:JsonGet": {"PropertyFile": {"Get":
  "Steps.<Step>.PropertyFiles.<File>"}, "Path": ...}}`` (a value of a processing step's
  property file, for a :class:`ConditionStep`)

Schema of property files, ``Std:JsonGet`` and condition steps: the SageMaker Pipelines
definition JSON schema (https://aws-sagemaker-mlops.github.io/sagemaker-model-building-pipeline-definition-JSON-schema/)
as the SageMaker Python SDK writes it: ``PropertyFile.expr`` (``PropertyFileName``,
``OutputName``, ``FilePath``) in sagemaker/workflow/properties.py, ``JsonGet.expr`` in
sagemaker/workflow/functions.py, ``ConditionStep.arguments`` (``Conditions``, ``IfSteps``,
``ElseSteps``, the branch steps nested whole) in sagemaker/workflow/condition_step.py and
``ConditionComparison.to_request`` (``Type``, ``LeftValue``, ``RightValue``) in
sagemaker/workflow/conditions.py. The pipeline's role reads property files from S3
(https://docs.aws.amazon.com/sagemaker/latest/dg/build-and-manage-access.html).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from aws_cdk import Stack
from constructs import IConstruct

SCHEMA_VERSION = "2020-12-01"

ParameterType = Literal["String", "Integer", "Float", "Boolean"]
StepType = Literal["Training", "Processing", "Tuning"]
JOB_STEP_TYPES: frozenset[str] = frozenset({"Training", "Processing", "Tuning"})
# What a later step may read of a tuning step at run time. The SDK's TuningStep exposes the
# DescribeHyperParameterTuningJob response as its properties (sagemaker-mlops
# src/sagemaker/mlops/workflow/steps.py, TuningStep: Properties(shape_names=
# ["DescribeHyperParameterTuningJobResponse", ...]), rendered by Properties.expr in
# sagemaker-core src/sagemaker/core/workflow/properties.py as {"Get": "Steps.<step>.<path>"}).
TUNING_PROPERTIES = frozenset({"BestTrainingJob.TrainingJobName"})

EXECUTION_ID: Mapping[str, str] = {"Get": "Execution.PipelineExecutionId"}
EXECUTION_VARIABLES = frozenset(
    {"PipelineExecutionId", "PipelineExecutionArn", "PipelineName", "PipelineArn", "StartDateTime"}
)

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,63}$")
_PYTHON_TYPES: Mapping[ParameterType, tuple[type, ...]] = {
    "String": (str,),
    "Integer": (int,),
    "Float": (float, int),
    "Boolean": (bool,),
}


@dataclass(frozen=True)
class Parameter:
    """A pipeline parameter: overridable per execution, with a default."""

    name: str
    type: ParameterType
    default: str | int | float | bool

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"pipeline parameter name {self.name!r} must be alphanumeric")
        if isinstance(self.default, bool) != (self.type == "Boolean") or not isinstance(
            self.default, _PYTHON_TYPES[self.type]
        ):
            raise TypeError(f"parameter {self.name}: default {self.default!r} is not {self.type}")

    @property
    def ref(self) -> Mapping[str, str]:
        return {"Get": f"Parameters.{self.name}"}

    def as_string(self) -> Mapping[str, Any]:
        """The value rendered as a string (hyperparameters and environment are string maps)."""
        if self.type == "String":
            return self.ref
        return {"Std:Join": {"On": "", "Values": [self.ref]}}

    def definition(self) -> dict[str, Any]:
        return {"Name": self.name, "Type": self.type, "DefaultValue": self.default}


@dataclass(frozen=True)
class PropertyFile:
    """A JSON file in a processing step's output that later steps may read with JsonGet."""

    name: str  # PropertyFileName, referenced as Steps.<step>.PropertyFiles.<name>
    output_name: str  # the ProcessingOutputConfig output that holds it
    path: str  # FilePath, relative to that output's LocalPath

    def definition(self) -> dict[str, str]:
        return {
            "PropertyFileName": self.name,
            "OutputName": self.output_name,
            "FilePath": self.path,
        }


def json_get(step: str, property_file: PropertyFile, path: str) -> Mapping[str, Any]:
    """The value at ``path`` (JsonPath) in ``step``'s property file, at run time."""
    return {
        "Std:JsonGet": {
            "PropertyFile": {"Get": f"Steps.{step}.PropertyFiles.{property_file.name}"},
            "Path": path,
        }
    }


def best_training_job_name(tuning_step: str) -> Mapping[str, str]:
    """The name of the tuning step's best training job, at run time (a data dependency: the
    step that reads it runs after the tuning step)."""
    return {"Get": f"Steps.{tuning_step}.BestTrainingJob.TrainingJobName"}


def equals(left: Any, right: Any) -> Mapping[str, Any]:
    """A condition: ``left == right`` (values, parameters or :func:`json_get`)."""
    return {"Type": "Equals", "LeftValue": left, "RightValue": right}


@dataclass(frozen=True)
class Step:
    """One job step; ``arguments`` is the request body of the job API (without the job name):
    CreateTrainingJob, CreateProcessingJob or CreateHyperParameterTuningJob."""

    name: str
    type: StepType
    arguments: Mapping[str, Any]
    depends_on: tuple[str, ...] = ()
    description: str | None = None
    property_files: tuple[PropertyFile, ...] = ()

    def __post_init__(self) -> None:
        if self.property_files and self.type != "Processing":
            raise ValueError(f"step {self.name}: only processing steps have property files")
        outputs = {
            o.get("OutputName")
            for o in self.arguments.get("ProcessingOutputConfig", {}).get("Outputs", [])
        }
        for file in self.property_files:
            if file.output_name not in outputs:
                raise ValueError(
                    f"step {self.name}: property file {file.name} reads output "
                    f"{file.output_name!r}, the step has {sorted(map(str, outputs))}"
                )

    def definition(self) -> dict[str, Any]:
        body: dict[str, Any] = {"Name": self.name, "Type": self.type}
        if self.description:
            body["Description"] = self.description
        if self.depends_on:
            body["DependsOn"] = list(self.depends_on)
        body["Arguments"] = _plain(self.arguments)
        if self.property_files:
            body["PropertyFiles"] = [f.definition() for f in self.property_files]
        return body


@dataclass(frozen=True)
class ConditionStep:
    """Runs ``if_steps`` when every condition holds, else ``else_steps`` (none: the execution
    ends there and succeeds). Branch steps are nested in the condition, not listed at the top."""

    name: str
    conditions: tuple[Mapping[str, Any], ...]
    if_steps: tuple[Step, ...]
    else_steps: tuple[Step, ...] = ()
    depends_on: tuple[str, ...] = ()
    description: str | None = None
    type: Literal["Condition"] = "Condition"

    @property
    def arguments(self) -> Mapping[str, Any]:
        return {
            "Conditions": _plain(self.conditions),
            "IfSteps": [s.definition() for s in self.if_steps],
            "ElseSteps": [s.definition() for s in self.else_steps],
        }

    def definition(self) -> dict[str, Any]:
        body: dict[str, Any] = {"Name": self.name, "Type": self.type}
        if self.description:
            body["Description"] = self.description
        if self.depends_on:
            body["DependsOn"] = list(self.depends_on)
        body["Arguments"] = self.arguments
        return body


@dataclass(frozen=True)
class PipelineDefinition:
    """Parameters and steps; validates references so a typo fails at synth, not at run time."""

    parameters: tuple[Parameter, ...]
    steps: tuple[Step | ConditionStep, ...]
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = [p.name for p in self.parameters]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate pipeline parameter in {names}")
        every = self.all_steps()
        step_names = [s.name for s in every]
        if len(set(step_names)) != len(step_names):
            raise ValueError(f"duplicate step name in {step_names}")
        files = {
            f"{s.name}.PropertyFiles.{f.name}"
            for s in every
            if isinstance(s, Step)
            for f in s.property_files
        } | {
            f"{s.name}.{path}"
            for s in every
            if isinstance(s, Step) and s.type == "Tuning"
            for path in TUNING_PROPERTIES
        }
        for step in every:
            for dependency in step.depends_on:
                if dependency not in step_names:
                    raise ValueError(f"step {step.name} depends on unknown step {dependency}")
            own = step.conditions if isinstance(step, ConditionStep) else step.arguments
            for reference in references(own):
                kind, _, name = reference.partition(".")
                known = {
                    "Parameters": set(names),
                    "Execution": EXECUTION_VARIABLES,
                    "Steps": files,
                }.get(kind, set())
                if name not in known:
                    raise ValueError(f"step {step.name} references unknown {reference!r}")

    def all_steps(self) -> tuple[Step | ConditionStep, ...]:
        """Every step, the ones nested in condition branches included."""
        found: list[Step | ConditionStep] = []
        for step in self.steps:
            found.append(step)
            if isinstance(step, ConditionStep):
                found += [*step.if_steps, *step.else_steps]
        return tuple(found)

    def job_steps(self) -> tuple[Step, ...]:
        """Every step that starts a job (training, processing or tuning), wherever it is nested."""
        return tuple(s for s in self.all_steps() if isinstance(s, Step))

    def to_dict(self) -> dict[str, Any]:
        return {
            "Version": SCHEMA_VERSION,
            "Metadata": dict(self.metadata),
            "Parameters": [p.definition() for p in self.parameters],
            "Steps": [s.definition() for s in self.steps],
        }

    def render(self, scope: IConstruct) -> str:
        """The definition as a JSON string; CDK tokens become CloudFormation intrinsics."""
        return Stack.of(scope).to_json_string(self.to_dict())


def all_steps(steps: Sequence[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
    """Every step of a rendered definition's ``Steps``, with those nested in condition branches
    (both branches: the jobs a condition gates are still the pipeline's jobs)."""
    for step in steps:
        yield step
        if step.get("Type") == "Condition":
            arguments = step.get("Arguments", {})
            yield from all_steps([*arguments.get("IfSteps", []), *arguments.get("ElseSteps", [])])


def references(value: Any) -> Iterator[str]:
    """Every ``{"Get": ...}`` path inside ``value``."""
    if isinstance(value, Mapping):
        if set(value) == {"Get"} and isinstance(value["Get"], str):
            yield value["Get"]
            return
        for item in value.values():
            yield from references(item)
    elif isinstance(value, Sequence) and not isinstance(value, str):
        for item in value:
            yield from references(item)


def _plain(value: Any) -> Any:
    """Mappings and tuples as dicts and lists (what JSON rendering expects)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [_plain(v) for v in value]
    return value
