"""Tracking: MLflow in the mode the environment picks, behind one interface."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from mlops_cdk.config import TrackingSettings
from mlops_cdk.constructs.mlflow_app import MlflowApp
from mlops_cdk.stacks.network import NetworkStack
from mlops_cdk.stacks.storage import StorageStack
from mlops_cdk.tracking import TrackingBackend


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
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, id, **kwargs)
        self.mode = settings.mode
        self.backend: TrackingBackend
        if settings.mode == "serverless":
            self.backend = MlflowApp(
                self, "MlflowApp", name=f"{name_prefix}-mlflow", settings=settings, storage=storage
            )
        else:
            raise NotImplementedError(f"tracking.mode={settings.mode!r} is not built yet")
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
