"""Teardown of a Studio domain: a custom resource that empties it before CloudFormation deletes it."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import CustomResource, Duration, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct, IConstruct

HANDLER_DIR = Path(__file__).resolve().parents[2] / "lambda" / "studio_cleanup"


class StudioCleanup(Construct):
    """Deletes the domain's apps, spaces and user profiles (and waits) before the domain goes.

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
        self.scoped_resources = [
            arn("app", f"{domain_id}/*"),
            arn("space", f"{domain_id}/*"),
            arn("user-profile", f"{domain_id}/*"),
        ]
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["sagemaker:DeleteApp"], resources=[self.scoped_resources[0]]
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["sagemaker:DeleteSpace"], resources=[self.scoped_resources[1]]
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["sagemaker:DeleteUserProfile"], resources=[self.scoped_resources[2]]
            )
        )
        self.deletes_home_efs = delete_home_efs
        self.home_efs_resources: list[str] = []
        if delete_home_efs:
            self._allow_domain_and_home_deletion(domain, vpc)

        self.function = lambda_.Function(
            self,
            "Function",
            description="Deletes a Studio domain's apps, spaces and user profiles on stack delete",
            runtime=lambda_.Runtime.PYTHON_3_14,
            architecture=lambda_.Architecture.ARM_64,
            handler="studio_cleanup.handler",
            code=lambda_.Code.from_asset(
                str(HANDLER_DIR), exclude=["tests", "**/__pycache__", "*.pyc", ".*"]
            ),
            timeout=Duration.minutes(15),
            memory_size=256,
            role=self.role,
            log_group=self.log_group,
        )
        self.resource = CustomResource(
            self,
            "Resource",
            service_token=self.function.function_arn,
            resource_type="Custom::StudioDomainCleanup",
            properties={
                "DomainId": domain_id,
                "DeleteHomeEfs": "true" if delete_home_efs else "false",
                "VpcId": vpc.vpc_id,
            },
            service_timeout=Duration.minutes(20),
        )
        # Deleted first: CloudFormation deletes dependants before what they depend on.
        self.resource.node.add_dependency(domain, *depends_on)

    def _allow_domain_and_home_deletion(self, domain: sagemaker.CfnDomain, vpc: ec2.IVpc) -> None:
        stack = Stack.of(self)
        file_systems = stack.format_arn(
            service="elasticfilesystem", resource="file-system", resource_name="*"
        )
        security_groups = stack.format_arn(
            service="ec2", resource="security-group", resource_name="*"
        )
        self.home_efs_resources = [file_systems, security_groups]
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
                    "StringEquals": {
                        "aws:ResourceTag/ManagedByAmazonSageMakerResource": domain.attr_domain_arn
                    }
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
                conditions={
                    "ArnEquals": {
                        "ec2:Vpc": stack.format_arn(
                            service="ec2", resource="vpc", resource_name=vpc.vpc_id
                        )
                    }
                },
            )
        )
