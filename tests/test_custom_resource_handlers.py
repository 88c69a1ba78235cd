"""Every Lambda function CloudFormation invokes as a custom-resource handler has a dead-letter
queue its role may send to, and reserved concurrency from the environment's setting.

CloudFormation invokes a custom-resource function asynchronously (Lambda developer guide,
https://docs.aws.amazon.com/lambda/latest/dg/services-cloudformation.html), so an event whose
invocations all failed goes to the function's dead-letter queue (Lambda developer guide,
"Dead-letter queues": sent with the execution role, which needs sqs:SendMessage and, for an
encrypted queue, the queue's key).

The class: every ``AWS::Lambda::Function`` that is the ``ServiceToken`` of a custom resource
(``Custom::*`` or ``AWS::CloudFormation::CustomResource``) in its template, over every variant
of tests/matrix.py. CDK's own singleton providers (S3 auto-delete-objects, VPC
restrict-default-SG) reserve ``custom_resource_reserved_concurrency``; other handlers are
configured by their own construct and checked here for the dead-letter queue only.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from mlops_cdk.settings import ConfigError, Settings
from tests.conftest import synthesized
from tests.matrix import Variant, variant_params
from tools import cdk_json
from tools.synthesis import template_of

CUSTOM_RESOURCE = "AWS::CloudFormation::CustomResource"
# CDK's singleton providers (core CustomResourceProvider) are constructs named
# Custom::<Type>CustomResourceProvider under the stack, whose function is "Handler".
CDK_PROVIDER_HANDLER = re.compile(r"^Custom\w+CustomResourceProviderHandler[0-9A-F]{8}$")


def handlers(template: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """Logical id -> resource of each function that is a custom resource's ServiceToken."""
    resources: Mapping[str, Any] = template["Resources"]
    found: dict[str, Mapping[str, Any]] = {}
    for resource in resources.values():
        kind = resource["Type"]
        if not (kind.startswith("Custom::") or kind == CUSTOM_RESOURCE):
            continue
        token = resource.get("Properties", {}).get("ServiceToken")
        if isinstance(token, dict) and "Fn::GetAtt" in token:
            target = token["Fn::GetAtt"][0]
            if resources.get(target, {}).get("Type") == "AWS::Lambda::Function":
                found[target] = resources[target]
    return found


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def role_statements(template: Mapping[str, Any], role_id: str) -> Iterator[Mapping[str, Any]]:
    """Allow statements of the role's inline policies and of the policies attached to it."""
    resources: Mapping[str, Any] = template["Resources"]
    documents = [p["PolicyDocument"] for p in resources[role_id]["Properties"].get("Policies", [])]
    for resource in resources.values():
        if resource["Type"] == "AWS::IAM::Policy" and {"Ref": role_id} in resource[
            "Properties"
        ].get("Roles", []):
            documents.append(resource["Properties"]["PolicyDocument"])
    for document in documents:
        for statement in _listed(document["Statement"]):
            if statement["Effect"] == "Allow":
                yield statement


def allows(statements: list[Mapping[str, Any]], action: str, resource: Any) -> bool:
    for statement in statements:
        actions = _listed(statement["Action"])
        matches = action in actions or any(
            a.endswith("*") and action.startswith(a[:-1]) for a in actions
        )
        if matches and resource in _listed(statement["Resource"]):
            return True
    return False


def defects(variant_app: Any, reserved: int | None) -> list[str]:
    found = []
    for stack in variant_app.assembly.stacks:
        template = template_of(stack)
        resources = template["Resources"]
        for logical_id, function in handlers(template).items():
            where = f"{stack.stack_name}/{logical_id}"
            props = function["Properties"]
            if (
                CDK_PROVIDER_HANDLER.match(logical_id)
                and props.get("ReservedConcurrentExecutions") != reserved
            ):
                found.append(
                    f"{where}: ReservedConcurrentExecutions="
                    f"{props.get('ReservedConcurrentExecutions')!r}, setting says {reserved!r}"
                )
            target = props.get("DeadLetterConfig", {}).get("TargetArn")
            if target is None:
                found.append(f"{where}: no DeadLetterConfig")
                continue
            role = props["Role"]["Fn::GetAtt"][0]
            statements = list(role_statements(template, role))
            if not allows(statements, "sqs:SendMessage", target):
                found.append(f"{where}: role {role} may not sqs:SendMessage to {target}")
            queue = resources.get(target.get("Fn::GetAtt", [""])[0], {})
            key = queue.get("Properties", {}).get("KmsMasterKeyId")
            if key is not None:
                for action in ("kms:GenerateDataKey", "kms:Decrypt"):
                    if not allows(statements, action, key):
                        found.append(f"{where}: role {role} may not {action} on the DLQ's key")
    return found


@pytest.mark.parametrize("variant", variant_params())
def test_custom_resource_handlers_dead_letter_and_reserve(variant: Variant) -> None:
    app = variant.app()
    found = defects(app, app.settings.custom_resource_reserved_concurrency)
    assert not found, "\n".join(found)


def test_no_reservation_when_the_setting_is_null() -> None:
    app = synthesized("staging", **{"custom_resource_reserved_concurrency": "null"})
    assert app.settings.custom_resource_reserved_concurrency is None
    reserved = [
        f"{stack.stack_name}/{logical_id}"
        for stack in app.assembly.stacks
        for logical_id, function in handlers(template_of(stack)).items()
        if CDK_PROVIDER_HANDLER.match(logical_id)
        and "ReservedConcurrentExecutions" in function["Properties"]
    ]
    assert not reserved, reserved
    assert not defects(app, None)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            "0",
            "custom_resource_reserved_concurrency='0': input should be greater than or equal to 1",
        ),
        (
            "11",
            "custom_resource_reserved_concurrency='11': input should be less than or equal to 10",
        ),
    ],
)
def test_reserved_concurrency_out_of_range_is_one_clear_line(value: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_context(
            {**cdk_json.context(), "env": "staging", "custom_resource_reserved_concurrency": value},
            environ={},
        )
    assert expected in str(caught.value)
    assert "\n" not in str(caught.value)
