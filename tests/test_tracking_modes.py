"""Every variant of the app (env x mode x form, egress paths): cdk-nag and cfn-lint clean.

Both forms count: environment-agnostic, and as `cdk deploy` synthesizes with a concrete account
and region (tests/matrix.py). The tracking stack of each non-default (environment, mode) pair
is snapshotted in the agnostic form; the default modes are in test_snapshots.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from syrupy.assertion import SnapshotAssertion
from syrupy.extensions.json import JSONSnapshotExtension

from mlops_cdk.settings import TRACKING_MODES
from tests import lint
from tests.matrix import Variant, variant_params
from tests.synth import SynthesizedApp
from tests.test_snapshots import mask_asset_hashes
from tools.cdk_json import ENVIRONMENTS
from tools.synthesis import default_mode


def app_for(env: str, mode: str) -> SynthesizedApp:
    """The agnostic app of ``env`` with ``mode`` (the default mode shares the plain synth)."""
    return Variant(env, mode).app()


NON_DEFAULT = [
    pytest.param(env, mode, id=f"{env}-{mode}")
    for env in ENVIRONMENTS
    for mode in TRACKING_MODES
    if mode != default_mode(env)
]


def test_each_environment_names_its_default_mode() -> None:
    # Serverless outside prod: the cheapest private default (docs/cost.md).
    assert [default_mode(env) for env in ENVIRONMENTS] == ["serverless", "serverless", "fargate"]


@pytest.mark.parametrize("variant", variant_params())
def test_variant_synthesizes_without_nag_findings(variant: Variant) -> None:
    app = variant.app()
    assert app.platform.tracking.mode == variant.mode
    report = json.loads((Path(app.assembly.directory) / "validation-report.json").read_text())
    # With a region known, CDK's own template validation also reports (clean): none may fail.
    failed = [r for r in report["pluginReports"] if r["violations"] or r["conclusion"] != "success"]
    assert failed == []


@pytest.mark.parametrize("variant", variant_params())
def test_variant_passes_cfn_lint(variant: Variant) -> None:
    assert lint.problems(variant.app().assembly.stacks) == []


@pytest.mark.parametrize("env, mode", NON_DEFAULT)
def test_tracking_stack_matches_its_snapshot(
    env: str, mode: str, snapshot: SnapshotAssertion
) -> None:
    app = app_for(env, mode)
    template = app.template_json("tracking")
    assert mask_asset_hashes(template) == snapshot.use_extension(JSONSnapshotExtension)
