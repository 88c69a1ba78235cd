"""Fine-grained assertions on each tracking mode, and its configuration errors."""

from __future__ import annotations

import json
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import assertions
from aws_cdk import aws_iam as iam

from mlops_cdk.settings import SELF_HOSTED_MLFLOW_VERSION, ConfigError, Settings
from tests.conftest import synthesized, with_app
from tests.matrix import Variant
from tests.synth import ROOT, SynthesizedApp
from tests.test_tracking_modes import app_for
from tools import cdk_json

Match = assertions.Match


def resources(app: SynthesizedApp, type_: str) -> dict[str, Any]:
    return dict(app.template("tracking").find_resources(type_))


# --- which stacks each mode needs ------------------------------------------------------------


def _in_dev(*modes: str) -> list[Any]:
    """Each mode as a parameter run in the worker of dev's app in that mode."""
    return [pytest.param(mode, marks=with_app(Variant("dev", mode).key)) for mode in modes]


@pytest.mark.parametrize("mode", _in_dev("serverless", "managed"))
def test_sagemaker_modes_need_no_network_in_dev(mode: str) -> None:
    app = app_for("dev", mode)
    assert not app.has_stack("network")
    assert app.platform.tracking.backend.connections is None


@pytest.mark.parametrize(("env", "mode"), [("dev", "fargate"), ("dev", "ec2")])  # + xdist group
def test_self_hosted_modes_build_the_network_in_dev(env: str, mode: str) -> None:
    app = app_for(env, mode)
    assert app.has_stack("network")
    assert app.platform.tracking.backend.connections is not None


@pytest.mark.parametrize("mode", _in_dev("serverless", "managed", "fargate"))
def test_every_mode_outputs_the_interface(mode: str) -> None:
    outputs = app_for("dev", mode).template_json("tracking")["Outputs"]
    for name in (
        "TrackingUri",
        "ServerName",
        "MlflowVersion",
        "ArtifactStoreUri",
        "ServerRoleArn",
        "ServerRoleName",
    ):
        assert name in outputs, (mode, name)
    assert ("ServerArn" in outputs) == (mode in ("serverless", "managed"))


# --- managed ---------------------------------------------------------------------------------


IN_MANAGED_STAGING = with_app(Variant("staging", "managed").key)


@pytest.fixture(scope="module")
def managed() -> SynthesizedApp:
    """Staging in the managed mode (cdk.json's staging runs the serverless App)."""
    return app_for("staging", "managed")


@IN_MANAGED_STAGING
def test_managed_server_has_the_configured_size_version_and_window(managed: SynthesizedApp) -> None:
    managed.template("tracking").has_resource_properties(
        "AWS::SageMaker::MlflowTrackingServer",
        {
            "TrackingServerName": "mlops-staging-mlflow",
            "TrackingServerSize": "Small",
            "MlflowVersion": "3.0",
            "AutomaticModelRegistration": True,
            "WeeklyMaintenanceWindowStart": "Tue:03:30",
            "ArtifactStoreUri": Match.object_like(
                {"Fn::Join": ["", Match.array_with(["/mlflow"])]}
            ),
        },
    )


@IN_MANAGED_STAGING
def test_managed_role_is_trusted_by_sagemaker_only(managed: SynthesizedApp) -> None:
    (role,) = resources(managed, "AWS::IAM::Role").values()
    statement = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert statement == [
        {
            "Action": "sts:AssumeRole",
            "Effect": "Allow",
            "Principal": {"Service": "sagemaker.amazonaws.com"},
        }
    ]
    assert "ManagedPolicyArns" not in role["Properties"]


@IN_MANAGED_STAGING
def test_managed_role_writes_only_the_mlflow_prefix(managed: SynthesizedApp) -> None:
    (policy,) = resources(managed, "AWS::IAM::Policy").values()
    text = json.dumps(policy)
    assert '"/mlflow/*"' in text
    assert "s3:PutObject" in text
    assert '"Resource": "*"' not in text


