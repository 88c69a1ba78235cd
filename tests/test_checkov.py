"""checkov over every synthesized template of every variant: no unacknowledged finding.

One checkov process over a directory of each distinct template (tools/checkov_report.py).
Each acknowledged finding carries its reason beside its resource (``mlops_cdk.checkov.skip``)
and is listed in docs/checkov.md, which must be current.
"""

from __future__ import annotations

import pytest

from tests.checkov_variants import DEFAULTS, VARIANTS, templates_of
from tools.checkov_report import DOC, ENVIRONMENTS, Report, render, scan

# Distinct checks acknowledged per environment over all its variants: the target is
# at most 5; today's count (measured, see docs/checkov.md) is the ceiling, so it can only fall.
MAX_ACKNOWLEDGED_CHECKS = {"dev": 9, "staging": 9, "prod": 8}


# In one xdist worker: one checkov scan of every variant, shared by the tests of this module.
pytestmark = pytest.mark.xdist_group("checkov")


@pytest.fixture(scope="module")
def report() -> Report:
    return scan(templates_of(VARIANTS))


def test_checkov_ran_over_every_variant(report: Report) -> None:
    scanned = {f.variant for f in (*report.failed, *report.skipped)}
    assert report.templates > len(VARIANTS)
    assert scanned <= {v.id for v in VARIANTS}


def test_no_unacknowledged_checkov_finding(report: Report) -> None:
    failed = sorted({(f.check_id, f.stack, f.resource, f.check_name) for f in report.failed})
    assert not failed, f"{len(failed)} unacknowledged checkov findings:\n" + "\n".join(
        f"{check} {stack} {resource}: {name}" for check, stack, resource, name in failed
    )


def test_every_acknowledgement_says_why(report: Report) -> None:
    silent = sorted(
        {
            (f.check_id, f.stack, f.resource)
            for f in report.skipped
            if not f.reason or f.reason == "No comment provided"
        }
    )
    assert not silent


def test_acknowledged_checks_per_environment_stay_few(report: Report) -> None:
    by_env = report.acknowledged_by_env()
    counts = {env: len({row[0] for row in by_env[env]}) for env in ENVIRONMENTS}
    assert all(counts[env] <= MAX_ACKNOWLEDGED_CHECKS[env] for env in ENVIRONMENTS), counts


def test_checkov_docs_are_current(report: Report) -> None:
    assert DOC.read_text() == render(report, [v.id for v in VARIANTS], DEFAULTS), (
        "run `make checkov-docs` and commit docs/checkov.md"
    )
