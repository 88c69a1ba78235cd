"""The one interface every MLflow tracking mode offers to the other stacks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam

from mlops_cdk import nag

if TYPE_CHECKING:
    from mlops_cdk.constructs.data_stores import ObjectStore

# What an MLflow client process reads (jobs, notebooks); ``client_environment`` fills them.
TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
# A Secrets Manager secret {"username", "password"} for MLflow basic auth: clients read it at
# start and set MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD (never in a template).
CREDENTIALS_SECRET_ENV = "MLFLOW_CREDENTIALS_SECRET_ARN"  # noqa: S105 -- a variable name


class TrackingBackend(Protocol):
    """What a client of MLflow (Studio, training and inference jobs) needs to know and be granted.

    SageMaker modes: ``tracking_uri`` is the server/app ARN; clients authenticate with SigV4
    through the ``sagemaker-mlflow`` plugin. Self-hosted modes: an ``http(s)://`` URL inside
    the VPC, reachable through ``connections``.
    """

    @property
    def tracking_uri(self) -> str: ...

    @property
    def client_environment(self) -> Mapping[str, str]:
        """Environment an MLflow client needs: always ``MLFLOW_TRACKING_URI``; with basic auth
        also ``MLFLOW_CREDENTIALS_SECRET_ARN`` (the secret's ARN, nothing secret itself)."""
        ...

    @property
    def server_arn(self) -> str | None:
        """ARN of the SageMaker MLflow App or tracking server; None when self-hosted."""
        ...

    @property
    def server_name(self) -> str: ...

    @property
    def mlflow_version(self) -> str: ...

    @property
    def artifact_uri(self) -> str: ...

    @property
    def role(self) -> iam.IRole:
        """The role the MLflow server itself runs as."""
        ...

    @property
    def connections(self) -> ec2.Connections | None:
        """The self-hosted server's security groups and port (plain ``ec2.Connections``, an
        ``ec2.IConnectable``); None for the SageMaker modes.

        A client asks once, from its own side:
        ``client.connections.allow_to_default_port(backend.connections, "...")``. CDK writes
        the client's egress, and the server's ingress that names the client's group as a
        remote rule, both in the CLIENT's stack, so the tracking stack (deployed first) never
        depends on its clients. ``backend.connections.allow_default_port_from(client)`` would
        put that ingress in the tracking stack instead: a dependency cycle at synth.
        tests/test_reachability.py proves both sides land, for every client.
        """
        ...

    def grant_use(self, grantee: iam.IGrantable) -> iam.Grant:
        """Give ``grantee`` exactly what an MLflow client needs: the API, artifacts and key.

        The caller acknowledges the grant's wildcards with its own reason (``nag.ack_grant``).
        """
        ...


def grant_server_artifacts(artifacts: ObjectStore, role: iam.IRole) -> iam.Grant:
    """What every mode's server role may do in S3: read and write its artifact prefix."""
    grant = artifacts.grant_read_write(role)
    nag.ack_grant(
        role,
        grant,
        resources="MLflow writes run artifacts as objects of any name under its own prefix only.",
    )
    return grant