@with_app(Variant("dev", "managed").key)
def test_managed_options_follow_settings() -> None:
    app = app_for("dev", "managed")  # defaults: registration on
    assert "sagemaker:CreateModelPackageGroup" in json.dumps(app.template_json("tracking"))
    custom = synthesized(
        "dev",
        **{
            "tracking.mode": "managed",
            "tracking.size": "Medium",
            "tracking.mlflow_version": "2.16",
            "tracking.automatic_model_registration": "false",
            "tracking.maintenance_window": "sun:23:05",
            "tracking.extra_policy_arns": '["arn:aws:iam::aws:policy/AmazonSageMakerReadOnly"]',
        },
    )
    custom.template("tracking").has_resource_properties(
        "AWS::SageMaker::MlflowTrackingServer",
        {
            "TrackingServerSize": "Medium",
            "MlflowVersion": "2.16",
            "AutomaticModelRegistration": False,
            "WeeklyMaintenanceWindowStart": "Sun:23:05",
        },
    )
    custom.template("tracking").has_resource_properties(
        "AWS::IAM::Role", {"ManagedPolicyArns": ["arn:aws:iam::aws:policy/AmazonSageMakerReadOnly"]}
    )
    assert "sagemaker:CreateModelPackageGroup" not in json.dumps(custom.template_json("tracking"))


# --- fargate ---------------------------------------------------------------------------------


def test_fargate_load_balancer_is_internal_in_private_subnets(prod: SynthesizedApp) -> None:
    prod.template("tracking").has_resource_properties(
        "AWS::ElasticLoadBalancingV2::LoadBalancer",
        {"Scheme": "internal", "Type": "application"},
    )
    (listener,) = resources(prod, "AWS::ElasticLoadBalancingV2::Listener").values()
    assert listener["Properties"]["Port"] == 80  # no certificate configured
    for group in resources(prod, "AWS::EC2::SecurityGroup").values():
        assert "0.0.0.0/0" not in json.dumps(group["Properties"].get("SecurityGroupIngress", []))


@with_app(Variant("dev", "fargate").key)
def test_fargate_database_pauses_outside_prod() -> None:
    dev = app_for("dev", "fargate")
    dev.template("tracking").has_resource(
        "AWS::RDS::DBCluster",
        {
            "DeletionPolicy": "Delete",
            "Properties": Match.object_like(
                {
                    "Engine": "aurora-postgresql",
                    "StorageEncrypted": True,
                    "DeletionProtection": False,
                    "ServerlessV2ScalingConfiguration": {"MinCapacity": 0, "MaxCapacity": 2},
                }
            ),
        },
    )
    assert len(resources(dev, "AWS::RDS::DBInstance")) == 1


def test_fargate_database_is_protected_in_prod(prod: SynthesizedApp) -> None:
    prod.template("tracking").has_resource(
        "AWS::RDS::DBCluster",
        {
            "DeletionPolicy": "Retain",  # see tests/test_database_lifecycle.py
            "UpdateReplacePolicy": "Retain",
            "Properties": Match.object_like(
                {"DeletionProtection": True, "BackupRetentionPeriod": 14}
            ),
        },
    )
    assert len(resources(prod, "AWS::RDS::DBInstance")) == 2  # writer + reader in another zone


def test_fargate_credentials_are_ecs_secrets_never_plain_environment(prod: SynthesizedApp) -> None:
    (task,) = resources(prod, "AWS::ECS::TaskDefinition").values()
    (container,) = task["Properties"]["ContainerDefinitions"]
    secret_names = {s["Name"] for s in container["Secrets"]}
    assert {
        "DB_PASSWORD",
        "DB_USERNAME",
        "MLFLOW_AUTH_ADMIN_PASSWORD",
        "MLFLOW_CLIENT_PASSWORD",
    } <= secret_names
    environment = {e["Name"]: e["Value"] for e in container["Environment"]}
    assert not any("PASSWORD" in name or "USERNAME" in name for name in environment)
    assert environment["MLFLOW_AUTH"] == "basic"
    assert container["HealthCheck"]["Command"][0] == "CMD"
    assert container["LogConfiguration"]["LogDriver"] == "awslogs"


