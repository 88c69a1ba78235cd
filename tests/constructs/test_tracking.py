"""The tracking backends in a bare stack: MlflowApp, MlflowTrackingServer and Ec2Mlflow."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk.assertions import Match, Template

from mlops_cdk.constructs.ec2_mlflow import Ec2Mlflow
from mlops_cdk.constructs.mlflow_app import MlflowApp
from mlops_cdk.constructs.mlflow_tracking_server import MlflowTrackingServer
from mlops_cdk.constructs.sagemaker_mlflow import MODEL_REGISTRY_ACTIONS
from mlops_cdk.settings import TrackingSettings
from mlops_cdk.tracking_backend import CREDENTIALS_SECRET_ENV, TRACKING_URI_ENV
from tests.constructs.bare import (
    actions_of,
    artifacts,
    bare_stack,
    client_role,
    only,
    policy_statements,
    resources,
    vpc,
)

SageMakerKind = type[MlflowApp] | type[MlflowTrackingServer]
CFN_TYPE = {
    MlflowApp: "AWS::SageMaker::MlflowApp",
    MlflowTrackingServer: "AWS::SageMaker::MlflowTrackingServer",
}


def _sagemaker(
    kind: SageMakerKind, **settings: Any
) -> tuple[cdk.Stack, MlflowApp | MlflowTrackingServer, Template]:
    stack = bare_stack()
    backend = kind(
        stack,
        "Tracking",
        name="mlops-dev",
        settings=TrackingSettings(**settings),
        artifacts=artifacts(stack),
    )
    return stack, backend, Template.from_stack(stack)


def _role_statements(template: Template) -> list[dict[str, Any]]:
    return [
        s
        for p in resources(template, "AWS::IAM::Policy").values()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]


@pytest.mark.parametrize("kind", [MlflowApp, MlflowTrackingServer], ids=lambda k: k.__name__)
def test_the_resource_writes_under_mlflow_as_its_own_role_after_its_policy(
    kind: SageMakerKind,
) -> None:
    _, backend, template = _sagemaker(kind)
    found = resources(template, CFN_TYPE[kind])
    ((logical_id, resource),) = found.items()
    properties = resource["Properties"]
    assert properties["ArtifactStoreUri"]["Fn::Join"][1][-1] == "/mlflow"
    assert properties["WeeklyMaintenanceWindowStart"] == "Tue:03:30"
    assert properties["RoleArn"]["Fn::GetAtt"][0].startswith("TrackingRole")
    # SageMaker validates the role on create: the resource waits for the role AND its policy.
    depends = resource.get("DependsOn", [])
    assert any(d.startswith("TrackingRoleDefaultPolicy") for d in depends), depends
    assert any(d.startswith("TrackingRole") and "Policy" not in d for d in depends), depends
    template.has_resource_properties(
        "AWS::IAM::Role",
        {
            "AssumeRolePolicyDocument": {
                "Statement": [
                    Match.object_like({"Principal": {"Service": "sagemaker.amazonaws.com"}})
                ]
            }
        },
    )
    # Its role reads and writes the artifact prefix only.
    writes = [s for s in _role_statements(template) if "s3:PutObject" in actions_of([s])]
    assert len(writes) == 1 and "/mlflow/*" in repr(writes[0]["Resource"])
    assert backend.tracking_uri == backend.server_arn
    assert backend.client_environment == {TRACKING_URI_ENV: backend.server_arn}
    assert backend.connections is None  # SigV4: no network path to open
    assert logical_id.startswith("Tracking")


def test_the_app_and_server_take_size_version_and_registration_from_settings() -> None:
    _, _, template = _sagemaker(MlflowApp, automatic_model_registration=False)
    assert only(template, "AWS::SageMaker::MlflowApp")["ModelRegistrationMode"] == (
        "AutoModelRegistrationDisabled"
    )
    assert MODEL_REGISTRY_ACTIONS[1] not in actions_of(_role_statements(template))
    _, server, template = _sagemaker(MlflowTrackingServer, size="Medium")
    properties = only(template, "AWS::SageMaker::MlflowTrackingServer")
    assert properties["TrackingServerSize"] == "Medium"
    assert properties["TrackingServerName"] == "mlops-dev"
    assert properties["AutomaticModelRegistration"] is True
    assert (
        properties["MlflowVersion"]
        == server.mlflow_version
        == TrackingSettings().server_mlflow_version
    )


@pytest.mark.parametrize("kind", [MlflowApp, MlflowTrackingServer], ids=lambda k: k.__name__)
def test_automatic_registration_lets_the_role_manage_model_packages_only(
    kind: SageMakerKind,
) -> None:
    _, _, template = _sagemaker(kind, automatic_model_registration=True)
    (registry,) = [
        s
        for s in _role_statements(template)
        if "sagemaker:CreateModelPackageGroup" in actions_of([s])
    ]
    assert actions_of([registry]) == set(MODEL_REGISTRY_ACTIONS)
    assert registry["Resource"] == [
        "arn:aws:sagemaker:eu-west-1:111122223333:model-package-group/*",
        "arn:aws:sagemaker:eu-west-1:111122223333:model-package/*",
    ]


@pytest.mark.parametrize("kind", [MlflowApp, MlflowTrackingServer], ids=lambda k: k.__name__)
def test_grant_use_lets_a_client_in_another_stack_call_this_resource_and_its_artifacts(
    kind: SageMakerKind,
) -> None:
    stack = bare_stack()
    backend = kind(
        stack, "Tracking", name="mlops-dev", settings=TrackingSettings(), artifacts=artifacts(stack)
    )
    client, role = client_role(stack)
    grant = backend.grant_use(role)
    assert isinstance(grant, iam.Grant) and grant.success
    statements = policy_statements(client)
    (api,) = [s for s in statements if set(kind.API_ACTIONS) <= actions_of([s])]
    assert actions_of([api]) == {*kind.API_ACTIONS, *kind.CLIENT_ACTIONS}
    assert "Fn::ImportValue" in api["Resource"]  # this one resource, from its stack
    assert "s3:PutObject" in actions_of(statements)
    assert "kms:Decrypt" in actions_of(statements)


# --- EC2 -------------------------------------------------------------------------------------


@dataclass
class Ec2Built:
    stack: cdk.Stack
    backend: Ec2Mlflow
    template: Template
    client_statements: list[dict[str, Any]]
    grant: iam.Grant


@pytest.fixture(scope="module")
def ec2_built() -> Ec2Built:
    """One Ec2Mlflow, and a client in another stack granted use (before the app synthesizes)."""
    stack = bare_stack()
    network = vpc(stack)
    backend = Ec2Mlflow(
        stack,
        "Tracking",
        name="mlops-dev",
        settings=TrackingSettings(mode="ec2"),
        artifacts=artifacts(stack),
        vpc=network,
        subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED),
        removal=cdk.RemovalPolicy.RETAIN,
        log_retention=logs.RetentionDays.ONE_MONTH,
    )
    client, role = client_role(stack)
    grant = backend.grant_use(role)
    return Ec2Built(stack, backend, Template.from_stack(stack), policy_statements(client), grant)


@pytest.fixture
def ec2_backend(ec2_built: Ec2Built) -> tuple[cdk.Stack, Ec2Mlflow, Template]:
    return ec2_built.stack, ec2_built.backend, ec2_built.template


def test_ec2_runs_one_self_healing_imdsv2_instance_with_an_encrypted_volume(
    ec2_backend: tuple[cdk.Stack, Ec2Mlflow, Template],
) -> None:
    _, _, template = ec2_backend
    template.has_resource(
        "AWS::AutoScaling::AutoScalingGroup",
        {
            "Properties": Match.object_like({"MinSize": "1", "MaxSize": "1"}),
            # The boot script's cfn-signal gates create and replacement.
            "CreationPolicy": {"ResourceSignal": {"Count": 1, "Timeout": "PT20M"}},
            "UpdatePolicy": Match.object_like(
                {"AutoScalingRollingUpdate": Match.object_like({"WaitOnResourceSignals": True})}
            ),
        },
    )
    data = only(template, "AWS::EC2::LaunchTemplate")["LaunchTemplateData"]
    assert data["MetadataOptions"]["HttpTokens"] == "required"
    assert data["InstanceType"] == "t3.small"
    assert data["BlockDeviceMappings"][0]["Ebs"] == {
        "Encrypted": True,
        "VolumeSize": 30,
        "VolumeType": "gp3",
    }
    assert "KeyName" not in data  # Session Manager, no SSH key unless configured


def test_ec2_database_is_private_encrypted_retained_and_open_to_the_server_only(
    ec2_backend: tuple[cdk.Stack, Ec2Mlflow, Template],
) -> None:
    stack, backend, template = ec2_backend
    template.has_resource(
        "AWS::RDS::DBInstance",
        {
            "Properties": Match.object_like(
                {
                    "Engine": "mysql",
                    "StorageEncrypted": True,
                    "PubliclyAccessible": False,
                    "EnableIAMDatabaseAuthentication": True,
                    "DeletionProtection": True,  # RETAIN
                    "MonitoringInterval": 60,
                }
            ),
            "DeletionPolicy": "Retain",
        },
    )
    database_group = stack.resolve(
        backend.database.connections.security_groups[0].security_group_id
    )
    ingress = [
        r["Properties"]
        for r in resources(template, "AWS::EC2::SecurityGroupIngress").values()
        if r["Properties"]["GroupId"] == database_group
    ]
    sources = [r.get("SourceSecurityGroupId") for r in ingress]
    # The server (and the secret-rotation functions of the construct), never an address range.
    assert stack.resolve(backend.security_group.security_group_id) in sources
    assert all(s is not None and s["Fn::GetAtt"][0].startswith("Tracking") for s in sources)
    assert all(r["FromPort"]["Fn::GetAtt"][1] == "Endpoint.Port" for r in ingress)


def test_ec2_outputs_and_tracking_uri_name_the_private_dns_name(
    ec2_backend: tuple[cdk.Stack, Ec2Mlflow, Template],
) -> None:
    _, backend, template = ec2_backend
    template.has_resource_properties("AWS::Route53::HostedZone", {"Name": "mlops-dev.internal."})
    outputs = template.to_json()["Outputs"]
    names = {k for k in outputs if k.startswith("Tracking")}
    for output in ("HostName", "AlarmTopicArn", "ClientCredentialsSecretArn"):
        assert any(output in n for n in names), (output, names)
    assert backend.tracking_uri == "http://mlflow.mlops-dev.internal:5000"
    assert backend.server_arn is None
    assert set(backend.client_environment) == {TRACKING_URI_ENV, CREDENTIALS_SECRET_ENV}
    assert backend.connections is not None


def test_ec2_grant_use_reads_the_client_secret_through_its_key_from_another_stack(
    ec2_built: Ec2Built,
) -> None:
    assert isinstance(ec2_built.grant, iam.Grant) and ec2_built.grant.success
    statements = ec2_built.client_statements
    (secret,) = [s for s in statements if "secretsmanager:GetSecretValue" in actions_of([s])]
    assert "ClientSecret" in repr(secret["Resource"])
    (via_secrets_manager,) = [s for s in statements if "kms:ViaService" in repr(s)]
    assert actions_of([via_secrets_manager]) == {"kms:Decrypt"}
    assert via_secrets_manager["Condition"] == {
        "StringEquals": {"kms:ViaService": "secretsmanager.eu-west-1.amazonaws.com"}
    }
    assert "SecretsKey" in repr(via_secrets_manager["Resource"])
    assert "s3:PutObject" in actions_of(statements)
    # The reader is not written into the secrets key's policy (that would be a cycle).
    assert "ClientStack" not in repr(ec2_built.template.find_resources("AWS::KMS::Key"))


def test_ec2_instance_role_writes_artifacts_registers_its_name_and_uses_session_manager(
    ec2_backend: tuple[cdk.Stack, Ec2Mlflow, Template],
) -> None:
    stack, backend, template = ec2_backend
    role_id = stack.resolve(backend.role.role_arn)["Fn::GetAtt"][0]
    statements = [
        s
        for p in resources(template, "AWS::IAM::Policy").values()
        if {"Ref": role_id} in p["Properties"]["Roles"]
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]
    writes = [s for s in statements if "s3:PutObject" in actions_of([s])]
    assert len(writes) == 1 and "/mlflow/*" in repr(writes[0]["Resource"])
    (dns,) = [s for s in statements if "route53:ChangeResourceRecordSets" in actions_of([s])]
    assert "TrackingZone" in repr(dns["Resource"])
    managed = repr(template.to_json()["Resources"][role_id]["Properties"]["ManagedPolicyArns"])
    assert "AmazonSSMManagedInstanceCore" in managed
