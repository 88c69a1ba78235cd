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
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import custom_resources as cr
from constructs import Construct, IConstruct

from mlops_cdk import nag
from mlops_cdk.checkov import (
    NO_DLQ_CUSTOM_RESOURCE,
    NO_RESERVED_CONCURRENCY_CDK,
    NOT_IN_VPC,
    skip,
    skip_all,
)

HANDLER_DIR = Path(__file__).resolve().parents[2] / "lambda" / "studio_cleanup"
HANDLER_TIMEOUT = Duration.minutes(5)
QUERY_INTERVAL = Duration.seconds(30)
TOTAL_TIMEOUT = Duration.minutes(55)  # the provider framework's maximum is 1 hour
SERVICE_TIMEOUT = Duration.hours(1)  # CloudFormation's maximum for a custom resource
# The tag SageMaker puts on the home EFS and the NFS security groups it creates for a domain.
SAGEMAKER_TAG = "ManagedByAmazonSageMakerResource"


class StudioCleanup(Construct):
    """Deletes the domain's apps, spaces and user profiles (and waits) before the domain goes.

    A provider-framework custom resource: ``on_event`` starts the deletions, ``is_complete`` is
    polled every 30 s for up to 55 minutes and deletes what can go next until nothing is left.
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

        def handler(id: str, entry: str, description: str) -> lambda_.Function:
            return lambda_.Function(
                self,
                id,
                description=description,
                runtime=lambda_.Runtime.PYTHON_3_14,
                architecture=lambda_.Architecture.ARM_64,
                handler=f"studio_cleanup.{entry}",
                code=lambda_.Code.from_asset(
                    str(HANDLER_DIR), exclude=["tests", "**/__pycache__", "*.pyc", ".*"]
                ),
                # One step per call: list, issue deletes, return; never waits for SageMaker.
                timeout=HANDLER_TIMEOUT,
                memory_size=256,
                role=self.role,
                log_group=self.log_group,
                reserved_concurrent_executions=reserved_concurrency,
            )

        self.on_event = handler(
            "Function",
            "on_event",
            "Studio domain teardown: starts deleting apps, spaces and user profiles",
        )
        self.is_complete = handler(
            "IsComplete",
            "is_complete",
            "Studio domain teardown: deletes what can go next, reports what is left",
        )
        # The provider framework polls is_complete until it returns IsComplete=true or the total
        # timeout passes, then answers CloudFormation; an error a handler raises is answered
        # FAILED with its message (aws-cdk-lib custom-resources provider-framework
        # runtime/framework.js and cfn-response.js safeHandler). ProviderProps.totalTimeout:
        # "The maximum timeout is 1 hour", and a custom resource's ServiceTimeout is at most
        # 3600 s (AWS::CloudFormation::CustomResource), so the waiter gives up a little before
        # CloudFormation would, with its own "Operation timed out" reason.
        self.waiter_log_group = logs.LogGroup(
            self, "WaiterLogs", retention=log_retention, removal_policy=removal
        )
        # The framework's own functions: roles that write only to this construct's log group
        # (instead of the AWSLambdaBasicExecutionRole managed policy); the Provider adds the
        # invoke permissions on the two handlers and on its waiter.
        framework_roles = [
            iam.Role(
                self,
                id,
                assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                description=f"Provider framework of the Studio teardown: {what}",
            )
            for id, what in (
                ("FrameworkOnEventRole", "starts the teardown and its waiter"),
                ("FrameworkWaiterRole", "polls is_complete and reports a timeout"),
            )
        ]
        for framework_role in framework_roles:
            self.log_group.grant_write(framework_role)
            key.grant_decrypt(framework_role)  # their environment is encrypted with the key
            for handler_function in (self.on_event, self.is_complete):
                nag.ack_resource(
                    framework_role,
                    f"{handler_function.function_arn}:*",
                    "CDK's Provider grants lambda:InvokeFunction on the teardown handler's own "
                    "versions and aliases, nothing else.",
                )
        self.provider = cr.Provider(
            self,
            "Provider",
            on_event_handler=self.on_event,
            is_complete_handler=self.is_complete,
            query_interval=QUERY_INTERVAL,
            total_timeout=TOTAL_TIMEOUT,
            log_group=self.log_group,
            framework_on_event_role=framework_roles[0],
            framework_complete_and_timeout_role=framework_roles[1],
            provider_function_env_encryption=key,  # its environment names the handlers
            disable_waiter_state_machine_logging=False,
            # Every state transition, without the execution data: the request carries
            # CloudFormation's pre-signed response URL.
            waiter_state_machine_log_options=cr.LogOptions(
                destination=self.waiter_log_group,
                level=sfn.LogLevel.ALL,
                include_execution_data=False,
            ),
        )
        self._acknowledge_waiter()
        self.resource = CustomResource(
            self,
            "Resource",  # never renamed: a renamed resource would empty the live domain
            service_token=self.provider.service_token,
            resource_type="Custom::StudioDomainCleanup",
            properties={
                "DomainId": domain_id,
                "DomainArn": domain.attr_domain_arn,
                "DeleteHomeEfs": "true" if delete_home_efs else "false",
                "VpcId": vpc.vpc_id,
            },
            service_timeout=SERVICE_TIMEOUT,
        )
        # Deleted first: CloudFormation deletes dependants before what they depend on.
        self.resource.node.add_dependency(domain, *depends_on)
        for function in (self.on_event, self.is_complete):
            skip_all(function, {"CKV_AWS_116": NO_DLQ_CUSTOM_RESOURCE, "CKV_AWS_117": NOT_IN_VPC})
        for name in ("onEvent", "isComplete", "onTimeout"):
            skip_all(
                self.provider.node.find_child(f"framework-{name}"),
                {
                    "CKV_AWS_115": NO_RESERVED_CONCURRENCY_CDK,
                    "CKV_AWS_116": NO_DLQ_CUSTOM_RESOURCE,
                    "CKV_AWS_117": NOT_IN_VPC,
                },
            )
        skip(
            self.provider.node.find_child("waiter-state-machine")
            .node.find_child("Role")
            .node.find_child("DefaultPolicy"),
            "CKV_AWS_111",
            "CDK's Provider waiter: Step Functions log delivery (logs:CreateLogDelivery, "
            "PutResourcePolicy, ...) supports no resource-level permissions.",
        )

    def _acknowledge_waiter(self) -> None:
        """The Provider's waiter state machine: what it invokes, logs and lacks."""
        waiter = self.provider.node.find_child("waiter-state-machine")
        for name in ("isComplete", "onTimeout"):
            target = cast("lambda_.IFunction", self.provider.node.find_child(f"framework-{name}"))
            nag.ack_resource(
                waiter,
                f"{target.function_arn}:*",
                "CDK's Provider waiter invokes the framework's is-complete and timeout functions, "
                "their versions and aliases only.",
            )
        nag.ack(
            waiter,
            "AwsSolutions-IAM5[Resource::*]",
            "Step Functions log delivery (logs:CreateLogDelivery, PutResourcePolicy, ...) supports "
            "no resource-level permissions; the waiter logs to its own log group only.",
        )
        nag.ack(
            waiter,
            "AwsSolutions-SF2",
            "CDK's Provider offers no tracing setting for its waiter; it only polls one Lambda "
            "and its every transition is logged to CloudWatch Logs.",
        )

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
