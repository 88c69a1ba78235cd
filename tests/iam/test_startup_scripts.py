"""The AWS CLI calls of the EC2 MLflow instance's start-up script are in its actor's list.

The script runs in a shell on the instance (no botocore hook can see it), so its ``aws
<service> <command>`` lines are read from the synthesized user data, mapped to IAM actions
and compared with ``CODE_CALLS["ec2-instance"]``, which the permission check simulates.
"""

from __future__ import annotations

import re

import pytest

from tests.iam.expected import CODE_CALLS
from tests.iam.policies import Resolver
from tests.matrix import VARIANTS, Variant

EC2 = [v for v in VARIANTS if v.mode == "ec2" and v.form == "deployed" and not v.extra]
CLI_CALL = re.compile(r"\baws\s+([a-z0-9-]+)\s+([a-z0-9-]+)")
# High-level CLI commands that are not one API operation.
CLI_ACTIONS = {("s3", "cp"): "s3:GetObject", ("s3", "ls"): "s3:ListBucket"}


def cli_action(service: str, command: str) -> str:
    """``aws secretsmanager get-secret-value`` -> ``secretsmanager:GetSecretValue``."""
    if (service, command) in CLI_ACTIONS:
        return CLI_ACTIONS[(service, command)]
    return f"{service}:{''.join(part.capitalize() for part in command.split('-'))}"


def user_data(variant: Variant) -> str:
    resolver = Resolver(variant.app())
    scripts = [
        str(resolver.resolve(stack, resource["Properties"]["LaunchTemplateData"]["UserData"]))
        for stack, _, resource in resolver.resources("AWS::EC2::LaunchTemplate")
        if "UserData" in resource["Properties"].get("LaunchTemplateData", {})
    ]
    assert scripts, "the ec2 mode has a launch template with user data"
    return "\n".join(scripts)


@pytest.mark.parametrize("variant", [pytest.param(v, id=v.id) for v in EC2])
def test_start_up_script_calls_are_listed_for_the_instance(variant: Variant) -> None:
    called = {cli_action(s, c) for s, c in CLI_CALL.findall(user_data(variant))}
    assert called, "the start-up script makes AWS CLI calls"
    missing = called - CODE_CALLS["ec2-instance"]
    assert not missing, f"add to CODE_CALLS['ec2-instance'] in tests/iam/expected.py: {missing}"


def test_cli_commands_map_to_iam_actions() -> None:
    assert cli_action("secretsmanager", "get-secret-value") == "secretsmanager:GetSecretValue"
    assert cli_action("route53", "change-resource-record-sets") == (
        "route53:ChangeResourceRecordSets"
    )
    assert cli_action("s3", "cp") == "s3:GetObject"
