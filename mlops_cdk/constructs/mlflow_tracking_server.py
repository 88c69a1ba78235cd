"""Managed tracking: a SageMaker MLflow tracking server (an always-on server SageMaker runs)."""

from __future__ import annotations

from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from mlops_cdk.constructs.data_stores import ObjectStore
from mlops_cdk.constructs.sagemaker_mlflow import SageMakerMlflow
from mlops_cdk.settings import TrackingSettings


class MlflowTrackingServer(SageMakerMlflow):
    """``AWS::SageMaker::MlflowTrackingServer`` writing artifacts under the MLflow prefix."""

    API_ACTIONS = ("sagemaker-mlflow:*",)
    CLIENT_ACTIONS = (
        "sagemaker:DescribeMlflowTrackingServer",
        "sagemaker:CreatePresignedMlflowTrackingServerUrl",
    )

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
            role_description="Lets the SageMaker MLflow tracking server use its artifact prefix",
            automatic_model_registration=settings.automatic_model_registration,
        )
        self._version = settings.server_mlflow_version
        self.server = sagemaker.CfnMlflowTrackingServer(
            self,
            "Resource",
            tracking_server_name=name,
            artifact_store_uri=artifacts.uri(),
            role_arn=self._role.role_arn,
            tracking_server_size=settings.size,
            mlflow_version=self._version,
            automatic_model_registration=settings.automatic_model_registration,
            weekly_maintenance_window_start=settings.maintenance_window,
        )
        self.server.node.add_dependency(self._role)  # the server validates its role on create

    @property
    def server_arn(self) -> str:
        return self.server.attr_tracking_server_arn

    @property
    def mlflow_version(self) -> str:
        return self._version
