"""cfn-lint over synthesized templates, each distinct template linted once.

Many variants share templates (storage and network do not change with the tracking mode, and
test_cfn_lint's environments are test_tracking_modes' default-mode variants), so results are
kept per template text (tests/session_cache.py ``remembered``: for the session and, in pytest's
cache directory, for later sessions), keyed with cfn-lint's version, .cfnlintrc and this
module's own text (how cfn-lint is called). One cfn-lint ``Runner`` per process loads the rules
once (loading them costs about as much as linting a template); it gives the same matches as
``cfnlint.api.lint``.
"""

from __future__ import annotations

from functools import cache, partial
from pathlib import Path

import yaml
from aws_cdk import cx_api
from cfnlint.api import ManualArgs
from cfnlint.config import ConfigMixIn
from cfnlint.decode.decode import decode_str
from cfnlint.runner import Runner
from cfnlint.version import __version__ as cfn_lint_version

from tests import session_cache
from tests.synth import ROOT

SETTINGS = ROOT / ".cfnlintrc"
_HOW = Path(__file__).read_text()  # a change to how cfn-lint is run invalidates kept results


@cache
def _runner() -> Runner:
    settings = yaml.safe_load(SETTINGS.read_text())
    config = ManualArgs(ignore_checks=settings["ignore_checks"], regions=settings["regions"])
    return Runner(ConfigMixIn(**config))


def lint_template(text: str) -> list[str]:
    """cfn-lint's findings on one template (JSON text), as ``str(match)``."""
    template, errors = decode_str(text)
    if errors:
        return [str(match) for match in errors]
    return [str(match) for match in _runner().validate_template(template)]


def problems(stacks: list[cx_api.CloudFormationStackArtifact]) -> list[str]:
    """Every finding on the stacks' templates, each prefixed with its stack's name."""
    found: list[str] = []
    for stack in stacks:
        text = Path(stack.template_full_path).read_text()
        key = "\0".join([cfn_lint_version, SETTINGS.read_text(), _HOW, text])
        matches = session_cache.remembered("cfn-lint", key, partial(lint_template, text))
        found += [f"{stack.stack_name}: {match}" for match in matches]
    return found
