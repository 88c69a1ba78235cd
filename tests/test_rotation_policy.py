"""The MLflow users' rotation function's role grants no write action on "*".

- The function makes its passwords itself (Python's ``secrets``), so the role has no
  secretsmanager:GetRandomPassword (an action with no resource, "*").
- Its network interfaces come from the AWS managed policy CDK gives every function in a VPC
  (service-role/AWSLambdaVPCAccessExecutionRole), not from an inline statement on "*".

Over every variant of tests/matrix.py whose tracking mode has the rotation (fargate, ec2).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import pytest

from tests.matrix import VARIANTS, Variant, variant_params
from tests.test_custom_resource_handlers import role_statements

ROTATION_FUNCTION = re.compile(r"UserRotationFunction[0-9A-F]{8}$")
VPC_ACCESS = "service-role/AWSLambdaVPCAccessExecutionRole"
ENI_ACTIONS = {"ec2:CreateNetworkInterface", "ec2:DeleteNetworkInterface"}


def rotation_roles(template: Mapping[str, Any]) -> dict[str, str]:
    """Function logical id -> its role's logical id, for each user-rotation function."""
    return {
        logical_id: resource["Properties"]["Role"]["Fn::GetAtt"][0]
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Lambda::Function" and ROTATION_FUNCTION.search(logical_id)
    }


WITH_ROTATION = tuple(v for v in VARIANTS if v.mode in ("fargate", "ec2"))


@pytest.mark.parametrize("variant", variant_params(WITH_ROTATION))
def test_rotation_role_writes_nothing_on_star(variant: Variant) -> None:
    template = variant.app().template_json("tracking")
    roles = rotation_roles(template)
    assert roles, "no user-rotation function in the tracking stack"
    found = []
    for function, role in roles.items():
        for statement in role_statements(template, role):
            actions = statement["Action"]
            actions = set(actions if isinstance(actions, list) else [actions])
            if "secretsmanager:GetRandomPassword" in actions:
                found.append(f"{function}: role {role} allows secretsmanager:GetRandomPassword")
            if actions & ENI_ACTIONS:
                found.append(f"{function}: role {role} has an inline network-interface statement")
        managed = template["Resources"][role]["Properties"].get("ManagedPolicyArns", [])
        if VPC_ACCESS not in str(managed):
            found.append(f"{function}: role {role} lacks {VPC_ACCESS}")
    assert not found, "\n".join(found)
