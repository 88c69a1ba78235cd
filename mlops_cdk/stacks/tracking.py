"""Tracking: MLflow in the mode the environment picks, behind one interface."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct

from mlops_cdk import nag
from mlops_cdk.constructs.mlflow_app import MlflowApp
from mlops_cdk.constructs.mlflow_tracking_server import MlflowTrackingServer
from mlops_cdk.settings import TrackingSettings
from mlops_cdk.stacks.network import NetworkStack
from mlops_cdk.stacks.storage import StorageStack
from mlops_cdk.tracking_backend import TrackingBackend


class TrackingStack(Stack):
    """Builds the backend for ``settings.mode`` and exposes it as :class:`TrackingBackend`."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        settings: TrackingSettings,
        name_prefix: str,
        storage: StorageStack,
        network: NetworkStack | None,
        removal: RemovalPolicy,
        log_retention: logs.RetentionDays,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, id, **kwargs)
        self.mode = settings.mode
        self.backend: TrackingBackend
        name = f"{name_prefix}-mlflow"
        if settings.mode == "serverless":
            self.backend = MlflowApp(
                self, "MlflowApp", name=name, settings=settings, artifacts=storage.artifacts
            )
        elif settings.mode == "managed":
            self.backend = MlflowTrackingServer(
                self,
                "TrackingServer",
                name=name,
                settings=settings,
                artifacts=storage.artifacts,
            )
        else:
            if network is None:  # Settings.needs_network guarantees it; this guards misuse
                raise ValueError(f"tracking.mode={settings.mode!r} needs the network stack")
            # The self-hosted modes pull in ECS, RDS and Auto Scaling: import them only when
            # chosen, which keeps every other synth about a second faster.
            if settings.mode == "fargate":
                from mlops_cdk.constructs.fargate_mlflow import FargateMlflow  # noqa: PLC0415

                self.backend = FargateMlflow(
                    self,
                    "Fargate",
                    name=name,
                    settings=settings,
                    artifacts=storage.artifacts,
                    vpc=network.vpc,
                    subnets=network.private_subnets,
                    access_logs=storage.access_logs,
                    removal=removal,
                    log_retention=log_retention,
                )
            else:
                from mlops_cdk.constructs.ec2_mlflow import Ec2Mlflow  # noqa: PLC0415

                self.backend = Ec2Mlflow(
                    self,
                    "Ec2",
                    name=name,
                    settings=settings,
                    artifacts=storage.artifacts,
                    vpc=network.vpc,
                    subnets=network.private_subnets,
                    removal=removal,
                    log_retention=log_retention,
                )
        for index, arn in enumerate(settings.extra_policy_arns):
            self.backend.role.add_managed_policy(
                iam.ManagedPolicy.from_managed_policy_arn(self, f"ExtraPolicy{index}", arn)
            )
        for arn in settings.extra_policy_arns:
            if ":iam::aws:policy/" in arn:  # cdk-nag flags AWS managed policies only
                nag.ack(
                    self.backend.role,
                    f"AwsSolutions-IAM4[Policy::{arn}]",
                    "Attached by the operator through tracking.extra_policy_arns, reviewed in "
                    "cdk.json.",
                )
        self._outputs()

    def _outputs(self) -> None:
        backend = self.backend
        CfnOutput(self, "TrackingMode", value=self.mode)
        CfnOutput(self, "TrackingUri", value=backend.tracking_uri)
        CfnOutput(self, "ServerName", value=backend.server_name)
        if backend.server_arn is not None:
            CfnOutput(self, "ServerArn", value=backend.server_arn)
        CfnOutput(self, "MlflowVersion", value=backend.mlflow_version)
        CfnOutput(self, "ArtifactStoreUri", value=backend.artifact_uri)
        CfnOutput(self, "ServerRoleArn", value=backend.role.role_arn)
        CfnOutput(self, "ServerRoleName", value=backend.role.role_name)
