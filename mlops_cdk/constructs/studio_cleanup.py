"""Teardown of a Studio domain: a custom resource that empties it before CloudFormation deletes it."""

from __future__ import annotations

from pathlib import Path
from typing import cast

from aws_cdk import CustomResource, Duration, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct, IConstruct

from mlops_cdk import nag
from mlops_cdk.checkov import NO_RESERVATION, skip
from mlops_cdk.constructs.dead_letter import ack_sender_key_wildcards, encrypted_dead_letter_queue

HANDLER_DIR = Path(__file__).resolve().parents[2] / "lambda" / "studio_cleanup"
# Lambda's maximum: a Delete polls inside one invocation and hands over to a new one before it
# runs out (lambda/studio_cleanup/studio_cleanup.py HAND_OVER_MARGIN_SECONDS).
HANDLER_TIMEOUT = Duration.minutes(15)
SERVICE_TIMEOUT = Duration.hours(1)  # CloudFormation's maximum for a custom resource
# The function is the ServiceToken's target and keeps the logical ID of the CDK Provider
# framework's onEvent function it replaced: CloudFormation refuses to change a deployed custom
# resource's ServiceToken ("Modifying service token is not allowed"; the ServiceToken property
# supports no updates, AWS::CloudFormation::CustomResource), and with the same logical ID the
# function is updated in place (new code, runtime and role; same name, so the same ARN).
FUNCTION_LOGICAL_ID = "CleanupProviderframeworkonEventF80A3986"
TEARDOWN_NOT_IN_VPC = (
    "Calls only AWS APIs (SageMaker, EC2, Lambda) and CloudFormation's S3 response URL; inside "
    "the VPC it would need more interface endpoints (EC2, Lambda), which the cost target cannot "
    "afford, and its network interfaces would slow the stack's deletion."
)
# The tag SageMaker puts on the home EFS and the NFS security groups it creates for a domain.
SAGEMAKER_TAG = "ManagedByAmazonSageMakerResource"


