"""Secrets encrypted with a customer managed KMS key, and readers that may decrypt them.

Secrets Manager decrypts a secret with its KMS key on the caller's behalf: a reader needs
``kms:Decrypt`` on the key through Secrets Manager (Secrets Manager user guide, "Secret
encryption and decryption"). CDK's ``Secret.grant_read`` grants that when the secret's L2
``encryption_key`` is set, but writes the reader into the KEY POLICY too (a
``kms.ViaServicePrincipal`` has no account, so ``Grant.addToPrincipalOrResource`` always adds a
resource statement): a reader in another stack than the key would make the key's stack depend
on the reader's, a cycle whenever the reader's stack already depends on the key's.

So: each tracking backend has its own key (:func:`secrets_key`), in the stack of the secrets.
The database secrets CDK generates use it through ``encryption_key`` (their readers, the
server and its rotation, live in the same stack). The MLflow user secrets, which jobs and
notebooks in other stacks read, are :class:`KeyEncryptedSecret`: ``grant_read`` adds
``kms:Decrypt`` (condition ``kms:ViaService`` = Secrets Manager of this region) to the
reader's identity policy only, which the key policy's account statement makes effective.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct


def secrets_key(scope: Construct, id: str, *, purpose: str, removal: RemovalPolicy) -> kms.Key:
    """A customer managed key (rotation on) for the secrets of one tracking backend."""
    return kms.Key(
        scope,
        id,
        description=f"Encrypts {purpose}",
        enable_key_rotation=True,
        removal_policy=removal,
    )


class KeyEncryptedSecret(secretsmanager.Secret):
    """A secret encrypted with ``key``, whose ``grant_read`` also grants kms:Decrypt through
    Secrets Manager in the reader's identity policy (never in the key policy)."""

    def __init__(self, scope: Construct, id: str, *, key: kms.IKey, **kwargs: Any) -> None:
        super().__init__(scope, id, **kwargs)
        resource = self.node.default_child
        assert isinstance(resource, secretsmanager.CfnSecret)
        resource.kms_key_id = key.key_arn
        self.key = key

    def grant_read(
        self, grantee: iam.IGrantable, version_stages: Sequence[str] | None = None
    ) -> iam.Grant:
        grant = super().grant_read(grantee, version_stages)
        self.grant_key_through_secrets_manager(grantee, ["kms:Decrypt"])
        return grant

    def grant_key_through_secrets_manager(
        self, grantee: iam.IGrantable, actions: Sequence[str]
    ) -> iam.Grant:
        """``actions`` on the secret's key, only as Secrets Manager calls them for ``grantee``
        (kms:Decrypt reads; kms:GenerateDataKey writes a new version: PutSecretValue)."""
        return iam.Grant.add_to_principal(
            grantee=grantee,
            actions=list(actions),
            resource_arns=[self.key.key_arn],
            conditions={
                "StringEquals": {
                    "kms:ViaService": f"secretsmanager.{Stack.of(self).region}.amazonaws.com"
                }
            },
        )
