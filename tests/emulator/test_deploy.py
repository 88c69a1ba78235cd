"""A real ``cdk deploy`` and ``cdk destroy`` of dev and staging into the emulator.

For each environment: synthesize with the project's CDK CLI (``--app`` the app,
``-c env=NAME``, concrete account and region, lookups answered by the emulator), deploy
every stack (``--method=direct``), read back with boto3 what landed, destroy every stack and
check that nothing the deploy created is left. What the emulator does not prove is in the
README ("Deploying into an emulator") and in tests/emulator/server.py.
"""

from __future__ import annotations

import json
import re
import resource
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.emulator.harness import (
    ROOT,
    Emulator,
    bootstrap,
    inventory,
    running_emulator,
    stack_templates,
)

pytestmark = pytest.mark.emulator

ENVIRONMENTS = ("dev", "staging")
# staging's default egress is a NAT instance whose AMI is the public SSM parameter
# /aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64, which moto does not
# hold (its CloudFormation stops at the parameter): staging deploys its private alternative,
# interface endpoints in one zone. The NAT instance path is checked on the templates only
# (tests/test_reachability.py, tests/unit/test_network.py).
EMULATOR_CONTEXT = {"staging": ("-c", "network.egress=endpoints")}
APP = f"{sys.executable} {ROOT / 'app.py'}"
IMAGE_URI = re.compile(r"\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com/([^:@\s]+):([\w.-]+)")
ROLE_ARN = re.compile(r"arn:aws:iam::\d{12}:role/([\w+=,.@/-]+)")
KEY_ARN = re.compile(r"arn:aws:kms:[a-z0-9-]+:\d{12}:key/([0-9a-f-]{36})")
S3_URI = re.compile(r"s3://([a-z0-9][a-z0-9.-]+[a-z0-9])")


# One emulator per deploy, not per module: each environment's test runs in its app's xdist
# group, so the two run in different workers and would each start one anyway
# (tests/shared_fixtures.py); serially, the second start costs a few seconds.
@pytest.fixture
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    with running_emulator(tmp_path_factory.mktemp("emulator")) as running:
        bootstrap(running)
        yield running


class Deployed:
    """The physical resources of the deployed app, by type, read from the emulator."""

    def __init__(self, emulator: Emulator, templates: dict[str, dict[str, Any]]) -> None:
        self.emulator = emulator
        self.templates = templates
        cfn = emulator.client("cloudformation")
        self.physical: dict[str, dict[str, str]] = {}  # type -> logical (stack/id) -> physical
        for stack, template in templates.items():
            status = cfn.describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"]
            assert status == "CREATE_COMPLETE", f"{stack}: {status}"
            ids = {
                r["LogicalResourceId"]: r["PhysicalResourceId"]
                for r in cfn.list_stack_resources(StackName=stack)["StackResourceSummaries"]
            }
            for logical, definition in template["Resources"].items():
                if logical in ids:
                    self.physical.setdefault(definition["Type"], {})[f"{stack}/{logical}"] = ids[
                        logical
                    ]

    def of(self, resource_type: str) -> dict[str, str]:
        return self.physical.get(resource_type, {})

    def properties(self, logical: str) -> dict[str, Any]:
        stack, logical_id = logical.split("/", 1)
        props: dict[str, Any] = self.templates[stack]["Resources"][logical_id].get("Properties", {})
        return props


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def check_assets(emulator: Emulator, assembly: Path) -> None:
    """Every file asset is in the bootstrap bucket and every image asset's tag in ECR."""
    s3, ecr = emulator.client("s3"), emulator.client("ecr")
    images = 0
    for manifest in assembly.glob("*.assets.json"):
        assets = json.loads(manifest.read_text())
        for asset in assets.get("files", {}).values():
            for destination in asset["destinations"].values():
                s3.head_object(Bucket=destination["bucketName"], Key=destination["objectKey"])
        for asset_id, asset in assets.get("dockerImages", {}).items():
            for destination in asset["destinations"].values():
                found = ecr.describe_images(
                    repositoryName=destination["repositoryName"],
                    imageIds=[{"imageTag": destination["imageTag"]}],
                )["imageDetails"]
                assert found, f"{manifest.name}: image {asset_id} not published"
                images += 1
    assert images >= 2, "the training and inference images are assets"


