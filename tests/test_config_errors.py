"""Bad settings stop synthesis with one line on stderr, a non-zero exit and nothing written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.synth import ROOT, cdk_json_context


def run_app(tmp_path: Path, **overrides: str) -> subprocess.CompletedProcess[str]:
    """Run app.py as the CDK CLI does: context in CDK_CONTEXT_JSON, output dir in CDK_OUTDIR."""
    context = {**cdk_json_context(), **overrides}
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/tmp"),
        "CDK_CONTEXT_JSON": json.dumps(context),
        "CDK_OUTDIR": str(tmp_path / "cdk.out"),
    }
    return subprocess.run(
        [sys.executable, str(ROOT / "app.py")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


CASES = {
    "unknown environment": (
        {"env": "qa"},
        "config error: env='qa' is not one of dev, prod, staging",
    ),
    "unknown key (typo)": (
        {"env": "dev", "storage.versionning": "true"},
        "config error: unknown setting 'storage.versionning'; allowed here: create_bucket, ",
    ),
    "unknown section": (
        {"env": "dev", "storge.create_bucket": "false"},
        "config error: unknown setting 'storge.create_bucket' (-c); top-level settings are: ",
    ),
    "wrong type": (
        {"env": "dev", "network.max_azs": "two"},
        "config error: network.max_azs='two': input should be a valid integer",
    ),
    "out of range": (
        {"env": "dev", "storage.noncurrent_version_days": "0"},
        "config error: storage.noncurrent_version_days='0': input should be greater than or equal to 1",
    ),
    "not an allowed value": (
        {"env": "staging", "network.egress": "vpn"},
        "config error: network.egress='vpn': input should be 'endpoints', 'nat_gateway' or 'nat_instance'",
    ),
    "malformed value": (
        {"env": "dev", "network.cidr": "10.0.0/16"},
        "config error: network.cidr='10.0.0/16': must be an IPv4 network such as 10.0.0.0/16",
    ),
    "inconsistent settings": (
        {"env": "dev", "storage.create_bucket": "false"},
        "config error: storage.create_bucket=false needs storage.artifact_store_uri",
    ),
}


@pytest.mark.parametrize("overrides, expected", CASES.values(), ids=CASES.keys())
def test_bad_setting_prints_one_line_and_writes_nothing(
    tmp_path: Path, overrides: dict[str, str], expected: str
) -> None:
    result = run_app(tmp_path, **overrides)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(expected)
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "cdk.out").exists() or not any((tmp_path / "cdk.out").iterdir())


def test_missing_env_defaults_to_dev_and_says_so_once(tmp_path: Path) -> None:
    result = run_app(tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip().splitlines() == ["no -c env=NAME given; using dev"]
    manifest = json.loads((tmp_path / "cdk.out" / "manifest.json").read_text())
    assert "mlops-dev-storage" in manifest["artifacts"]
