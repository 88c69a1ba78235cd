"""The GitHub workflows lint clean, and CI runs exactly the README's test command."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tests.synth import ROOT

WORKFLOWS = ROOT / ".github" / "workflows"


def test_workflows_pass_actionlint() -> None:
    # Installed into the virtualenv by requirements-dev.txt, beside this interpreter.
    actionlint = shutil.which("actionlint", path=str(Path(sys.executable).parent))
    assert actionlint, "actionlint is installed by requirements-dev.txt"
    files = sorted(str(p) for p in WORKFLOWS.glob("*.yml"))
    assert len(files) == 2
    result = subprocess.run(
        [actionlint, "-no-color", *files], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_ci_script_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme.split("## ", 1)[0]  # among the commands at the top
    assert (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1] == "make test"
    ci = yaml.safe_load((WORKFLOWS / "ci.yml").read_text())
    assert ci["jobs"]["test"]["steps"][-1]["run"] == "bash .ci/run"


def test_cdk_diff_assumes_a_role_through_oidc_and_keeps_one_comment() -> None:
    text = (WORKFLOWS / "cdk-diff.yml").read_text()
    workflow = yaml.safe_load(text)
    assert workflow["permissions"]["id-token"] == "write"
    steps = workflow["jobs"]["diff"]["steps"]
    creds = next(s for s in steps if "configure-aws-credentials" in s.get("uses", ""))
    assert creds["with"]["role-to-assume"] == "${{ vars.CDK_DIFF_ROLE_ARN }}"
    diff = next(s for s in steps if s.get("id") == "diff")
    assert "npx cdk diff --all" in diff["run"]
    assert "updateComment" in text and "mlops-cdk:cdk-diff" in text
