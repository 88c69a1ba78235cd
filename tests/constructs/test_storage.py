"""SecureBucket, AccessLogBucket, DataStores and ObjectStore grants, each in a bare stack."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Match, Template
from pydantic import ValidationError

from mlops_cdk.constructs.access_log_bucket import AccessLogBucket
from mlops_cdk.constructs.data_stores import STAGING_EXPIRY_DAYS, DataStores
from mlops_cdk.constructs.secure_bucket import SecureBucket
from mlops_cdk.settings import StorageSettings
from tests.constructs.bare import actions_of, bare_stack, client_role, policy_statements, resources

AUTO_DELETE = "Custom::S3AutoDeleteObjects"
TLS_ONLY = {
    "Action": "s3:*",
    "Effect": "Deny",
    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    "Principal": {"AWS": "*"},
}


def _bucket_policy_statements(template: Template) -> list[dict[str, Any]]:
    return [
        statement
        for policy in resources(template, "AWS::S3::BucketPolicy").values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def _secure_bucket(removal: cdk.RemovalPolicy) -> tuple[cdk.Stack, SecureBucket, kms.Key]:
    stack = bare_stack()
    key = kms.Key(stack, "Key")
    logs = s3.Bucket(stack, "Logs")
    bucket = SecureBucket(
        stack,
        "Data",
        key=key,
        access_logs=logs,
        removal=removal,
        noncurrent_version_days=90,
        incomplete_upload_days=7,
    )
    return stack, bucket, key


def test_a_secure_bucket_is_versioned_kms_encrypted_private_logged_and_expires_old_versions() -> (
    None
):
    stack, _, key = _secure_bucket(cdk.RemovalPolicy.RETAIN)
    template = Template.from_stack(stack)
    template.has_resource(
        "AWS::S3::Bucket",
        {
            "Properties": {
                "BucketEncryption": {
                    "ServerSideEncryptionConfiguration": [
                        {
                            "BucketKeyEnabled": True,
                            "ServerSideEncryptionByDefault": {
                                "SSEAlgorithm": "aws:kms",
                                "KMSMasterKeyID": stack.resolve(key.key_arn),
                            },
                        }
                    ]
                },
                "PublicAccessBlockConfiguration": {
                    "BlockPublicAcls": True,
                    "BlockPublicPolicy": True,
                    "IgnorePublicAcls": True,
                    "RestrictPublicBuckets": True,
                },
                "VersioningConfiguration": {"Status": "Enabled"},
                "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
                # The prefix is the construct's id, lower case: one folder per bucket.
                "LoggingConfiguration": {
                    "DestinationBucketName": {"Ref": Match.string_like_regexp("^Logs")},
                    "LogFilePrefix": "data/",
                },
                "LifecycleConfiguration": {
                    "Rules": [
                        {
                            "Id": "expire-old-versions-and-uploads",
                            "Status": "Enabled",
                            "NoncurrentVersionExpiration": {"NoncurrentDays": 90},
                            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7},
                        }
                    ]
                },
            },
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
        },
    )
    assert any(
        statement.items() >= TLS_ONLY.items() for statement in _bucket_policy_statements(template)
    )
    # RETAIN keeps the objects: no auto-delete handler.
    template.resource_count_is(AUTO_DELETE, 0)


def test_a_destroyed_secure_bucket_empties_itself_first() -> None:
    stack, _, _ = _secure_bucket(cdk.RemovalPolicy.DESTROY)
    template = Template.from_stack(stack)
    template.resource_count_is(AUTO_DELETE, 1)
    template.has_resource(
        "AWS::S3::Bucket",
        {"Properties": {"BucketEncryption": Match.any_value()}, "DeletionPolicy": "Delete"},
    )


def test_the_access_log_bucket_is_sse_s3_logs_nowhere_and_expires_logs() -> None:
    stack = bare_stack()
    AccessLogBucket(stack, "AccessLogs", removal=cdk.RemovalPolicy.RETAIN, expire_after_days=365)
    template = Template.from_stack(stack)
    template.resource_count_is("AWS::S3::Bucket", 1)
    properties = next(iter(resources(template, "AWS::S3::Bucket").values()))["Properties"]
    # S3 log delivery writes SSE-S3 only (the construct's docstring): no KMS key here.
    assert properties["BucketEncryption"]["ServerSideEncryptionConfiguration"] == [
        {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
    ]
    assert "LoggingConfiguration" not in properties  # it is the destination; no loop
    assert properties["LifecycleConfiguration"]["Rules"] == [
        {
            "Id": "expire-access-logs",
            "Status": "Enabled",
            "ExpirationInDays": 365,
            "NoncurrentVersionExpiration": {"NoncurrentDays": 1},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
        }
    ]
    assert properties["PublicAccessBlockConfiguration"]["RestrictPublicBuckets"] is True
    assert any(
        statement.items() >= TLS_ONLY.items() for statement in _bucket_policy_statements(template)
    )


def test_data_stores_make_one_rotating_key_and_three_buckets_that_use_it() -> None:
    stack = bare_stack()
    stores = DataStores(
        stack, "Stores", settings=StorageSettings(), removal=cdk.RemovalPolicy.RETAIN
    )
    template = Template.from_stack(stack)
    template.resource_count_is("AWS::KMS::Key", 1)
    template.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})
    buckets = resources(template, "AWS::S3::Bucket")
    assert len(buckets) == 3  # access logs, data, artifacts
    kms_encrypted = [
        b
        for b in buckets.values()
        if b["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"][0][
            "ServerSideEncryptionByDefault"
        ]["SSEAlgorithm"]
        == "aws:kms"
    ]
    assert len(kms_encrypted) == 2
    assert stores.artifacts.key is stores.key and stores.data.key is stores.key
    assert stores.artifacts.root == "mlflow"
    assert stores.artifacts.bucket is not stores.data.bucket
    # The data bucket expires sharded inference's staged shards (only there).
    staging = {
        "Id": "expire-inference-staging",
        "Status": "Enabled",
        "Prefix": "iris/inference-output/_staging/",
        "ExpirationInDays": STAGING_EXPIRY_DAYS,
    }
    with_staging = [
        b for b in kms_encrypted if staging in b["Properties"]["LifecycleConfiguration"]["Rules"]
    ]
    assert len(with_staging) == 1
    data_id = stack.resolve(stores.data.bucket.bucket_name)["Ref"]
    assert with_staging[0] is buckets[data_id]


def test_data_stores_wrap_an_existing_artifact_bucket_and_its_key() -> None:
    key_arn = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    settings = StorageSettings(
        create_bucket=False,
        artifact_store_uri="s3://team-artifacts/ml/runs/",
        artifact_store_kms_key_arn=key_arn,
    )
    stack = bare_stack()
    stores = DataStores(stack, "Stores", settings=settings, removal=cdk.RemovalPolicy.RETAIN)
    template = Template.from_stack(stack)
    template.resource_count_is("AWS::S3::Bucket", 2)  # access logs and data only
    assert stores.artifacts.uri() == "s3://team-artifacts/ml/runs"
    assert stores.artifacts.key is not None
    assert stores.artifacts.key.key_arn == key_arn


def test_an_existing_bucket_needs_create_bucket_false_in_one_line() -> None:
    with pytest.raises(ValidationError) as raised:
        StorageSettings(artifact_store_uri="s3://team-artifacts/ml")
    message = raised.value.errors()[0]["msg"]
    assert "\n" not in message
    assert (
        "storage.artifact_store_uri='s3://team-artifacts/ml' needs storage.create_bucket=false"
        in message
    )


def test_data_grants_cross_stacks_scoped_to_the_prefix_with_the_key() -> None:
    stack = bare_stack()
    stores = DataStores(
        stack, "Stores", settings=StorageSettings(), removal=cdk.RemovalPolicy.RETAIN
    )
    client, role = client_role(stack)
    read = stores.data.grant_read(role, "iris/training/")
    write = stores.artifacts.grant_read_write(role)
    assert isinstance(read, iam.Grant) and read.success
    assert isinstance(write, iam.Grant) and write.success
    # The returned grants carry the key statements too (the caller acknowledges from them).
    assert ["kms:Decrypt"] in [s.actions for s in read.principal_statements]
    assert "kms:GenerateDataKey*" in {a for s in write.principal_statements for a in s.actions}

    statements = policy_statements(client)
    text = repr(statements)
    assert "iris/training/*" in text and "mlflow/*" in text
    assert "Fn::ImportValue" in text  # the bucket and key come from the storage stack
    reads = [s for s in statements if "iris/training/*" in repr(s["Resource"])]
    assert reads and not actions_of(reads) & {"s3:PutObject", "s3:DeleteObject*"}
    writes = [s for s in statements if "mlflow/*" in repr(s["Resource"])]
    assert "s3:PutObject" in actions_of(writes)
    key_statements = [s for s in statements if any(a.startswith("kms:") for a in actions_of([s]))]
    assert {"kms:Decrypt", "kms:GenerateDataKey*"} <= actions_of(key_statements)
    assert all("StoresKey" in repr(s["Resource"]) for s in key_statements)
    # Nothing was written into the key policy for the other stack's role (no cycle).
    key_policy = Template.from_stack(stack).find_resources("AWS::KMS::Key")
    assert "Client" not in repr(key_policy)


def test_data_stores_name_the_feature_flag_they_need_in_an_app_without_it() -> None:
    stack = cdk.Stack(cdk.App(), "NoFlags")
    with pytest.raises(ValueError, match="serverAccessLogsUseBucketPolicy"):
        DataStores(stack, "Stores", settings=StorageSettings(), removal=cdk.RemovalPolicy.RETAIN)