def test_fargate_image_pins_the_mlflow_version() -> None:
    dockerfile = (ROOT / "containers" / "tracking" / "Dockerfile").read_text()
    assert f"ARG MLFLOW_VERSION={SELF_HOSTED_MLFLOW_VERSION}\n" in dockerfile
    assert '"mlflow[auth]==${MLFLOW_VERSION}"' in dockerfile


def test_fargate_scales_on_cpu_and_logs_with_retention(prod: SynthesizedApp) -> None:
    template = prod.template("tracking")
    template.has_resource_properties(
        "AWS::ApplicationAutoScaling::ScalableTarget", {"MinCapacity": 2, "MaxCapacity": 4}
    )
    template.has_resource_properties(
        "AWS::ApplicationAutoScaling::ScalingPolicy",
        {"TargetTrackingScalingPolicyConfiguration": Match.object_like({"TargetValue": 70})},
    )
    template.has_resource_properties("AWS::Logs::LogGroup", {"RetentionInDays": 365})
    template.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::TargetGroup",
        {"HealthCheckPath": "/health", "TargetType": "ip", "Port": 5000},
    )


def test_fargate_https_oidc_and_scale_to_zero() -> None:
    oidc = {
        "issuer": "https://idp.example.com",
        "authorization_endpoint": "https://idp.example.com/auth",
        "token_endpoint": "https://idp.example.com/token",
        "user_info_endpoint": "https://idp.example.com/userinfo",
        "client_id": "mlflow",
        "client_secret_name": "mlflow/oidc",
    }
    app = synthesized(
        "dev",
        **{
            "tracking.mode": "fargate",
            "network.egress": "nat_instance",
            "tracking.fargate.certificate_arn": "arn:aws:acm:eu-west-1:123456789012:certificate/abc-123",
            "tracking.fargate.oidc": json.dumps(oidc),
            "tracking.fargate.scale_to_zero": "true",
        },
    )
    template = app.template("tracking")
    template.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::Listener",
        {
            "Port": 443,
            "Protocol": "HTTPS",
            "DefaultActions": Match.array_with(
                [Match.object_like({"Type": "authenticate-oidc", "Order": 1})]
            ),
        },
    )
    text = json.dumps(app.template_json("tracking"))
    assert "{{resolve:secretsmanager:mlflow/oidc:SecretString:::}}" in text
    assert "AdminSecret" not in text  # OIDC replaces basic auth
    template.has_resource_properties(
        "AWS::ApplicationAutoScaling::ScalableTarget",
        {
            "ScheduledActions": Match.array_with(
                [
                    Match.object_like(
                        {
                            "Schedule": "cron(0 7 ? * MON-FRI *)",
                            "ScalableTargetAction": {"MinCapacity": 1, "MaxCapacity": 2},
                        }
                    ),
                    Match.object_like(
                        {"ScalableTargetAction": {"MinCapacity": 0, "MaxCapacity": 0}}
                    ),
                ]
            )
        },
    )


