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
StepType = Literal["Training", "Processing"]

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
class Step:
    """One step; ``arguments`` is the request body of the job API (without the job name)."""

    name: str
    type: StepType
    arguments: Mapping[str, Any]
    depends_on: tuple[str, ...] = ()
    description: str | None = None

    def definition(self) -> dict[str, Any]:
        body: dict[str, Any] = {"Name": self.name, "Type": self.type}
        if self.description:
            body["Description"] = self.description
        if self.depends_on:
            body["DependsOn"] = list(self.depends_on)
        body["Arguments"] = _plain(self.arguments)
        return body


@dataclass(frozen=True)
class PipelineDefinition:
    """Parameters and steps; validates references so a typo fails at synth, not at run time."""

    parameters: tuple[Parameter, ...]
    steps: tuple[Step, ...]
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = [p.name for p in self.parameters]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate pipeline parameter in {names}")
        step_names = [s.name for s in self.steps]
        if len(set(step_names)) != len(step_names):
            raise ValueError(f"duplicate step name in {step_names}")
        for step in self.steps:
            for dependency in step.depends_on:
                if dependency not in step_names:
                    raise ValueError(f"step {step.name} depends on unknown step {dependency}")
            for reference in references(step.arguments):
                kind, _, name = reference.partition(".")
                known = set(names) if kind == "Parameters" else EXECUTION_VARIABLES
                if kind not in {"Parameters", "Execution"} or name not in known:
                    raise ValueError(f"step {step.name} references unknown {reference!r}")

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
