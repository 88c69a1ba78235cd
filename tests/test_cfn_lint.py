"""cfn-lint over every synthesized template of every environment: zero errors and warnings.

Ignored checks live in .cfnlintrc, each with its reason. tests/lint.py lints each distinct
template once per session (the same templates are linted as variants in test_tracking_modes).
"""

from __future__ import annotations

from tests import lint
from tests.synth import SynthesizedApp


def test_templates_pass_cfn_lint(any_env: SynthesizedApp) -> None:
    assert lint.problems(any_env.assembly.stacks) == []


def test_the_lint_reports_an_invalid_template() -> None:
    """The shared runner and the per-template cache still see a defect (a clean run looks the same)."""
    bad = '{"Resources": {"Bucket": {"Type": "AWS::S3::Bucket", "Properties": {"Bogus": 1}}}}'
    assert any("E3002" in match and "Bogus" in match for match in lint.lint_template(bad))
