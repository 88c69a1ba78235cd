"""Serverless tracking: a SageMaker MLflow App (creates in minutes, no idle server)."""

from __future__ import annotations

from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from mlops_cdk.constructs.data_stores import ObjectStore
from mlops_cdk.constructs.sagemaker_mlflow import SageMakerMlflow
from mlops_cdk.settings import TrackingSettings


class MlflowApp(SageMakerMlflow):
    """``AWS::SageMaker::MlflowApp`` writing artifacts under the artifact store's MLflow prefix."""

    API_ACTIONS = ("sagemaker:CallMlflowAppApi",)
    CLIENT_ACTIONS = ("sagemaker:DescribeMlflowApp", "sagemaker:CreatePresignedMlflowAppUrl")

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        name: str,
        settings: TrackingSettings,
        artifacts: ObjectStore,
    ) -> None:
        super().__init__(
            scope,
            id,
            name=name,
            artifacts=artifacts,
            role_description="Lets the SageMaker MLflow App read and write its artifact prefix",
            automatic_model_registration=settings.automatic_model_registration,
        )
        self.app = sagemaker.CfnMlflowApp(
            self,
            "Resource",
            name=name,
            artifact_store_uri=artifacts.uri(),
            role_arn=self._role.role_arn,
            model_registration_mode=(
                "AutoModelRegistrationEnabled"
                if settings.automatic_model_registration
                else "AutoModelRegistrationDisabled"
            ),
            weekly_maintenance_window_start=settings.maintenance_window,
        )
        self.app.node.add_dependency(self._role)  # the app validates its role on create

    @property
    def server_arn(self) -> str:
        return self.app.attr_arn

    @property
    def mlflow_version(self) -> str:
        return self.app.attr_mlflow_version