def check_storage(app: Deployed) -> dict[str, str]:
    """Every bucket versioned and encrypted; KMS-encrypted ones with a rotating app key."""
    c = app.emulator.client
    s3, kms = c("s3"), c("kms")
    keys = {
        kms.describe_key(KeyId=key_id)["KeyMetadata"]["Arn"]: logical
        for logical, key_id in app.of("AWS::KMS::Key").items()
    }
    assert keys, "the app deployed no KMS key"
    for arn, logical in keys.items():
        assert kms.get_key_rotation_status(KeyId=arn)["KeyRotationEnabled"], (
            f"{logical}: rotation off"
        )
    buckets = app.of("AWS::S3::Bucket")
    with_app_key = []
    for logical, name in buckets.items():
        versioning = s3.get_bucket_versioning(Bucket=name).get("Status")
        assert versioning == "Enabled", f"{logical}: versioning {versioning}"
        rule = s3.get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"]["Rules"][
            0
        ]
        default = rule["ApplyServerSideEncryptionByDefault"]
        if default["SSEAlgorithm"] == "aws:kms":
            assert default.get("KMSMasterKeyID") in keys, f"{logical}: {default}"
            with_app_key.append(logical)
        else:
            assert default["SSEAlgorithm"] == "AES256", f"{logical}: {default}"
    assert len(with_app_key) >= 2, f"data and artifacts buckets use the app's key: {with_app_key}"
    return {name: logical for logical, name in buckets.items()}


def check_pipelines(app: Deployed, buckets: dict[str, str]) -> dict[str, str]:
    """Both pipelines exist, their definitions parse and name deployed buckets, roles, key, image."""
    c = app.emulator.client
    sagemaker, iam, ecr, kms = c("sagemaker"), c("iam"), c("ecr"), c("kms")
    app_roles = set(app.of("AWS::IAM::Role").values())
    app_keys = set(app.of("AWS::KMS::Key").values())
    pipelines = app.of("AWS::SageMaker::Pipeline")
    assert len(pipelines) == 2, f"training and inference pipelines: {sorted(pipelines)}"
    arns = {}
    for logical, name in pipelines.items():
        described = sagemaker.describe_pipeline(PipelineName=name)
        arns[described["PipelineArn"]] = logical
        definition = json.loads(described["PipelineDefinition"])
        assert definition.get("Steps"), f"{logical}: no steps"
        role = described["RoleArn"].rsplit("/", 1)[-1]
        assert role in app_roles, f"{logical}: runs as {described['RoleArn']}, not an app role"
        texts = list(_strings(definition))
        found: dict[str, set[str]] = {"bucket": set(), "role": set(), "key": set(), "image": set()}
        for text in texts:
            for bucket in S3_URI.findall(text):
                assert bucket in buckets, f"{logical}: s3://{bucket} is not a deployed bucket"
                found["bucket"].add(bucket)
            for role_path in ROLE_ARN.findall(text):
                iam.get_role(RoleName=role_path.rsplit("/", 1)[-1])
                found["role"].add(role_path)
            for key_id in KEY_ARN.findall(text):
                assert key_id in app_keys, f"{logical}: key {key_id} is not the app's"
                assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["Enabled"]
                found["key"].add(key_id)
            for repository, tag in IMAGE_URI.findall(text):
                ecr.describe_images(repositoryName=repository, imageIds=[{"imageTag": tag}])
                found["image"].add(tag)
        missing = [kind for kind, seen in found.items() if not seen]
        assert not missing, f"{logical}: the definition names no deployed {', '.join(missing)}"
    return arns


