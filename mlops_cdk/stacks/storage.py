"""Storage: the KMS key and the buckets every other stack reads and writes."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from mlops_cdk.constructs.access_log_bucket import AccessLogBucket
from mlops_cdk.constructs.secure_bucket import SecureBucket
from mlops_cdk.layout import LAYOUT, DataLayout
from mlops_cdk.settings import StorageSettings


class StorageStack(Stack):
    """KMS key, MLflow artifacts bucket (created or existing), data bucket, access-log bucket."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        settings: StorageSettings,
        removal: RemovalPolicy,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, id, **kwargs)
        self.layout: DataLayout = LAYOUT
        self.key = kms.Key(
            self,
            "Key",
            description=f"Encrypts the ML artifacts and data of {id}",
            enable_key_rotation=True,
            removal_policy=removal,
        )
        self.access_logs = AccessLogBucket(
            self, "AccessLogs", removal=removal, expire_after_days=settings.access_log_days
        ).bucket

        def secure_bucket(bucket_id: str) -> s3.IBucket:
            return SecureBucket(
                self,
                bucket_id,
                key=self.key,
                access_logs=self.access_logs,
                removal=removal,
                noncurrent_version_days=settings.noncurrent_version_days,
                incomplete_upload_days=settings.incomplete_upload_days,
            ).bucket

        self.data_bucket = secure_bucket("Data")

        existing = settings.existing_bucket_name
        self.artifacts_bucket: s3.IBucket
        self.artifacts_key: kms.IKey | None
        if existing is None:
            self.artifacts_bucket = secure_bucket("Artifacts")
            self.artifacts_key = self.key
            self.artifacts_prefix = LAYOUT.mlflow_artifacts.rstrip("/")
        else:
            self.artifacts_bucket = s3.Bucket.from_bucket_name(self, "Artifacts", existing)
            self.artifacts_key = (
                kms.Key.from_key_arn(self, "ArtifactsKey", settings.artifact_store_kms_key_arn)
                if settings.artifact_store_kms_key_arn
                else None
            )
            self.artifacts_prefix = (
                settings.existing_bucket_prefix or LAYOUT.mlflow_artifacts.rstrip("/")
            )
        self._outputs()

    @property
    def artifact_uri(self) -> str:
        """Where MLflow stores run artifacts: s3://<artifacts bucket>/<prefix>."""
        return f"s3://{self.artifacts_bucket.bucket_name}/{self.artifacts_prefix}"

    def data_uri(self, prefix: str) -> str:
        return f"s3://{self.data_bucket.bucket_name}/{prefix}"

    @property
    def _artifacts_objects(self) -> str:
        return f"{self.artifacts_prefix}/*"

    @property
    def artifacts_objects_arn(self) -> str:
        """The object ARN pattern :meth:`grant_artifacts_read_write` grants on."""
        return self.artifacts_bucket.arn_for_objects(self._artifacts_objects)

    def data_objects_arn(self, prefix: str) -> str:
        """The object ARN pattern the ``grant_data_*`` methods grant on for ``prefix``."""
        return self.data_bucket.arn_for_objects(_objects_under(prefix))

    def grant_artifacts_read_write(self, grantee: iam.IGrantable) -> None:
        """Read and write MLflow artifacts (that prefix only) and use the key that encrypts them."""
        self.artifacts_bucket.grant_read_write(grantee, self._artifacts_objects)
        if self.artifacts_key is not None:
            self.artifacts_key.grant_encrypt_decrypt(grantee)

    def grant_data_read(self, grantee: iam.IGrantable, prefix: str) -> None:
        self.data_bucket.grant_read(grantee, _objects_under(prefix))

    def grant_data_read_write(self, grantee: iam.IGrantable, prefix: str) -> None:
        self.data_bucket.grant_read_write(grantee, _objects_under(prefix))

    def _outputs(self) -> None:
        CfnOutput(self, "KmsKeyArn", value=self.key.key_arn)
        CfnOutput(self, "ArtifactsBucketName", value=self.artifacts_bucket.bucket_name)
        CfnOutput(self, "ArtifactsBucketArn", value=self.artifacts_bucket.bucket_arn)
        CfnOutput(self, "ArtifactStoreUri", value=self.artifact_uri)
        CfnOutput(self, "DataBucketName", value=self.data_bucket.bucket_name)
        CfnOutput(self, "DataBucketArn", value=self.data_bucket.bucket_arn)
        CfnOutput(self, "DataBucketUri", value=self.data_uri(""))
        CfnOutput(self, "AccessLogsBucketName", value=self.access_logs.bucket_name)


def _objects_under(prefix: str) -> str:
    return f"{prefix}*"