def test_fargate_grant_use_reads_the_client_secret_and_artifacts(prod: SynthesizedApp) -> None:
    backend = prod.platform.tracking.backend
    scratch = cdk.Stack(cdk.App(), "Scratch")
    role = iam.Role(scratch, "Client", assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"))
    backend.grant_use(role)
    policy = role.node.find_child("DefaultPolicy")
    assert isinstance(policy, iam.Policy)
    statements = scratch.resolve(policy.document)["Statement"]
    actions = json.dumps([s["Action"] for s in statements])
    assert "secretsmanager:GetSecretValue" in actions
    assert "s3:PutObject" in actions


# --- configuration errors (in-process) -------------------------------------------------------

ERRORS = {
    "size": (
        {"tracking.size": "Huge"},
        "tracking.size='Huge': input should be 'Small', 'Medium' or 'Large'",
    ),
    "maintenance window": (
        {"tracking.maintenance_window": "TUE 03:30"},
        "tracking.maintenance_window='TUE 03:30': must be Day:HH:MM in UTC",
    ),
    "policy arn": (
        {"tracking.extra_policy_arns": '["arn:aws:iam::aws:polcy/X"]'},
        "tracking.extra_policy_arns.0='arn:aws:iam::aws:polcy/X': must be an IAM policy ARN",
    ),
    "full access policy": (
        {"tracking.extra_policy_arns": '["arn:aws:iam::aws:policy/AmazonS3FullAccess"]'},
        "*FullAccess policies are not allowed",
    ),
    "self-hosted version": (
        {"tracking.mode": "fargate", "tracking.mlflow_version": "3.0"},
        "tracking.mlflow_version='3.0': tracking.mode='fargate' installs an exact MLflow 3 release",
    ),
    "fargate memory": (
        {"tracking.mode": "fargate", "tracking.fargate.memory_mib": "1024"},
        "tracking.fargate.memory_mib=1024 does not fit cpu=1024: use 2048..8192 in steps of 1024",
    ),
    "fargate tasks": (
        {"tracking.fargate.min_tasks": "3", "tracking.fargate.max_tasks": "2"},
        "tracking.fargate.max_tasks=2 is below min_tasks=3",
    ),
    "fargate hours": (
        {"tracking.fargate.working_hours_start": "19", "tracking.fargate.working_hours_end": "7"},
        "tracking.fargate.working_hours_end=7 must be after working_hours_start=19",
    ),
    "fargate days": (
        {"tracking.fargate.working_days": "Monday"},
        "tracking.fargate.working_days='Monday': string should match pattern",
    ),
    "oidc without certificate": (
        {
            "tracking.fargate.oidc": json.dumps(
                {
                    "issuer": "https://i.example.com",
                    "authorization_endpoint": "https://i.example.com/a",
                    "token_endpoint": "https://i.example.com/t",
                    "user_info_endpoint": "https://i.example.com/u",
                    "client_id": "c",
                    "client_secret_name": "s",
                }
            )
        },
        "tracking.fargate.oidc needs tracking.fargate.certificate_arn",
    ),
    "certificate arn": (
        {"tracking.fargate.certificate_arn": "arn:aws:iam::123456789012:server-certificate/x"},
        "tracking.fargate.certificate_arn='arn:aws:iam::123456789012:server-certificate/x': string should match",
    ),
    "fargate without endpoints it needs": (
        {"env": "prod", "network.interface_endpoints": '["sts"]'},
        "network.interface_endpoints lacks ecr_api (SageMaker jobs in the VPC: image from ECR; MLflow on Fargate: image from ECR)",
    ),
    "ec2 with endpoints egress": (
        {"tracking.mode": "ec2", "network.egress": "endpoints"},
        "tracking.mode='ec2' installs MLflow from PyPI at boot and needs internet egress",
    ),
    "ec2 instance type": (
        {"tracking.mode": "ec2", "tracking.ec2.instance_type": "large"},
        "tracking.ec2.instance_type='large': string should match pattern",
    ),
    "ec2 db instance type": (
        {"tracking.mode": "ec2", "tracking.ec2.db_instance_type": "t3.micro"},
        "tracking.ec2.db_instance_type='t3.micro': string should match pattern",
    ),
    "self-hosted without network": (
        {"tracking.mode": "ec2", "network.enabled": "false"},
        "tracking.mode='ec2' runs in a VPC but network.enabled=false",
    ),
}


@pytest.mark.parametrize("overrides, expected", ERRORS.values(), ids=ERRORS.keys())
def test_bad_tracking_setting_is_one_clear_line(overrides: dict[str, str], expected: str) -> None:
    context = {**cdk_json.context(), "env": "dev", **overrides}
    with pytest.raises(ConfigError) as error:
        Settings.from_context(context, {})
    message = str(error.value)
    assert "\n" not in message
    assert expected in message, message


def test_ec2_mode_defaults_the_network_to_a_nat_instance() -> None:
    context = {**cdk_json.context(), "env": "staging", "tracking.mode": "ec2"}
    assert Settings.from_context(context, {}).network.egress == "nat_instance"
    context = {**context, "network.egress": "nat_gateway"}
    assert Settings.from_context(context, {}).network.egress == "nat_gateway"