def check_schedules(app: Deployed, pipelines: dict[str, str], env: str) -> None:
    """Each schedule starts a deployed pipeline as an app role, with retries and a dead-letter queue."""
    c = app.emulator.client
    scheduler, sqs = c("scheduler"), c("sqs")
    app_roles = set(app.of("AWS::IAM::Role").values())
    schedules = app.of("AWS::Scheduler::Schedule")
    if env == "staging":  # cdk.json enables both schedules in staging
        assert len(schedules) == 2, sorted(schedules)
    for logical, name in schedules.items():
        group = app.properties(logical).get("GroupName")
        schedule = scheduler.get_schedule(Name=name, **({"GroupName": group} if group else {}))
        expected = app.properties(logical)["ScheduleExpression"]
        assert schedule["ScheduleExpression"] == expected, logical
        target = schedule["Target"]
        assert target["Arn"] in pipelines, f"{logical}: starts {target['Arn']}"
        assert target["RoleArn"].rsplit("/", 1)[-1] in app_roles, f"{logical}: {target['RoleArn']}"
        assert target.get("RetryPolicy"), f"{logical}: no retry policy"
        queue_arn = target["DeadLetterConfig"]["Arn"]
        url = sqs.get_queue_url(QueueName=queue_arn.rsplit(":", 1)[-1])["QueueUrl"]
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        assert (
            attributes.get("KmsMasterKeyId") or attributes.get("SqsManagedSseEnabled") == "true"
        ), f"{logical}: dead-letter queue {queue_arn} unencrypted"


def _children_cpu() -> float:
    """CPU seconds of the finished child processes (the CLI and the app it synthesizes)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_deploy_check_destroy(
    env: str, emulator: Emulator, record_property: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    before = inventory(emulator)
    cpu_before = _children_cpu()
    server_before = emulator.server_cpu()
    assembly = emulator.work / f"cdk.out.{env}"
    started = time.monotonic()
    emulator.cdk(
        "synth", "--app", APP, "-c", f"env={env}", *EMULATOR_CONTEXT.get(env, ()),
        "-o", str(assembly), "--quiet",
    )  # fmt: skip
    synthesized = time.monotonic()
    deploy_args = [
        "--all",
        "--app",
        str(assembly),
        "--method=direct",
        "--require-approval",
        "never",
    ]
    emulator.cdk("deploy", *deploy_args)
    deployed = time.monotonic()
    try:
        check_assets(emulator, assembly)
        app = Deployed(emulator, stack_templates(assembly))
        buckets = check_storage(app)
        pipelines = check_pipelines(app, buckets)
        check_schedules(app, pipelines, env)
    finally:
        checked = time.monotonic()
        emulator.cdk("destroy", "--all", "--app", str(assembly), "--force")
    destroyed = time.monotonic()
    after = inventory(emulator)
    leftovers = {
        kind: sorted(after[kind] - before[kind]) for kind in after if after[kind] - before[kind]
    }
    assert leftovers == {}, f"left after cdk destroy: {leftovers}"
    timings = {
        "cli_and_synth_cpu_s": round(_children_cpu() - cpu_before, 1),
        "emulator_cpu_s": round(emulator.server_cpu() - server_before, 1),
        "synth_s": round(synthesized - started, 1),
        "deploy_s": round(deployed - synthesized, 1),
        "check_s": round(checked - deployed, 1),
        "destroy_s": round(destroyed - checked, 1),
        "total_s": round(destroyed - started, 1),
    }
    for name, value in timings.items():
        record_property(name, value)
    with capsys.disabled():
        print(f"\nemulator {env}: {timings}")
    placeholders = sorted(
        {
            line.split()[4]
            for line in emulator.log.read_text().splitlines()
            if "no model for" in line
        }
    )
    if placeholders:
        warnings.warn(f"the emulator created nothing for: {placeholders}", stacklevel=1)
