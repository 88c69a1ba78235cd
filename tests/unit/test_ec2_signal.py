"""ec2 tracking mode: the Auto Scaling group waits for the instance's user data to say how it went.

Without a signal CloudFormation marks the group complete as soon as an instance launches, so
a boot script that fails (a PyPI outage, a broken migration) leaves a "successful" deploy with
no MLflow. The group's CreationPolicy and rolling UpdatePolicy wait for one cfn-signal; the
user data sends it from an EXIT trap, with the script's exit code, on success and on failure.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import with_app
from tests.matrix import VARIANTS, Variant, variant_params

EC2 = tuple(v for v in VARIANTS if v.mode == "ec2")


def _group(variant: Variant) -> tuple[str, dict[str, Any]]:
    resources = variant.app().template_json("tracking")["Resources"]
    ((group_id, group),) = [
        (k, v) for k, v in resources.items() if v["Type"] == "AWS::AutoScaling::AutoScalingGroup"
    ]
    return group_id, group


def _user_data(variant: Variant) -> str:
    """The boot script as text, each CloudFormation token shown as ``TOKEN``."""
    resources = variant.app().template_json("tracking")["Resources"]
    (template,) = [v for v in resources.values() if v["Type"] == "AWS::EC2::LaunchTemplate"]
    body = template["Properties"]["LaunchTemplateData"]["UserData"]["Fn::Base64"]
    if isinstance(body, str):
        return body
    return "".join(p if isinstance(p, str) else "TOKEN" for p in body["Fn::Join"][1])


@pytest.mark.parametrize("variant", variant_params(EC2))
def test_the_group_waits_for_one_signal_on_create_and_on_update(variant: Variant) -> None:
    _, group = _group(variant)
    signal = group["CreationPolicy"]["ResourceSignal"]
    assert signal["Count"] == int(group["Properties"]["MinSize"]) == 1
    # pip-installing MLflow and its migrations take minutes; 20 leaves room without hiding a hang.
    assert signal["Timeout"] == "PT20M"
    rolling = group["UpdatePolicy"]["AutoScalingRollingUpdate"]
    assert rolling["WaitOnResourceSignals"] is True
    assert rolling["PauseTime"] == "PT20M"


@pytest.mark.parametrize("variant", variant_params(EC2))
def test_the_user_data_signals_its_exit_code_from_a_trap(variant: Variant) -> None:
    group_id, _ = _group(variant)
    script = _user_data(variant)
    lines = script.splitlines()
    # The helper is installed first, outside `set -e`, so even a failing boot can signal.
    install = lines.index("dnf install -y aws-cfn-bootstrap || true")
    assert install < lines.index("set -euxo pipefail")
    assert lines.index("trap exitTrap EXIT") < lines.index("set -euxo pipefail")
    (signal,) = [line for line in lines if "cfn-signal" in line]
    assert f"--resource {group_id}" in signal and "-e $exitCode" in signal
    # Success means MLflow answers, not just that the script got to its end.
    assert re.search(r"curl -fsS [^\n]*/health", lines[-1]), lines[-1]


STAGING_EC2 = Variant("staging", "ec2")


@with_app(STAGING_EC2.key)
@pytest.mark.parametrize("fails", [False, True], ids=["success", "failure"])
def test_the_trap_signals_the_exit_code_for_real(fails: bool, tmp_path: Path) -> None:
    """Run the script's preamble in bash, with stub dnf and cfn-signal, then fail or succeed."""
    (variant,) = [v for v in EC2 if v == STAGING_EC2]
    lines = _user_data(variant).splitlines()
    preamble = lines[: lines.index("set -euxo pipefail") + 1]
    signals = tmp_path / "signals"
    stubs = {
        "dnf": "#!/bin/sh\nexit 0\n",
        "cfn-signal": f'#!/bin/sh\necho "$@" >> {signals}\n',
    }
    for name, body in stubs.items():
        path = tmp_path / name
        path.write_text(body)
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    script = "\n".join(
        [
            *(
                line.replace("/opt/aws/bin/cfn-signal", str(tmp_path / "cfn-signal"))
                for line in preamble
            ),
            "false" if fails else "true",
            "echo done",
        ]
    )
    result = subprocess.run(
        ["bash", "-c", script],
        env={**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == (1 if fails else 0), result.stderr
    (sent,) = signals.read_text().splitlines()
    assert f"-e {1 if fails else 0}" in sent
