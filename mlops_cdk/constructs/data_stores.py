"""The KMS key and the two S3 stores every other unit reads and writes: MLflow artifacts and data.

Other units never see a stack: they take an :class:`ObjectStore` (a bucket, the key that
encrypts it and a root prefix) and ask it for grants, URIs and object ARNs. As aws-cdk-lib's
own design guidelines ask (aws/aws-cdk docs/DESIGN_GUIDELINES.md, "Construct Interface" and
"Grants"): references are interfaces (``s3.IBucket``, ``kms.IKey``) and every ``grant_*``
returns the ``iam.Grant`` it made, so a caller can acknowledge or inspect what was granted.
"""

from __future__ import annotations

from aws_cdk import Duration, FeatureFlags, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from mlops_cdk.constructs.access_log_bucket import AccessLogBucket
from mlops_cdk.constructs.secure_bucket import SecureBucket
from mlops_cdk.contracts import SHARD
from mlops_cdk.layout import LAYOUT
from mlops_cdk.settings import StorageSettings

# What aws-cdk-lib's IKey.grant_decrypt and grant_encrypt_decrypt grant, in their order.
KEY_DECRYPT = ["kms:Decrypt"]
KEY_ENCRYPT_DECRYPT = ["kms:Decrypt", "kms:Encrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*"]
# Days a sharded run's staged shards stay after its Commit step (room to inspect a failed run).
STAGING_EXPIRY_DAYS = 7


class ObjectStore:
    """Objects under ``root`` of one bucket, encrypted with ``key`` (None: no key to grant).

    ``root`` is a folder without its trailing slash ("mlflow"), or "" for the whole bucket;
    ``prefix`` arguments are relative to it and used as given ("iris/training/").
    """

    def __init__(self, *, bucket: s3.IBucket, key: kms.IKey | None, root: str = "") -> None:
        self.bucket = bucket
        self.key = key
        self.root = root

    def _key_of(self, prefix: str) -> str:
        return f"{self.root}/{prefix}" if self.root and prefix else (self.root or prefix)

    def _objects(self, prefix: str) -> str:
        return f"{self.root}/{prefix}*" if self.root else f"{prefix}*"

    def uri(self, prefix: str = "") -> str:
        """``s3://<bucket>/<root>[/<prefix>]``."""
        return f"s3://{self.bucket.bucket_name}/{self._key_of(prefix)}"

    def objects_arn(self, prefix: str = "") -> str:
        """The object ARN pattern the ``grant_*`` methods grant on for ``prefix``."""
        return self.bucket.arn_for_objects(self._objects(prefix))

    def grant_read(self, grantee: iam.IGrantable, prefix: str = "") -> iam.Grant:
        """Read (and list) the objects under ``prefix``, and decrypt them."""
        grant = self.bucket.grant_read(grantee, self._objects(prefix))
        return self._with_key(grant, grantee, KEY_DECRYPT)

    def grant_read_write(self, grantee: iam.IGrantable, prefix: str = "") -> iam.Grant:
        """Read, write and delete the objects under ``prefix``, with the key that encrypts them."""
        grant = self.bucket.grant_read_write(grantee, self._objects(prefix))
        return self._with_key(grant, grantee, KEY_ENCRYPT_DECRYPT)

    def _with_key(self, grant: iam.Grant, grantee: iam.IGrantable, actions: list[str]) -> iam.Grant:
        # The key's statement on the grantee, as IKey.grant_decrypt / grant_encrypt_decrypt
        # write it for a principal of this account, made here so the returned Grant carries it
        # also for an imported key (whose own grant returns no principal statement).
        if self.key is None:
            return grant
        return grant.combine(
            iam.Grant.add_to_principal(
                grantee=grantee, actions=actions, resource_arns=[self.key.key_arn]
            )
        )


ACCESS_LOGS_BY_POLICY = "@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy"


class DataStores(Construct):
    """KMS key (rotation on), access-log bucket, data store and MLflow artifact store.

    The artifact store is a created bucket or an existing one (``storage.artifact_store_uri``).
    """

    def __init__(
        self, scope: Construct, id: str, *, settings: StorageSettings, removal: RemovalPolicy
    ) -> None:
        super().__init__(scope, id)
        if not FeatureFlags.of(self).is_enabled(ACCESS_LOGS_BY_POLICY):
            # Without it CDK grants S3 log delivery by the LogDeliveryWrite ACL, which a bucket
            # with ACLs disabled (bucket-owner-enforced, as here) refuses at synth.
            raise ValueError(
                f"DataStores needs the feature flag {ACCESS_LOGS_BY_POLICY}=true (cdk.json)"
            )
        self.key: kms.IKey = kms.Key(
            self,
            "Key",
            description=f"Encrypts the ML artifacts and data of {Stack.of(self).stack_name}",
            enable_key_rotation=True,
            removal_policy=removal,
        )
        self.access_logs: s3.IBucket = AccessLogBucket(
            self, "AccessLogs", removal=removal, expire_after_days=settings.access_log_days
        ).bucket

        def secure_bucket(bucket_id: str) -> s3.Bucket:
            return SecureBucket(
                self,
                bucket_id,
                key=self.key,
                access_logs=self.access_logs,
                removal=removal,
                noncurrent_version_days=settings.noncurrent_version_days,
                incomplete_upload_days=settings.incomplete_upload_days,
            ).bucket

        data = secure_bucket("Data")
        # Sharded inference stages each run's shards under <output>_staging/<execution id>/ for
        # its Commit step, and nothing reads them after it (shard_contract.py): they expire.
        data.add_lifecycle_rule(
            id="expire-inference-staging",
            prefix=f"{LAYOUT.inference_output}{SHARD.STAGING_PREFIX}/",
            expiration=Duration.days(STAGING_EXPIRY_DAYS),
        )
        self.data = ObjectStore(bucket=data, key=self.key)

        existing = settings.existing_bucket_name
        mlflow_root = LAYOUT.mlflow_artifacts.rstrip("/")
        if existing is None:
            self.artifacts = ObjectStore(
                bucket=secure_bucket("Artifacts"), key=self.key, root=mlflow_root
            )
        else:
            self.artifacts = ObjectStore(
                bucket=s3.Bucket.from_bucket_name(self, "Artifacts", existing),
                key=(
                    kms.Key.from_key_arn(self, "ArtifactsKey", settings.artifact_store_kms_key_arn)
                    if settings.artifact_store_kms_key_arn
                    else None
                ),
                root=settings.existing_bucket_prefix or mlflow_root,
            )
