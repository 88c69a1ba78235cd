"""Serverless tracking: a SageMaker MLflow App (creates in minutes, no idle server)."""

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


class MlflowApp(Construct):
    """``AWS::SageMaker::MlflowApp`` writing artifacts under the storage stack's MLflow prefix."""

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
        self._role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description="Lets the SageMaker MLflow App read and write its artifact prefix",
        )
        storage.grant_artifacts_read_write(self._role)
        self.app = sagemaker.CfnMlflowApp(
            self,
            "Resource",
            name=name,
            artifact_store_uri=storage.artifact_uri,
            role_arn=self._role.role_arn,
            model_registration_mode=(
                "AutoModelRegistrationEnabled"
                if settings.automatic_model_registration
                else "AutoModelRegistrationDisabled"
            ),
            weekly_maintenance_window_start=settings.maintenance_window,
        )
        self.app.node.add_dependency(self._role)  # the app validates its role on create
        self._name = name
        self._settings = settings

    @property
    def tracking_uri(self) -> str:
        return self.app.attr_arn

    @property
    def client_environment(self) -> Mapping[str, str]:
        """SigV4 through ``sagemaker-mlflow``: the URI (an ARN) is all a client needs."""
        return {TRACKING_URI_ENV: self.tracking_uri}

    @property
    def server_arn(self) -> str | None:
        return self.app.attr_arn

    @property
    def server_name(self) -> str:
        return self._name

    @property
    def mlflow_version(self) -> str:
        return self.app.attr_mlflow_version

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
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["sagemaker-mlflow:*"],
            resource_arns=[self.app.attr_arn],
        )
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["sagemaker:DescribeMlflowApp"],
            resource_arns=[self.app.attr_arn],
        )
        self._storage.grant_artifacts_read_write(grantee)

    @staticmethod
    def arn_pattern(stack: Stack) -> str:
        return stack.format_arn(service="sagemaker", resource="mlflow-app", resource_name="*")
