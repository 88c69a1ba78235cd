"""Minimal real dependencies for construct-level tests in a bare ``cdk.Stack`` (issue 14).

No whole app, no nag packs, no project stack: each test builds the construct under test in
its own ``cdk.Stack(cdk.App(), ...)`` from an ``ec2.Vpc``, a ``kms.Key``, ``s3.Bucket`` s wrapped
as the project's :class:`ObjectStore`, and settings models built with their defaults.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Template

from mlops_cdk.constructs.data_stores import ObjectStore
from tools import cdk_json

# A concrete environment: ARNs and the region resolve to literals, so e.g. a pipeline
# definition renders to plain JSON.
ENV = cdk.Environment(account="111122223333", region="eu-west-1")


@cache
def feature_flags() -> dict[str, Any]:
    """The app's CDK feature flags (cdk.json context keys starting with "@"), no settings.

    A construct behaves as in the app only under the same flags: without
    ``@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy`` a SecureBucket logging into the
    (owner-enforced) AccessLogBucket fails to build at all.
    """
    return {k: v for k, v in cdk_json.context().items() if k.startswith("@")}


def bare_app() -> cdk.App:
    """An app with the project's feature flags and nothing else (no settings, no nag pack)."""
    return cdk.App(context=feature_flags())


def bare_stack(id: str = "Bare", *, app: cdk.App | None = None) -> cdk.Stack:
    """A stack of its own app (or of ``app``), with a concrete account and region."""
    return cdk.Stack(app or bare_app(), id, env=ENV)


def vpc(stack: cdk.Stack) -> ec2.Vpc:
    """Two zones of private (isolated) subnets: what the constructs attach to."""
    return ec2.Vpc(
        stack,
        "Vpc",
        max_azs=2,
        nat_gateways=0,
        subnet_configuration=[
            ec2.SubnetConfiguration(name="private", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)
        ],
    )


def artifacts(stack: cdk.Stack, key: kms.IKey | None = None) -> ObjectStore:
    """A plain bucket as the MLflow artifact store under ``mlflow``, encrypted with ``key``."""
    key = key or kms.Key(stack, "Key")
    return ObjectStore(bucket=s3.Bucket(stack, "Artifacts"), key=key, root="mlflow")


def client_role(stack: cdk.Stack, id: str = "Client") -> tuple[cdk.Stack, iam.Role]:
    """A role in ANOTHER bare stack of ``stack``'s app: what it is granted crosses stacks."""
    app = stack.node.root
    assert isinstance(app, cdk.App)
    other = bare_stack(f"{id}Stack", app=app)
    return other, iam.Role(other, id, assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"))


def policy_statements(stack: cdk.Stack) -> list[dict[str, Any]]:
    """Every statement of every ``AWS::IAM::Policy`` in ``stack``'s template."""
    policies = Template.from_stack(stack).find_resources("AWS::IAM::Policy")
    return [
        statement
        for policy in policies.values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def actions_of(statements: list[dict[str, Any]]) -> set[str]:
    """Every action of ``statements`` (``Action`` is a string or a list)."""
    found: set[str] = set()
    for statement in statements:
        action = statement["Action"]
        found.update([action] if isinstance(action, str) else action)
    return found


def resources(template: Template, resource_type: str) -> dict[str, Any]:
    found = dict(template.find_resources(resource_type))
    return found


def only(template: Template, resource_type: str) -> dict[str, Any]:
    """The properties of the one resource of ``resource_type``."""
    found = resources(template, resource_type)
    assert len(found) == 1, f"{len(found)} {resource_type}: {sorted(found)}"
    properties: dict[str, Any] = next(iter(found.values())).get("Properties", {})
    return properties
