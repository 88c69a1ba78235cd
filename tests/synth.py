"""Synthesize the app in-process for tests, exactly as app.py does, with explicit inputs."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk import assertions, cx_api

from mlops_cdk.config import Settings
from mlops_cdk.nag import add_nag_checks
from mlops_cdk.platform import Platform, build_platform

ROOT = Path(__file__).resolve().parent.parent
ENVIRONMENTS = ("dev", "staging", "prod")


def cdk_json_context() -> dict[str, Any]:
    context: dict[str, Any] = json.loads((ROOT / "cdk.json").read_text())["context"]
    return context


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
        return self.assembly.get_stack_by_name(self.settings.stack_name(unit)).template  # type: ignore[no-any-return]

    def has_stack(self, unit: str) -> bool:
        return self.settings.stack_name(unit) in self.stack_names

    @cached_property
    def _templates(self) -> dict[str, assertions.Template]:
        return {s.stack_name: assertions.Template.from_stack(s) for s in self.platform.stacks}


def synthesize(env: str, overrides: Mapping[str, Any] | None = None) -> SynthesizedApp:
    """Synthesize environment ``env`` with optional ``-c``-style overrides, nag checks on."""
    context = {**cdk_json_context(), "env": env, **(overrides or {})}
    outdir = tempfile.mkdtemp(prefix=f"cdk-{env}-")
    app = cdk.App(context=context, outdir=outdir)
    settings = Settings.from_context(app.node.get_all_context(), environ={})
    platform = build_platform(app, settings)
    add_nag_checks(app)
    return SynthesizedApp(settings=settings, platform=platform, assembly=app.synth())
