"""The bucket that receives S3 server access logs from the other buckets."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_s3 as s3
from constructs import Construct

from mlops_cdk import nag
from mlops_cdk.checkov import skip


class AccessLogBucket(Construct):
    """Private, TLS-only log bucket. S3 log delivery supports SSE-S3 only, not SSE-KMS.

    It also receives the Fargate MLflow load balancer's access logs (under
    ``mlflow-load-balancer/``; ALB log delivery supports SSE-S3 only as well); the lifecycle
    rule has no prefix, so those expire after ``expire_after_days`` too.
    """

    def __init__(
        self, scope: Construct, id: str, *, removal: RemovalPolicy, expire_after_days: int
    ) -> None:
        super().__init__(scope, id)
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            removal_policy=removal,
            auto_delete_objects=removal == RemovalPolicy.DESTROY,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-access-logs",
                    expiration=Duration.days(expire_after_days),
                    noncurrent_version_expiration=Duration.days(1),
                    abort_incomplete_multipart_upload_after=Duration.days(1),
                )
            ],
        )
        # The load balancer of the fargate tracking mode imports this name (its log setting). An
        # export made in every mode keeps a tracking.mode switch from deleting an export the
        # old tracking stack still imports (CloudFormation refuses that; docs/migration.md).
        Stack.of(self).export_value(self.bucket.bucket_name)
        nag.ack(
            self.bucket,
            "AwsSolutions-S1",
            "This is the server-access-log destination; logging it into itself would loop.",
        )
        skip(
            self.bucket,
            "CKV_AWS_18",
            "This is the server-access-log destination; logging it into itself would loop.",
        )
