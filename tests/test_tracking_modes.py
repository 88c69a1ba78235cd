"""Every tracking mode in every environment: cdk-nag clean, cfn-lint clean, snapshotted.

The default mode of each environment is covered by test_snapshots/test_nag/test_cfn_lint;
here each (environment, mode) pair is synthesized once (shared with tests/unit/test_tracking.py)
and the tracking stack of the non-default pairs is snapshotted.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from cfnlint.api import ManualArgs, lint
from syrupy.assertion import SnapshotAssertion
from syrupy.extensions.json import JSONSnapshotExtension

from tests.conftest import synthesized
from tests.synth import ENVIRONMENTS, ROOT, SynthesizedApp, cdk_json_context
from tests.test_snapshots import mask_asset_hashes

MODES = ("serverless", "managed", "fargate", "ec2")


def default_mode(env: str) -> str:
    mode: str = (
        cdk_json_context()["environments"][env].get("tracking", {}).get("mode", "serverless")
    )
    return mode


def app_for(env: str, mode: str) -> SynthesizedApp:
    """The app of ``env`` with ``mode``; the default mode reuses the plain environment's synth."""
    if mode == default_mode(env):
        return synthesized(env)
    return synthesized(env, **{"tracking.mode": mode})


COMBINATIONS = [
    pytest.param(env, mode, id=f"{env}-{mode}") for env in ENVIRONMENTS for mode in MODES
]
NON_DEFAULT = [
    pytest.param(env, mode, id=f"{env}-{mode}")
    for env in ENVIRONMENTS
    for mode in MODES
    if mode != default_mode(env)
]


def test_each_environment_names_its_default_mode() -> None:
    assert [default_mode(env) for env in ENVIRONMENTS] == ["serverless", "managed", "fargate"]


@pytest.mark.parametrize("env, mode", COMBINATIONS)
def test_mode_synthesizes_without_nag_findings(env: str, mode: str) -> None:
    app = app_for(env, mode)
    assert app.platform.tracking.mode == mode
    report = json.loads((Path(app.assembly.directory) / "validation-report.json").read_text())
    assert report["pluginReports"] == []


@pytest.mark.parametrize("env, mode", COMBINATIONS)
def test_mode_passes_cfn_lint(env: str, mode: str) -> None:
    settings = yaml.safe_load((ROOT / ".cfnlintrc").read_text())
    config = ManualArgs(ignore_checks=settings["ignore_checks"], regions=settings["regions"])
    problems = []
    for stack in app_for(env, mode).assembly.stacks:
        template = Path(stack.template_full_path).read_text()
        problems += [f"{stack.stack_name}: {match}" for match in lint(template, config=config)]
    assert problems == []


@pytest.mark.parametrize("env, mode", NON_DEFAULT)
def test_tracking_stack_matches_its_snapshot(
    env: str, mode: str, snapshot: SnapshotAssertion
) -> None:
    app = app_for(env, mode)
    template = app.template_json("tracking")
    assert mask_asset_hashes(template) == snapshot.use_extension(JSONSnapshotExtension)
