"""What the two self-hosted MLflow modes (Fargate, EC2) share: the server image's folder, the
port and database name the entrypoint uses, the client user, generated user secrets, and the
resources that must follow their database's removal policy."""

from __future__ import annotations

import json
from pathlib import Path

from aws_cdk import RemovalPolicy
from aws_cdk import aws_kms as kms
from aws_cdk import aws_rds as rds
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from mlops_cdk import nag
from mlops_cdk.constructs.encrypted_secret import KeyEncryptedSecret

CONTAINER_DIR = Path(__file__).resolve().parents[2] / "containers" / "tracking"
MLFLOW_PORT = 5000
DATABASE_NAME = "mlflow"
CLIENT_USERNAME = "mlflow-client"


def generated_user_secret(
    scope: Construct,
    id: str,
    *,
    username: str,
    description: str,
    removal: RemovalPolicy,
    key: kms.IKey,
) -> secretsmanager.Secret:
    """A Secrets Manager secret ``{"username": ..., "password": <generated>}``, encrypted with
    ``key`` (``grant_read`` also grants kms:Decrypt through Secrets Manager)."""
    return KeyEncryptedSecret(
        scope,
        id,
        key=key,
        description=description,
        generate_secret_string=secretsmanager.SecretStringGenerator(
            secret_string_template=json.dumps({"username": username}),
            generate_string_key="password",
            exclude_punctuation=True,
            password_length=32,
        ),
        removal_policy=removal,
    )


def retain_with_database(
    database: rds.DatabaseCluster | rds.DatabaseInstance, removal: RemovalPolicy
) -> None:
    """What a database needs to stay usable follows the database's removal policy.

    CDK gives the database's subnet group (and a cluster's instances) its policy, but deletes
    the generated master secret with the stack: a retained database would lose its
    credentials. And a retained database keeps its network interfaces in its security groups,
    so deleting those would fail the stack's deletion or a failed create's rollback.
    A database without deletion protection acknowledges that finding here.
    """
    secret = database.node.find_child("Secret")  # CDK's DatabaseSecret (``.secret`` is the
    assert isinstance(secret, secretsmanager.Secret)  # attachment that wraps it)
    secret.apply_removal_policy(removal)
    for group in database.connections.security_groups:
        group.apply_removal_policy(removal)
    resource = database.node.default_child  # CfnDBCluster / CfnDBInstance
    if not getattr(resource, "deletion_protection", None):
        nag.ack(
            database,
            "AwsSolutions-RDS10",
            "Deletion protection is on where removal_policy is retain (prod); this environment "
            "tears its tracking database down with the stack on purpose.",
        )
