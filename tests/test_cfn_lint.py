"""cfn-lint over every synthesized template of every environment: zero errors and warnings.

Ignored checks live in .cfnlintrc, each with its reason.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from cfnlint.api import ManualArgs, lint

from tests.synth import ROOT, SynthesizedApp


def test_templates_pass_cfn_lint(any_env: SynthesizedApp) -> None:
    settings = yaml.safe_load((ROOT / ".cfnlintrc").read_text())
    config = ManualArgs(ignore_checks=settings["ignore_checks"], regions=settings["regions"])
    problems = []
    for stack in any_env.assembly.stacks:
        template = Path(stack.template_full_path).read_text()
        problems += [f"{stack.stack_name}: {match}" for match in lint(template, config=config)]
    assert problems == []
