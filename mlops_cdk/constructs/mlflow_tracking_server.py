"""Managed tracking: a SageMaker MLflow tracking server (an always-on server SageMaker runs)."""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from mlops_cdk.config import TrackingSettings
from mlops_cdk.stacks.storage import StorageStack
from mlops_cdk.tracking import TRACKING_URI_ENV

# What the server's role needs to mirror MLflow registered models into the SageMaker Model
# Registry (automatic model registration), per the SageMaker developer guide.
MODEL_REGISTRY_ACTIONS = (
    "sagemaker:AddTags",
    "sagemaker:CreateModelPackageGroup",
    "sagemaker:CreateModelPackage",
    "sagemaker:UpdateModelPackage",
    "sagemaker:DescribeModelPackageGroup",
)


class MlflowTrackingServer(Construct):
    """``AWS::SageMaker::MlflowTrackingServer`` writing artifacts under the MLflow prefix."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        name: str,
        settings: TrackingSettings,
        storage: StorageStack,
    ) -> None:
        super().__init__(scope, id)
        self._storage = storage
        self._name = name
        self._version = settings.server_mlflow_version
        self._role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description="Lets the SageMaker MLflow tracking server use its artifact prefix",
        )
        storage.grant_artifacts_read_write(self._role)
        stack = Stack.of(self)
        self.model_registry_arns: list[str] = []
        if settings.automatic_model_registration:
            self.model_registry_arns = [
                stack.format_arn(
                    service="sagemaker", resource="model-package-group", resource_name="*"
                ),
                stack.format_arn(service="sagemaker", resource="model-package", resource_name="*"),
            ]
            self._role.add_to_policy(
                iam.PolicyStatement(
                    actions=list(MODEL_REGISTRY_ACTIONS), resources=self.model_registry_arns
                )
            )
        self.server = sagemaker.CfnMlflowTrackingServer(
            self,
            "Resource",
            tracking_server_name=name,
            artifact_store_uri=storage.artifact_uri,
            role_arn=self._role.role_arn,
            tracking_server_size=settings.size,
            mlflow_version=self._version,
            automatic_model_registration=settings.automatic_model_registration,
            weekly_maintenance_window_start=settings.maintenance_window,
        )
        self.server.node.add_dependency(self._role)  # the server validates its role on create

    @property
    def tracking_uri(self) -> str:
        return self.server.attr_tracking_server_arn

    @property
    def client_environment(self) -> Mapping[str, str]:
        """SigV4 through ``sagemaker-mlflow``: the URI (an ARN) is all a client needs."""
        return {TRACKING_URI_ENV: self.tracking_uri}

    @property
    def server_arn(self) -> str | None:
        return self.server.attr_tracking_server_arn

    @property
    def server_name(self) -> str:
        return self._name

    @property
    def mlflow_version(self) -> str:
        return self._version

    @property
    def artifact_uri(self) -> str:
        return self._storage.artifact_uri

    @property
    def role(self) -> iam.IRole:
        return self._role

    @property
    def connections(self) -> ec2.Connections | None:
        return None

    def grant_use(self, grantee: iam.IGrantable) -> None:
        """SigV4 MLflow API calls on this server, a presigned UI URL, and the artifacts."""
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["sagemaker-mlflow:*"],
            resource_arns=[self.server.attr_tracking_server_arn],
        )
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=[
                "sagemaker:DescribeMlflowTrackingServer",
                "sagemaker:CreatePresignedMlflowTrackingServerUrl",
            ],
            resource_arns=[self.server.attr_tracking_server_arn],
        )
        self._storage.grant_artifacts_read_write(grantee)