class StudioCleanup(Construct):
    """Deletes the domain's apps, spaces and user profiles (and waits) before the domain goes.

    One Lambda function is the custom resource's ServiceToken. CloudFormation invokes it
    asynchronously with a pre-signed response URL
    (https://docs.aws.amazon.com/lambda/latest/dg/services-cloudformation.html); it answers
    Create/Update at once and, on Delete, polls the teardown every 30 s, invoking itself again
    (asynchronously, with the request and its deadline) before its 15 minutes run out, and
    answers when the domain is empty or after 55 minutes. An event whose every invocation
    failed lands in an encrypted dead-letter queue.

    The custom resource depends on the domain and on every user profile of the template, so
    CloudFormation deletes it first. With ``delete_home_efs`` it also deletes the domain with
    its EFS home file system (CloudFormation's own delete always keeps the EFS) and the NFS
    security groups SageMaker created in the VPC.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        domain: sagemaker.CfnDomain,
        depends_on: list[IConstruct],
        vpc: ec2.IVpc,
        delete_home_efs: bool,
        log_retention: logs.RetentionDays,
        removal: RemovalPolicy,
        key: kms.IKey,
        reserved_concurrency: int | None,
    ) -> None:
        super().__init__(scope, id)
        stack = Stack.of(self)
        domain_id = domain.attr_domain_id

        self.log_group = logs.LogGroup(
            self, "Logs", retention=log_retention, removal_policy=removal
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="Empties one SageMaker Studio domain before it is deleted",
        )
        self.log_group.grant_write(self.role)

        def arn(resource: str, name: str) -> str:
            return stack.format_arn(service="sagemaker", resource=resource, resource_name=name)

        # The List* calls support no resource-level permissions; every change is scoped to the
        # apps, spaces and user profiles of this one domain.
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=[
                    "sagemaker:ListApps",
                    "sagemaker:ListSpaces",
                    "sagemaker:ListUserProfiles",
                ],
                resources=["*"],
            )
        )
        nag.ack(
            self.role,
            "AwsSolutions-IAM5[Resource::*]",
            "List* on SageMaker and ec2:DescribeSecurityGroups support no resource-level "
            "permissions; every delete is scoped to this domain or its VPC.",
        )
        scoped_resources = [
            arn("app", f"{domain_id}/*"),
            arn("space", f"{domain_id}/*"),
            arn("user-profile", f"{domain_id}/*"),
        ]
        self.role.add_to_policy(
            iam.PolicyStatement(actions=["sagemaker:DeleteApp"], resources=[scoped_resources[0]])
        )
        self.role.add_to_policy(
            iam.PolicyStatement(actions=["sagemaker:DeleteSpace"], resources=[scoped_resources[1]])
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["sagemaker:DeleteUserProfile"], resources=[scoped_resources[2]]
            )
        )
        for resource in scoped_resources:
            nag.ack_resource(
                self.role,
                resource,
                "Teardown deletes every app, space and user profile, limited to this one domain.",
            )
        self.deletes_home_efs = delete_home_efs
        if delete_home_efs:
            self._allow_domain_and_home_deletion(domain, vpc)

        # CloudFormation invokes the function asynchronously: an event that still fails after
        # Lambda's retries lands here instead of being dropped, with the request that was
        # never answered.
        self.dead_letter_queue = encrypted_dead_letter_queue(
            self, "DeadLetterQueue", key=key, removal=removal, purpose="the Studio teardown"
        )
        self.function = lambda_.Function(
            self,
            "Function",
            description="Studio domain teardown: empties the domain before CloudFormation "
            "deletes it (custom resource)",
            runtime=lambda_.Runtime.PYTHON_3_14,
            architecture=lambda_.Architecture.ARM_64,
            handler="studio_cleanup.handler",
            code=lambda_.Code.from_asset(
                str(HANDLER_DIR), exclude=["tests", "**/__pycache__", "*.pyc", ".*"]
            ),
            timeout=HANDLER_TIMEOUT,
            memory_size=256,
            role=self.role,
            log_group=self.log_group,
            reserved_concurrent_executions=reserved_concurrency,
            dead_letter_queue=self.dead_letter_queue,
        )
        cast("lambda_.CfnFunction", self.function.node.default_child).override_logical_id(
            FUNCTION_LOGICAL_ID
        )
        # Lambda's own DLQ grant is sqs:SendMessage only; the role also needs the queue's key.
        self.dead_letter_queue.grant_send_messages(self.role)
        ack_sender_key_wildcards(self.role)
        skip(self.function, "CKV_AWS_117", TEARDOWN_NOT_IN_VPC)
        if reserved_concurrency is None:
            skip(self.function, "CKV_AWS_115", NO_RESERVATION)
        # A Delete continues in a new invocation of this same function. A separate policy: in
        # the role's default policy, the function's ARN would make the function depend on
        # itself (function -> role policy -> function).
        self.invoke_self = iam.Policy(
            self,
            "InvokeSelf",
            roles=[self.role],
            statements=[
                iam.PolicyStatement(
                    actions=["lambda:InvokeFunction"], resources=[self.function.function_arn]
                )
            ],
        )
        self.resource = CustomResource(
            self,
            "Resource",  # never renamed: a renamed resource would empty the live domain
            service_token=self.function.function_arn,
            resource_type="Custom::StudioDomainCleanup",
            properties={
                "DomainId": domain_id,
                "DomainArn": domain.attr_domain_arn,
                "DeleteHomeEfs": "true" if delete_home_efs else "false",
                "VpcId": vpc.vpc_id,
            },
            service_timeout=SERVICE_TIMEOUT,
        )
        # Deleted first: CloudFormation deletes dependants before what they depend on. And
        # deleted before the policy that lets a long teardown continue.
        self.resource.node.add_dependency(domain, *depends_on, self.invoke_self)

    def _allow_domain_and_home_deletion(self, domain: sagemaker.CfnDomain, vpc: ec2.IVpc) -> None:
        stack = Stack.of(self)
        file_systems = stack.format_arn(
            service="elasticfilesystem", resource="file-system", resource_name="*"
        )
        security_groups = stack.format_arn(
            service="ec2", resource="security-group", resource_name="*"
        )
        for resource in (file_systems, security_groups):
            nag.ack_resource(
                self.role,
                resource,
                "File system and security group IDs are created by SageMaker; conditions "
                "limit them to this domain's tag and this VPC.",
            )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["sagemaker:DeleteDomain", "sagemaker:DescribeDomain"],
                resources=[domain.attr_domain_arn],
            )
        )
        # What SageMaker does on our behalf when it deletes the home file system (the same
        # permissions CloudFormation's own Domain handler holds), limited to file systems
        # SageMaker tagged as belonging to this domain.
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=[
                    "elasticfilesystem:DeleteFileSystem",
                    "elasticfilesystem:DeleteMountTarget",
                    "elasticfilesystem:DescribeMountTargets",
                ],
                resources=[file_systems],
                conditions={
                    "StringEquals": {f"aws:ResourceTag/{SAGEMAKER_TAG}": domain.attr_domain_arn}
                },
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(actions=["ec2:DescribeSecurityGroups"], resources=["*"])
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=[
                    "ec2:RevokeSecurityGroupIngress",
                    "ec2:RevokeSecurityGroupEgress",
                    "ec2:DeleteSecurityGroup",
                ],
                resources=[security_groups],
                # Only the two NFS groups SageMaker creates for this domain
                # (security-group-for-{inbound,outbound}-nfs-<domain-id>): SageMaker tags them
                # ManagedByAmazonSageMakerResource=<domain ARN>, and these three actions accept
                # aws:ResourceTag/${TagKey} and ec2:Vpc on the security-group resource (Service
                # Authorization Reference, "Actions, resources, and condition keys for Amazon
                # EC2"; IAM User Guide example "Allows managing EC2 security groups with a
                # specific tag key-value pair").
                conditions={
                    "StringEquals": {f"aws:ResourceTag/{SAGEMAKER_TAG}": domain.attr_domain_arn},
                    "ArnEquals": {
                        "ec2:Vpc": stack.format_arn(
                            service="ec2", resource="vpc", resource_name=vpc.vpc_id
                        )
                    },
                },
            )
        )
