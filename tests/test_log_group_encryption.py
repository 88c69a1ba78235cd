"""Every log group of every variant is encrypted with a KMS key that CloudWatch Logs may use.

The key policy must let ``logs.<region>.amazonaws.com`` use the key with the log group's ARN
as encryption context (CloudWatch Logs user guide, encrypt-log-data-kms.html); without it the
log group cannot be created. The IAM simulator used in tests/iam does not evaluate
``kms:EncryptionContext:*`` condition keys (measured: a matching ``ArnLike`` is implicitly
denied), so the condition is matched here the way IAM's ArnLike does (case-sensitive globs
per ARN component, which ``fnmatchcase`` over the whole ARN approximates for these ARNs).
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any

import pytest

from tests.iam.policies import ACCOUNT, REGION, Resolver
from tests.matrix import VARIANTS, Variant

NEEDED = ("kms:GenerateDataKey", "kms:Decrypt")
DEPLOYED = [pytest.param(v, id=v.id) for v in VARIANTS if v.form == "deployed"]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _allows(statement: dict[str, Any], action: str, log_group_arn: str) -> bool:
    if statement.get("Effect") != "Allow":
        return False
    services = _as_list(statement.get("Principal", {}).get("Service", []))
    if f"logs.{REGION}.amazonaws.com" not in services:
        return False
    if not any(fnmatchcase(action, pattern) for pattern in _as_list(statement["Action"])):
        return False
    conditions = statement.get("Condition", {})
    context = conditions.get("ArnLike", {}).get("kms:EncryptionContext:aws:logs:arn")
    return context is not None and any(
        fnmatchcase(log_group_arn, pattern) for pattern in _as_list(context)
    )


@pytest.mark.parametrize("variant", DEPLOYED)
def test_every_log_group_is_encrypted_with_a_key_cloudwatch_logs_may_use(variant: Variant) -> None:
    resolver = Resolver(variant.app())
    problems = []
    for stack, logical_id, resource in resolver.resources("AWS::Logs::LogGroup"):
        key = resource.get("Properties", {}).get("KmsKeyId")
        if key is None:
            problems.append(f"{stack}/{logical_id}: no KmsKeyId")
            continue
        key_arn = str(resolver.resolve(stack, key))
        policy = resolver.resource_policy_for(key_arn)
        group = str(resolver.get_att(stack, logical_id, "Arn")).removesuffix(":*")
        assert group.startswith(f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:")
        for action in NEEDED:
            if policy is None or not any(
                _allows(s, action, group) for s in _as_list(policy["Statement"])
            ):
                problems.append(f"{stack}/{logical_id}: key policy of {key_arn} denies {action}")
    assert not problems, "\n".join(problems)
