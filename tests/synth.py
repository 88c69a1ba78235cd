"""Synthesize the app in-process for tests, exactly as app.py does, with explicit inputs."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk import assertions, cx_api

from mlops_cdk.app_setup import set_up
from mlops_cdk.platform import Platform
from mlops_cdk.settings import Settings
from tools import cdk_json
from tools.synthesis import template_of

ROOT = Path(__file__).resolve().parent.parent

# "agnostic": no account or region, as `python app.py` without CDK_DEFAULT_* synthesizes.
# "deployed": a concrete account and region, as `cdk deploy` synthesizes (the CLI always
# supplies a region): partitions become literals, and lookups are answered from context.
FORMS = ("agnostic", "deployed")
DEPLOY_ACCOUNT = "111122223333"  # AWS's documentation example account, not a real one
DEPLOY_REGION = "eu-west-1"
DEPLOY_ZONES = [f"{DEPLOY_REGION}{suffix}" for suffix in "abc"]


def deployed_context() -> dict[str, Any]:
    """The ``-c`` settings and cached lookups a deploying user's ``cdk.context.json`` holds."""
    return {
        "account": DEPLOY_ACCOUNT,
        "region": DEPLOY_REGION,
        f"availability-zones:account={DEPLOY_ACCOUNT}:region={DEPLOY_REGION}": DEPLOY_ZONES,
    }


@dataclass(frozen=True)
class SynthesizedApp:
    """One synthesized environment: its settings, stacks and cloud assembly."""

    settings: Settings
    platform: Platform
    assembly: cx_api.CloudAssembly

    @property
    def stack_names(self) -> list[str]:
        return [stack.stack_name for stack in self.platform.stacks]

    def template(self, unit: str) -> assertions.Template:
        return self._templates[self.settings.stack_name(unit)]

    def template_json(self, unit: str) -> dict[str, Any]:
        return template_of(self.assembly.get_stack_by_name(self.settings.stack_name(unit)))

    def has_stack(self, unit: str) -> bool:
        return self.settings.stack_name(unit) in self.stack_names

    @cached_property
    def _templates(self) -> dict[str, assertions.Template]:
        return {s.stack_name: assertions.Template.from_stack(s) for s in self.platform.stacks}


def synthesize(
    env: str,
    overrides: Mapping[str, Any] | None = None,
    *,
    form: str = "agnostic",
    checks: bool = True,
) -> SynthesizedApp:
    """Synthesize environment ``env`` with optional ``-c``-style overrides, nag checks on,
    through app.py's own :func:`~mlops_cdk.app_setup.set_up`.

    Explicit inputs only: cdk.json's context and no process environment, so the result is
    the same on every machine. ``form="deployed"`` synthesizes with a concrete account and
    region (see :data:`FORMS`). ``checks=False``: without the cdk-nag pack
    (:func:`~mlops_cdk.app_setup.set_up`) and CDK's built-in template validation (whose errors
    fail synthesis: cdk.json sets @aws-cdk/core:validateAgainstDefaultRules), for a second
    synthesis of a variant whose own app is checked with both (other tags, other references).
    """
    if form not in FORMS:
        raise ValueError(f"form={form!r} is not one of {', '.join(FORMS)}")
    context = {
        **cdk_json.context(),
        "env": env,
        **(deployed_context() if form == "deployed" else {}),
        **(overrides or {}),
    }
    app = cdk.App(
        context=context,
        outdir=tempfile.mkdtemp(prefix=f"cdk-{env}-"),
        builtin_cloud_formation_validation=checks,
    )
    setup = set_up(app, environ={}, nag_checks=checks)
    return SynthesizedApp(settings=setup.settings, platform=setup.platform, assembly=app.synth())
