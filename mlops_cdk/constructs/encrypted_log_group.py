"""Every CloudWatch log group of the app encrypted with the environment's KMS key.

An aspect, so that log groups made inside library constructs (the provider framework's, the
VPC flow logs') are covered too, and a new log group cannot be added unencrypted. The key
policy lets CloudWatch Logs of this account and region use the key only for log groups
(CloudWatch Logs user guide, "Encrypt log data in CloudWatch Logs using AWS Key Management
Service", encrypt-log-data-kms.html: principal ``logs.<region>.amazonaws.com``, the
``kms:EncryptionContext:aws:logs:arn`` condition). The condition names every log group of the
account and region rather than each one: the log groups live in stacks that depend on the
key's stack, so the key policy cannot name them without a reference cycle.

The aspect sits on an empty construct of its own and, visited once at synthesis, walks the
scope. Added to the scope itself, Node would call it back in Python for every construct of the
app (229 in staging, a jsii round trip each): nine in-process syntheses took 5.97 s that way
against 5.15 s this way (means of 5 runs). The templates are the same either way.
"""

from __future__ import annotations

import jsii
from aws_cdk import ArnFormat, Aspects, IAspect, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from constructs import Construct, IConstruct


@jsii.implements(IAspect)
class EncryptLogGroups:
    """Sets ``KmsKeyId`` on every ``AWS::Logs::LogGroup`` under ``scope`` that has none, when
    visited: at synthesis, once every construct exists."""

    def __init__(self, scope: IConstruct, key: kms.IKey) -> None:
        self._scope = scope
        self._key = key

    def visit(self, node: IConstruct) -> None:
        for construct in self._scope.node.find_all():
            if isinstance(construct, logs.CfnLogGroup) and construct.kms_key_id is None:
                construct.kms_key_id = self._key.key_arn


def allow_cloudwatch_logs(key: kms.IKey) -> None:
    """Let CloudWatch Logs of the key's account and region encrypt and decrypt log groups."""
    stack = Stack.of(key)
    log_groups = stack.format_arn(
        service="logs",
        resource="log-group",
        resource_name="*",
        arn_format=ArnFormat.COLON_RESOURCE_NAME,
    )
    key.add_to_resource_policy(
        iam.PolicyStatement(
            sid="CloudWatchLogsOfThisAccountAndRegion",
            principals=[iam.ServicePrincipal(f"logs.{stack.region}.amazonaws.com")],
            actions=[
                "kms:Encrypt*",
                "kms:Decrypt*",
                "kms:ReEncrypt*",
                "kms:GenerateDataKey*",
                "kms:Describe*",
            ],
            resources=["*"],  # in a key policy, "*" is this key
            conditions={"ArnLike": {"kms:EncryptionContext:aws:logs:arn": log_groups}},
        )
    )


def encrypt_log_groups(scope: Construct, key: kms.IKey) -> None:
    """Encrypt every log group under ``scope`` with ``key``, which the logs service may use."""
    allow_cloudwatch_logs(key)
    Aspects.of(Construct(scope, "EncryptLogGroups")).add(EncryptLogGroups(scope, key))
