"""cdk-nag: every environment is clean, and the pack really runs (a clean report looks the same)."""

from __future__ import annotations

import json
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import aws_s3 as s3

from mlops_cdk import nag
from tests.synth import SynthesizedApp


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
