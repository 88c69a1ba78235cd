"""What the two SageMaker-run MLflow modes share: a service role and SigV4 clients."""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from constructs import Construct

from mlops_cdk import nag
from mlops_cdk.constructs.data_stores import ObjectStore
from mlops_cdk.tracking_backend import TRACKING_URI_ENV, grant_server_artifacts

# What the service role needs to mirror MLflow registered models into the SageMaker Model
# Registry (automatic model registration). The App and the tracking server both sync into a
# model package group named <registered model>-<suffix> (SageMaker developer guide,
# mlflow-track-experiments-model-registration).
MODEL_REGISTRY_ACTIONS = (
    "sagemaker:AddTags",
    "sagemaker:CreateModelPackageGroup",
    "sagemaker:CreateModelPackage",
    "sagemaker:UpdateModelPackage",
    "sagemaker:DescribeModelPackageGroup",
)


class SageMakerMlflow(Construct):
    """Base of the MLflow App and the tracking server (see :class:`TrackingBackend`).

    SageMaker runs the server as ``role``, which may use the artifact prefix and nothing
    else. Clients sign requests with SigV4 through the ``sagemaker-mlflow`` plugin, so the
    tracking URI is the resource's ARN and there is no network path to open.
    """

    # The IAM actions of the MLflow API calls the ``sagemaker-mlflow`` plugin signs for this
    # kind of resource (sagemaker_mlflow/auth_provider.py, plugin 0.5.0: SigV4 service
    # "sagemaker-mlflow" for an mlflow-tracking-server ARN, one action per MLflow API;
    # "sagemaker" for an mlflow-app ARN, authorized as sagemaker:CallMlflowAppApi).
    API_ACTIONS: tuple[str, ...] = ()
    # Calls a client makes on the resource besides the MLflow API itself (describe, and the
    # presigned UI URL that sagemaker_mlflow/presigned_url.py asks for).
    CLIENT_ACTIONS: tuple[str, ...] = ()

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        name: str,
        artifacts: ObjectStore,
        role_description: str,
        automatic_model_registration: bool,
    ) -> None:
        super().__init__(scope, id)
        self._name = name
        self._artifacts = artifacts
        self._role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description=role_description,
        )
        grant_server_artifacts(artifacts, self._role)
        stack = Stack.of(self)
        if automatic_model_registration:
            model_registry_arns = [
                stack.format_arn(
                    service="sagemaker", resource="model-package-group", resource_name="*"
                ),
                stack.format_arn(service="sagemaker", resource="model-package", resource_name="*"),
            ]
            self._role.add_to_policy(
                iam.PolicyStatement(
                    actions=list(MODEL_REGISTRY_ACTIONS), resources=model_registry_arns
                )
            )
            for arn in model_registry_arns:
                nag.ack_resource(
                    self._role,
                    arn,
                    "Automatic model registration creates a model package group per MLflow model "
                    "name, which is only known at run time.",
                )

    @property
    def server_arn(self) -> str:
        raise NotImplementedError

    @property
    def tracking_uri(self) -> str:
        return self.server_arn

    @property
    def client_environment(self) -> Mapping[str, str]:
        """SigV4 through ``sagemaker-mlflow``: the URI (an ARN) is all a client needs."""
        return {TRACKING_URI_ENV: self.tracking_uri}

    @property
    def server_name(self) -> str:
        return self._name

    @property
    def artifact_uri(self) -> str:
        return self._artifacts.uri()

    @property
    def role(self) -> iam.IRole:
        return self._role

    @property
    def connections(self) -> ec2.Connections | None:
        return None

    def grant_use(self, grantee: iam.IGrantable) -> iam.Grant:
        """SigV4 MLflow API calls on this one resource, its client actions, and the artifacts."""
        return iam.Grant.add_to_principal(
            grantee=grantee,
            actions=[*self.API_ACTIONS, *self.CLIENT_ACTIONS],
            resource_arns=[self.server_arn],
        ).combine(self._artifacts.grant_read_write(grantee))
