"""checkov acknowledgements for the Lambda handlers CDK itself adds at stack level.

CDK's singleton custom-resource providers (``Custom::S3AutoDeleteObjects`` for buckets emptied
on delete, ``Custom::VpcRestrictDefaultSG`` for the VPC's default security group) are
``CfnResource``s that no construct of ours creates or can configure, so an aspect finds them.
"""

from __future__ import annotations

import jsii
from aws_cdk import Aspects, CfnResource, IAspect
from constructs import IConstruct

from mlops_cdk.checkov import (
    NO_DLQ_CUSTOM_RESOURCE,
    NO_RESERVED_CONCURRENCY_CDK,
    NOT_IN_VPC,
    skip_all,
)

PROVIDERS = (
    "Custom::S3AutoDeleteObjectsCustomResourceProvider",
    "Custom::VpcRestrictDefaultSGCustomResourceProvider",
)


@jsii.implements(IAspect)
class AcknowledgeCdkProviders:
    def visit(self, node: IConstruct) -> None:
        if (
            isinstance(node, CfnResource)
            and node.cfn_resource_type == "AWS::Lambda::Function"
            and node.node.scope is not None
            and node.node.scope.node.id in PROVIDERS
        ):
            skip_all(
                node,
                {
                    "CKV_AWS_115": NO_RESERVED_CONCURRENCY_CDK,
                    "CKV_AWS_116": NO_DLQ_CUSTOM_RESOURCE,
                    "CKV_AWS_117": NOT_IN_VPC,
                },
            )


def acknowledge_cdk_providers(scope: IConstruct) -> None:
    Aspects.of(scope).add(AcknowledgeCdkProviders())
