"""Storage: the KMS key and the buckets every other stack reads and writes."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, RemovalPolicy, Stack
from constructs import Construct

from mlops_cdk.constructs.data_stores import DataStores, ObjectStore
from mlops_cdk.layout import LAYOUT, DataLayout
from mlops_cdk.settings import StorageSettings


class StorageStack(Stack):
    """KMS key, MLflow artifacts bucket (created or existing), data bucket, access-log bucket.

    Other stacks take ``key``, ``artifacts`` and ``data`` (:class:`ObjectStore`), never this stack.
    """

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
        # "Default": CDK leaves that id out of logical IDs, so the key and buckets keep the
        # logical IDs they had when the stack created them itself (stateful: never renamed).
        stores = DataStores(self, "Default", settings=settings, removal=removal)
        self.key = stores.key
        self.access_logs = stores.access_logs
        self.artifacts: ObjectStore = stores.artifacts
        self.data: ObjectStore = stores.data

        CfnOutput(self, "KmsKeyArn", value=self.key.key_arn)
        CfnOutput(self, "ArtifactsBucketName", value=self.artifacts.bucket.bucket_name)
        CfnOutput(self, "ArtifactsBucketArn", value=self.artifacts.bucket.bucket_arn)
        CfnOutput(self, "ArtifactStoreUri", value=self.artifacts.uri())
        CfnOutput(self, "DataBucketName", value=self.data.bucket.bucket_name)
        CfnOutput(self, "DataBucketArn", value=self.data.bucket.bucket_arn)
        CfnOutput(self, "DataBucketUri", value=self.data.uri())
        CfnOutput(self, "AccessLogsBucketName", value=self.access_logs.bucket_name)
