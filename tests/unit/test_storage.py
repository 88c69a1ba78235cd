"""Fine-grained assertions on the storage stack."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Match

from mlops_cdk.constructs.data_stores import ObjectStore
from tests.synth import SynthesizedApp, synthesize


def _buckets(app: SynthesizedApp) -> dict[str, dict[str, Any]]:
    return {
        k: dict(v) for k, v in app.template("storage").find_resources("AWS::S3::Bucket").items()
    }


def _logical_id(app: SynthesizedApp, prefix: str) -> str:
    (logical_id,) = [k for k in _buckets(app) if k.startswith(prefix)]
    return logical_id


def test_key_rotates(any_env: SynthesizedApp) -> None:
    any_env.template("storage").has_resource_properties(
        "AWS::KMS::Key", {"EnableKeyRotation": True}
    )


@pytest.mark.parametrize("prefix", ["ArtifactsBucket", "DataBucket"])
def test_ml_buckets_are_kms_encrypted_versioned_and_logged(
    any_env: SynthesizedApp, prefix: str
) -> None:
    props = _buckets(any_env)[_logical_id(any_env, prefix)]["Properties"]
    (rule,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    assert "KMSMasterKeyID" in rule["ServerSideEncryptionByDefault"]
    assert rule["BucketKeyEnabled"] is True
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert props["LoggingConfiguration"]["DestinationBucketName"]["Ref"].startswith(
        "AccessLogsBucket"
    )


def test_every_bucket_blocks_public_access(any_env: SynthesizedApp) -> None:
    buckets = _buckets(any_env)
    assert len(buckets) == 3
    for props in (b["Properties"] for b in buckets.values()):
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }


def test_every_bucket_rejects_plain_http(any_env: SynthesizedApp) -> None:
    policies = any_env.template("storage").find_resources("AWS::S3::BucketPolicy")
    assert len(policies) == 3
    for policy in policies.values():
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        assert {
            "Action": "s3:*",
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            "Effect": "Deny",
            "Principal": {"AWS": "*"},
            "Resource": Match.any_value(),
        }.keys() <= next(s for s in statements if s.get("Effect") == "Deny").keys()
        deny = next(s for s in statements if s.get("Effect") == "Deny")
        assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        assert deny["Action"] == "s3:*"


def test_lifecycle_expires_old_versions_and_incomplete_uploads(staging: SynthesizedApp) -> None:
    props = _buckets(staging)[_logical_id(staging, "DataBucket")]["Properties"]
    rule, staging_rule = props["LifecycleConfiguration"]["Rules"]
    assert rule["NoncurrentVersionExpiration"] == {"NoncurrentDays": 90}
    assert rule["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 7}
    assert rule["Status"] == "Enabled"
    # Sharded inference's staged shards: nothing reads them after the run's Commit step.
    assert staging_rule == {
        "ExpirationInDays": 7,
        "Id": "expire-inference-staging",
        "Prefix": "iris/inference-output/_staging/",
        "Status": "Enabled",
    }


def test_prod_keeps_longer_history(prod: SynthesizedApp) -> None:
    props = _buckets(prod)[_logical_id(prod, "DataBucket")]["Properties"]
    assert props["LifecycleConfiguration"]["Rules"][0]["NoncurrentVersionExpiration"] == {
        "NoncurrentDays": 365
    }


def test_dev_destroys_buckets_and_empties_them(dev: SynthesizedApp) -> None:
    template = dev.template("storage")
    for resource in [*_buckets(dev).values(), *template.find_resources("AWS::KMS::Key").values()]:
        assert resource["DeletionPolicy"] == "Delete"
        assert resource["UpdateReplacePolicy"] == "Delete"
    assert len(template.find_resources("Custom::S3AutoDeleteObjects")) == 3


def test_prod_retains_every_stateful_resource(prod: SynthesizedApp) -> None:
    template = prod.template("storage")
    stateful = {**_buckets(prod), **template.find_resources("AWS::KMS::Key")}
    assert len(stateful) == 4
    for resource in stateful.values():
        assert resource["DeletionPolicy"] == "Retain"
        assert resource["UpdateReplacePolicy"] == "Retain"
    assert template.find_resources("Custom::S3AutoDeleteObjects") == {}


def test_prod_stateful_stack_has_termination_protection(prod: SynthesizedApp) -> None:
    assert prod.platform.storage.termination_protection is True


def test_dev_stack_can_be_deleted(dev: SynthesizedApp) -> None:
    assert dev.platform.storage.termination_protection is False


def test_outputs_name_buckets_uris_and_key(any_env: SynthesizedApp) -> None:
    outputs = any_env.template("storage").find_outputs("*")
    assert {
        "KmsKeyArn",
        "ArtifactsBucketName",
        "ArtifactsBucketArn",
        "ArtifactStoreUri",
        "DataBucketName",
        "DataBucketArn",
        "DataBucketUri",
        "AccessLogsBucketName",
    } <= outputs.keys()


def test_artifact_uri_points_at_the_mlflow_prefix(staging: SynthesizedApp) -> None:
    uri = staging.template_json("storage")["Outputs"]["ArtifactStoreUri"]["Value"]
    assert uri["Fn::Join"][1][0] == "s3://"
    assert uri["Fn::Join"][1][-1] == "/mlflow"


def test_layout_prefixes_follow_the_design(dev: SynthesizedApp) -> None:
    layout = dev.platform.storage.layout
    assert (
        layout.training,
        layout.models,
        layout.inference_input,
        layout.inference_output,
    ) == ("iris/training/", "iris/models/", "iris/inference-input/", "iris/inference-output/")
    assert layout.mlflow_artifacts == "mlflow/"


def test_existing_bucket_is_used_instead_of_a_new_one() -> None:
    app = synthesize(
        "dev",
        {
            "storage.create_bucket": "false",
            "storage.artifact_store_uri": "s3://team-shared-mlflow/experiments",
        },
    )
    template = app.template_json("storage")
    buckets = [k for k, v in template["Resources"].items() if v["Type"] == "AWS::S3::Bucket"]
    assert not any(k.startswith("ArtifactsBucket") for k in buckets)
    assert any(k.startswith("DataBucket") for k in buckets)
    assert template["Outputs"]["ArtifactStoreUri"]["Value"] == "s3://team-shared-mlflow/experiments"
    assert app.platform.storage.artifacts.key is None


@pytest.mark.parametrize("mode", ["serverless", "fargate"])
def test_an_existing_artifact_store_with_its_own_key_passes_nag(mode: str) -> None:
    # Every client of the artifact store gets the imported key's encrypt/decrypt, and each
    # role that holds it acknowledges those grant wildcards (nag raises at synth otherwise).
    key_arn = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    app = synthesize(
        "staging",
        {
            "tracking.mode": mode,
            "storage.create_bucket": "false",
            "storage.artifact_store_uri": "s3://team-shared-mlflow/experiments",
            "storage.artifact_store_kms_key_arn": key_arn,
        },
    )
    assert app.platform.storage.artifacts.key is not None
    policies = app.template("tracking").find_resources("AWS::IAM::Policy")
    assert key_arn in str(policies)


def test_an_object_store_names_its_prefixes_and_grants_with_its_key() -> None:
    # Built in a bare stack: the stores need no StorageStack. Artifacts live under a root
    # folder ("mlflow", no trailing slash); data prefixes are used as given.
    stack = cdk.Stack(cdk.App(), "Bare")
    bucket = s3.Bucket.from_bucket_name(stack, "Bucket", "team-bucket")
    key = kms.Key.from_key_arn(
        stack, "Key", "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    )
    artifacts = ObjectStore(bucket=bucket, key=key, root="mlflow")
    data = ObjectStore(bucket=bucket, key=None)
    assert artifacts.uri() == "s3://team-bucket/mlflow"
    assert data.uri() == "s3://team-bucket/"
    assert data.uri("iris/training/") == "s3://team-bucket/iris/training/"
    assert stack.resolve(artifacts.objects_arn())["Fn::Join"][1][-1] == ":s3:::team-bucket/mlflow/*"
    models = stack.resolve(data.objects_arn("iris/models/"))
    assert models["Fn::Join"][1][-1] == ":s3:::team-bucket/iris/models/*"

    role = iam.Role(stack, "Role", assumed_by=iam.AccountRootPrincipal())
    granted = [s.actions for s in artifacts.grant_read_write(role).principal_statements]
    assert ["kms:Decrypt", "kms:Encrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*"] in granted
    assert not any(
        a.startswith("kms:") for s in data.grant_read(role).principal_statements for a in s.actions
    )
