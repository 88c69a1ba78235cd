"""cdk-nag: every environment is clean, and the pack really runs (a clean report looks the same)."""

from __future__ import annotations

import json
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import aws_s3 as s3

from mlops_cdk import nag
from mlops_cdk.constructs.data_stores import ObjectStore
from mlops_cdk.constructs.mlflow_app import MlflowApp
from mlops_cdk.settings import TRACKING_MODES, TrackingSettings
from tests.conftest import synthesized_acknowledgements
from tests.matrix import VARIANTS, Variant
from tests.synth import SynthesizedApp, synthesize
from tools.cdk_json import ENVIRONMENTS
from tools.nag_report import NAG_MD, AppAcknowledgements, render
from tools.synthesis import template_of, templates_by_name


def test_environment_has_no_unacknowledged_findings(any_env: SynthesizedApp) -> None:
    # Synthesis would have raised on any unacknowledged finding; the report confirms it.
    report = json.loads((Path(any_env.assembly.directory) / "validation-report.json").read_text())
    # With a region known, CDK's own template validation also reports (clean): none may fail.
    failed = [r for r in report["pluginReports"] if r["violations"] or r["conclusion"] != "success"]
    assert failed == []


def test_a_non_compliant_resource_fails_synthesis(tmp_path: Path) -> None:
    app = cdk.App(outdir=str(tmp_path))
    stack = cdk.Stack(app, "NagCanary")
    s3.Bucket(stack, "UnencryptedUnloggedBucket")  # no TLS policy, no access logs
    nag.register(app)
    with pytest.raises(RuntimeError, match="AwsSolutions-S1"):
        app.synth()


def test_acknowledgements_carry_a_specific_reason(any_env: SynthesizedApp) -> None:
    reasons: dict[str, str] = {}
    for stack in any_env.platform.stacks:
        for construct in stack.node.find_all():
            for entry in construct.node.metadata:
                if entry.type == cdk.Validations.ACKNOWLEDGED_RULES_METADATA_KEY:
                    for rule, reason in entry.data.items():
                        reasons[f"{construct.node.path} {rule}"] = reason
    assert reasons, "expected at least the access-log bucket's acknowledgement"
    for where, reason in reasons.items():
        assert len(reason) >= 40, f"{where}: reason too vague: {reason!r}"


def _acknowledged(variant: Variant) -> AppAcknowledgements:
    recorded = synthesized_acknowledgements(variant.key)  # by the variant's own group
    if recorded is None:
        app = variant.app()
        made = nag.acknowledgements(app.platform.storage.node.root)
        recorded = app.settings.name_prefix, made
    name_prefix, made = recorded
    return AppAcknowledgements(variant.env, variant.mode, name_prefix, made)


@pytest.mark.after_groups
def test_nag_md_lists_every_acknowledgement_of_every_env_and_mode() -> None:
    # docs/nag.md is generated from the acknowledgements the constructs record (nag.ack...);
    # `make docs` rewrites it. Every env x mode, environment-agnostic (the matrix's apps).
    apps = [_acknowledged(v) for v in VARIANTS if v.form == "agnostic" and not v.extra]
    assert len(apps) == len(ENVIRONMENTS) * len(TRACKING_MODES)
    assert NAG_MD.read_text() == render(apps), "run `make docs` and commit docs/nag.md"


def test_a_construct_in_a_bare_stack_records_its_acknowledgements_and_needs_no_pack() -> None:
    # Constructs take interfaces, so one builds in a bare Stack; without nag.register the
    # acknowledgements are recorded (and plain ones set on the construct), nothing else runs.
    app = cdk.App()
    stack = cdk.Stack(app, "Bare")
    store = ObjectStore(bucket=s3.Bucket(stack, "Artifacts"), key=None, root="mlflow")
    MlflowApp(stack, "Mlflow", name="bare-mlflow", settings=TrackingSettings(), artifacts=store)
    assembly = app.synth()
    rules = {a.rule for a in nag.acknowledgements(app)}
    assert "AwsSolutions-IAM5[Action::s3:GetObject*]" in rules
    # The resource wildcards wait for the deferred plugin, which only nag.register adds.
    assert not any(rule.startswith("AwsSolutions-IAM5[Resource::") for rule in rules)
    assert template_of(assembly.get_stack_by_name("Bare"))["Resources"]


def test_the_checks_change_no_template(staging: SynthesizedApp) -> None:
    """What lets a test synthesize a second variant without the cdk-nag pack and CDK's
    validation (checks=False): they only check, so the templates are the same."""
    without = synthesize("staging", checks=False)
    assert list(templates_by_name(without.assembly).items()) == list(
        templates_by_name(staging.assembly).items()
    )
