"""StudioDomain in a bare stack: the domain, its users and lifecycle scripts, the execution
role's grants, the MLflow settings parameter and the security group (also toward a
self-hosted MLflow in another stack)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Template
from pydantic import ValidationError

from mlops_cdk.constructs.data_stores import ObjectStore
from mlops_cdk.constructs.mlflow_app import MlflowApp
from mlops_cdk.constructs.studio_domain import STUDIO_LIST_ACTIONS, StudioDomain
from mlops_cdk.settings import StudioSettings, TrackingSettings
from mlops_cdk.tracking_backend import CREDENTIALS_SECRET_ENV, TRACKING_URI_ENV, TrackingBackend
from tests.constructs.bare import actions_of, artifacts, bare_app, bare_stack, only, resources, vpc

MLFLOW_PORT = 5000
SECRET_ARN = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:mlflow-client-AbCdEf"


@dataclass
class SelfHostedDouble:
    """A TrackingBackend as the self-hosted modes offer it: an http URI, a credentials secret
    and ``connections`` on the MLflow port (the protocol, no server behind it)."""

    connections: ec2.Connections
    role: iam.IRole
    tracking_uri: str = "http://mlflow.mlops-dev.internal:5000"
    server_arn: str | None = None
    server_name: str = "mlops-dev"
    mlflow_version: str = "3.1.0"
    artifact_uri: str = "s3://artifacts/mlflow"

    @property
    def client_environment(self) -> Mapping[str, str]:
        return {TRACKING_URI_ENV: self.tracking_uri, CREDENTIALS_SECRET_ENV: SECRET_ARN}

    def grant_use(self, grantee: iam.IGrantable) -> iam.Grant:
        return iam.Grant.add_to_principal(
            grantee=grantee, actions=["secretsmanager:GetSecretValue"], resource_arns=[SECRET_ARN]
        )


def _domain(
    stack: cdk.Stack, tracking: TrackingBackend, **settings: Any
) -> tuple[StudioDomain, ObjectStore]:
    network = vpc(stack)
    key = kms.Key(stack, "DomainKey")
    data = ObjectStore(bucket=s3.Bucket(stack, "Data"), key=key)
    domain = StudioDomain(
        stack,
        "Studio",
        name="mlops-dev",
        settings=StudioSettings(**settings),
        vpc=network,
        subnet_ids=network.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED).subnet_ids,
        key=key,
        tracking=tracking,
        data=data,
        read_prefixes=["iris/training/"],
        read_write_prefixes=["iris/notebooks/"],
    )
    return domain, data


@dataclass
class Built:
    stack: cdk.Stack
    domain: StudioDomain
    tracking: MlflowApp
    template: Template


@pytest.fixture(scope="module")
def built() -> Built:
    stack = bare_stack()
    tracking = MlflowApp(
        stack, "Tracking", name="mlops-dev", settings=TrackingSettings(), artifacts=artifacts(stack)
    )
    domain, _ = _domain(stack, tracking, user_profiles=("alice", "bob"))
    return Built(stack, domain, tracking, Template.from_stack(stack))


def _role_statements(built: Built) -> list[dict[str, Any]]:
    role = built.stack.resolve(built.domain.role.role_name)
    return [
        s
        for p in resources(built.template, "AWS::IAM::Policy").values()
        if role in p["Properties"]["Roles"]
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]


def test_the_domain_is_iam_vpc_only_encrypted_and_named_after_its_key(built: Built) -> None:
    stack, template = built.stack, built.template
    resource = next(iter(resources(template, "AWS::SageMaker::Domain").values()))
    domain = resource["Properties"]
    assert resource["DeletionPolicy"] == "Delete"
    assert domain["AuthMode"] == "IAM"
    assert domain["AppNetworkAccessType"] == "VpcOnly"
    assert len(domain["SubnetIds"]) == 2
    key_arn = {"Fn::GetAtt": [stack.get_logical_id(_cfn(stack, "DomainKey")), "Arn"]}
    assert domain["KmsKeyId"] == key_arn
    # KmsKeyId is create-only: a new key means a new domain, so the name follows the key.
    name_parts = domain["DomainName"]["Fn::Join"]
    assert name_parts[0] == "-" and name_parts[1][0] == "mlops-dev"
    assert "Fn::Select" in name_parts[1][1]
    user = domain["DefaultUserSettings"]
    assert user["ExecutionRole"] == stack.resolve(built.domain.role.role_arn)
    assert user["SecurityGroups"] == [stack.resolve(built.domain.security_group.security_group_id)]
    assert user["SharingSettings"] == {"NotebookOutputOption": "Disabled"}
    idle = user["JupyterLabAppSettings"]["AppLifecycleManagement"]["IdleSettings"]
    assert idle == {
        "LifecycleManagement": "ENABLED",
        "IdleTimeoutInMinutes": 60,
        "MinIdleTimeoutInMinutes": 60,
        "MaxIdleTimeoutInMinutes": 480,
    }
    ebs = user["SpaceStorageSettings"]["DefaultEbsStorageSettings"]
    assert ebs == {"DefaultEbsVolumeSizeInGb": 5, "MaximumEbsVolumeSizeInGb": 100}


def _cfn(stack: cdk.Stack, id: str) -> cdk.CfnElement:
    child = stack.node.find_child(id).node.default_child
    assert isinstance(child, cdk.CfnElement)
    return child


def test_each_user_gets_a_profile_and_each_app_type_a_digest_named_startup_script(
    built: Built,
) -> None:
    template = built.template
    profiles = resources(template, "AWS::SageMaker::UserProfile")
    assert sorted(p["Properties"]["UserProfileName"] for p in profiles.values()) == [
        "alice",
        "bob",
    ]
    assert all(p["DeletionPolicy"] == "Delete" for p in profiles.values())
    configs = {
        c["Properties"]["StudioLifecycleConfigAppType"]: c["Properties"]
        for c in resources(template, "AWS::SageMaker::StudioLifecycleConfig").values()
    }
    assert sorted(configs) == ["CodeEditor", "JupyterLab"]
    assert re.fullmatch(
        r"mlops-dev-mlflow-jl-[0-9a-f]{8}", configs["JupyterLab"]["StudioLifecycleConfigName"]
    )
    assert re.fullmatch(
        r"mlops-dev-mlflow-ce-[0-9a-f]{8}", configs["CodeEditor"]["StudioLifecycleConfigName"]
    )
    domain = only(template, "AWS::SageMaker::Domain")["DefaultUserSettings"]
    lab = domain["JupyterLabAppSettings"]["BuiltInLifecycleConfigArn"]
    assert lab["Fn::GetAtt"][1] == "StudioLifecycleConfigArn"


def test_the_startup_script_reads_its_settings_parameter_which_names_the_tracking_uri(
    built: Built,
) -> None:
    stack, template = built.stack, built.template
    parameter = only(template, "AWS::SSM::Parameter")
    # {"uri": <the app's ARN>, "secret_arn": ""}: a JSON string with the ARN joined in.
    value = json.dumps(parameter["Value"])
    assert '{\\"uri\\":\\"' in value and '\\"secret_arn\\":\\"\\"}' in value
    assert json.dumps(stack.resolve(built.tracking.tracking_uri)) in value
    statements = _role_statements(built)
    (get,) = [s for s in statements if "ssm:GetParameter" in actions_of([s])]
    assert actions_of([get]) == {"ssm:GetParameter"}
    assert get["Resource"] == stack.resolve(built.domain.mlflow_settings.parameter_arn)


def test_the_execution_role_uses_mlflow_its_data_prefixes_and_this_domains_spaces(
    built: Built,
) -> None:
    stack = built.stack
    statements = _role_statements(built)
    (api,) = [s for s in statements if "sagemaker:CallMlflowAppApi" in actions_of([s])]
    assert api["Resource"] == stack.resolve(built.tracking.server_arn)
    writes = [s for s in statements if "s3:PutObject" in actions_of([s])]
    assert "/iris/notebooks/*" in json.dumps(writes)
    assert "/iris/training/*" not in json.dumps(writes)
    domain_id = stack.resolve(built.domain.domain_id)
    (spaces,) = [s for s in statements if "sagemaker:CreateSpace" in actions_of([s])]
    assert json.dumps(domain_id) in json.dumps(spaces["Resource"])
    (lists,) = [s for s in statements if "sagemaker:ListSpaces" in actions_of([s])]
    assert actions_of([lists]) == set(STUDIO_LIST_ACTIONS) and lists["Resource"] == "*"
    (grant,) = [s for s in statements if "kms:CreateGrant" in actions_of([s])]
    assert grant["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}}


def test_studio_apps_send_https_and_talk_to_each_other_only(built: Built) -> None:
    group = built.stack.resolve(built.domain.security_group.security_group_id)
    properties = built.template.to_json()["Resources"][group["Fn::GetAtt"][0]]["Properties"]
    assert properties["SecurityGroupEgress"] == [
        {
            "CidrIp": "0.0.0.0/0",
            "Description": "AWS APIs through the VPC endpoints or NAT",
            "FromPort": 443,
            "IpProtocol": "tcp",
            "ToPort": 443,
        }
    ]
    assert "SecurityGroupIngress" not in properties  # internal traffic: a self-referencing rule
    internal = resources(built.template, "AWS::EC2::SecurityGroupIngress")
    assert [r["Properties"]["SourceSecurityGroupId"] for r in internal.values()] == [group]


def test_a_self_hosted_mlflow_in_another_stack_is_reached_from_the_studio_stack() -> None:
    app = bare_app()
    tracking_stack = bare_stack("Tracking", app=app)
    server_group = ec2.SecurityGroup(tracking_stack, "Server", vpc=vpc(tracking_stack))
    tracking = SelfHostedDouble(
        connections=ec2.Connections(
            security_groups=[server_group], default_port=ec2.Port.tcp(MLFLOW_PORT)
        ),
        role=iam.Role(tracking_stack, "Role", assumed_by=iam.AccountRootPrincipal()),
    )
    studio_stack = bare_stack("Studio", app=app)
    domain, _ = _domain(studio_stack, tracking)
    studio = Template.from_stack(studio_stack)
    # Both sides of the rule land in the client's (Studio's) stack: the tracking stack,
    # deployed first, never depends on its clients.
    (egress,) = [
        r["Properties"]
        for r in resources(studio, "AWS::EC2::SecurityGroupEgress").values()
        if r["Properties"]["FromPort"] == MLFLOW_PORT
    ]
    assert "Fn::ImportValue" in egress["DestinationSecurityGroupId"]
    (ingress,) = [
        r["Properties"]
        for r in resources(studio, "AWS::EC2::SecurityGroupIngress").values()
        if r["Properties"]["FromPort"] == MLFLOW_PORT
    ]
    assert ingress["SourceSecurityGroupId"] == studio_stack.resolve(
        domain.security_group.security_group_id
    )
    assert "Fn::ImportValue" in ingress["GroupId"]
    assert (
        Template.from_stack(tracking_stack).find_resources("AWS::EC2::SecurityGroupIngress") == {}
    )
    # The startup script's parameter names the client credentials secret.
    assert SECRET_ARN in json.dumps(only(studio, "AWS::SSM::Parameter")["Value"])


def test_an_idle_timeout_above_its_maximum_is_refused_in_one_line() -> None:
    with pytest.raises(ValidationError) as raised:
        StudioSettings(idle_timeout_minutes=600, max_idle_timeout_minutes=480)
    (error,) = raised.value.errors()
    assert (
        "studio.idle_timeout_minutes=600 is above studio.max_idle_timeout_minutes=480"
        in (error["msg"])
    )
    assert "\n" not in error["msg"]
