"""Synthesize an environment in-process (as app.py does) and read its templates back.

`make cost` and `make diagram` work on the real synthesized templates, not on the settings:
what they count is what CloudFormation would create. Tests pass the cloud assembly they have
already synthesized (tests/conftest.py) to :func:`stacks_of` instead of synthesizing again.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk import cx_api

from mlops_cdk.app_setup import set_up
from mlops_cdk.settings import Settings
from tools import cdk_json

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class StackTemplate:
    """One synthesized stack: its name, CloudFormation template and the stacks it depends on."""

    name: str
    template: Mapping[str, Any]
    depends_on: tuple[str, ...]

    @property
    def resources(self) -> Mapping[str, Mapping[str, Any]]:
        resources: Mapping[str, Mapping[str, Any]] = self.template.get("Resources", {})
        return resources


def local_refs(value: Any) -> set[str]:
    """Logical ids referenced (``Ref`` / ``Fn::GetAtt``) anywhere inside a template value."""
    found: set[str] = set()
    if isinstance(value, dict):
        if isinstance(value.get("Ref"), str):
            found.add(value["Ref"])
        if isinstance(value.get("Fn::GetAtt"), list):
            found.add(value["Fn::GetAtt"][0])
        for inner in value.values():
            found |= local_refs(inner)
    elif isinstance(value, list):
        for inner in value:
            found |= local_refs(inner)
    return found


@cache
def default_mode(env: str) -> str:
    """The tracking mode cdk.json configures for ``env`` (the settings' default when it names
    none). Cached: the tests ask it for every test they collect."""
    settings = Settings.from_context({**cdk_json.context(), "env": env}, environ={})
    return settings.tracking.mode


def template_of(stack: cx_api.CloudFormationStackArtifact) -> dict[str, Any]:
    """What ``stack.template`` gives, a new copy on each call, read from the assembly directory.

    cx-api's getter parses the same file (``get template()`` in @aws-cdk/cloud-assembly-api
    lib/artifacts/cloudformation-artifact.js: ``JSON.parse(fs.readFileSync(this.templateFullPath))``);
    through jsii the parsed template then crosses to Python object by object, ~60 ms for a
    staging stack against ~2 ms from disk, and the tests read templates some 2,700 times a run.
    """
    template: dict[str, Any] = json.loads(Path(stack.template_full_path).read_text())
    return template


def templates_by_name(assembly: cx_api.CloudAssembly) -> dict[str, dict[str, Any]]:
    """{stack name: template} of every stack in a cloud assembly (:func:`template_of`)."""
    return {stack.stack_name: template_of(stack) for stack in assembly.stacks}


def exports(templates: Mapping[str, Mapping[str, Any]]) -> dict[str, tuple[str, Any]]:
    """Export name -> (the stack exporting it, the output's value expression), over the
    templates of one app ({stack name: template}, as :func:`templates_by_name` gives them)."""
    found: dict[str, tuple[str, Any]] = {}
    for stack, template in templates.items():
        for output in template.get("Outputs", {}).values():
            name = output.get("Export", {}).get("Name")
            if isinstance(name, str):
                found[name] = (stack, output["Value"])
    return found


def stacks_of(assembly: cx_api.CloudAssembly) -> list[StackTemplate]:
    """The stacks of a cloud assembly, in deployment order, with their manifest dependencies."""
    stack_ids = {s.id for s in assembly.stacks}
    return [
        StackTemplate(
            name=stack.stack_name,
            template=template_of(stack),
            depends_on=tuple(d.id for d in stack.dependencies if d.id in stack_ids),
        )
        for stack in assembly.stacks
    ]


def synthesize(env: str, overrides: Mapping[str, Any] | None = None) -> list[StackTemplate]:
    """The stack templates of ``env`` synthesized in-process as app.py does (one shared
    :func:`~mlops_cdk.app_setup.set_up`), with ``-c``-style overrides, nag checks on.

    Explicit inputs only: cdk.json's context and no process environment, so the result is
    the same on every machine.
    """
    context = {**cdk_json.context(), "env": env, **(overrides or {})}
    app = cdk.App(context=context, outdir=tempfile.mkdtemp(prefix=f"cdk-{env}-"))
    set_up(app, environ={})
    return stacks_of(app.synth())
