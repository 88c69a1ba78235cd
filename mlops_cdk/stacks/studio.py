"""Studio: a SageMaker Studio domain wired to MLflow, with a teardown that empties it first."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, RemovalPolicy, Stack
from aws_cdk import aws_logs as logs
from constructs import Construct

from mlops_cdk.constructs.studio_cleanup import StudioCleanup
from mlops_cdk.constructs.studio_domain import StudioDomain
from mlops_cdk.settings import StudioSettings
from mlops_cdk.stacks.network import NetworkStack
from mlops_cdk.stacks.storage import StorageStack
from mlops_cdk.stacks.tracking import TrackingStack


class StudioStack(Stack):
    """The domain, its user profiles and execution role, and the cleanup custom resource."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        settings: StudioSettings,
        name_prefix: str,
        storage: StorageStack,
        network: NetworkStack,
        tracking: TrackingStack,
        removal: RemovalPolicy,
        log_retention: logs.RetentionDays,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, id, **kwargs)
        layout = storage.layout
        self.read_prefixes = (layout.models, layout.inference_output)
        self.read_write_prefixes = (layout.training, layout.inference_input)

        self.domain = StudioDomain(
            self,
            "Domain",
            name=f"{name_prefix}-studio",
            settings=settings,
            vpc=network.vpc,
            subnet_ids=network.private_subnet_ids,
            key=storage.key,
            tracking=tracking.backend,
            data=storage.data,
            read_prefixes=self.read_prefixes,
            read_write_prefixes=self.read_write_prefixes,
        )
        self.cleanup = StudioCleanup(
            self,
            "Cleanup",
            domain=self.domain.domain,
            depends_on=list(self.domain.user_profiles),
            vpc=network.vpc,
            delete_home_efs=removal == RemovalPolicy.DESTROY,
            log_retention=log_retention,
            removal=removal,
            key=storage.key,
            reserved_concurrency=settings.cleanup_reserved_concurrency,
        )
        self.execution_role = self.domain.role

        CfnOutput(self, "DomainId", value=self.domain.domain_id)
        CfnOutput(self, "StudioUrl", value=self.domain.url)
        CfnOutput(self, "NetworkAccess", value=settings.network_access)
        CfnOutput(self, "ExecutionRoleArn", value=self.execution_role.role_arn)
        if settings.user_profiles:
            CfnOutput(self, "UserProfileNames", value=",".join(settings.user_profiles))
