"""Fine-grained assertions on the network stack and when it is built."""

from __future__ import annotations

from typing import get_args

import pytest

from mlops_cdk.constructs.private_network import INTERFACE_ENDPOINTS
from mlops_cdk.settings import InterfaceEndpoint, Settings
from mlops_cdk.settings.endpoints import needed_endpoints
from tests.conftest import synthesized
from tests.synth import SynthesizedApp, synthesize
from tools import cdk_json


def test_dev_has_no_network_by_default(dev: SynthesizedApp) -> None:
    assert not dev.has_stack("network")
    assert dev.platform.network is None


@pytest.mark.parametrize("env", ["staging", "prod"])
def test_staging_and_prod_have_a_network(env: str) -> None:
    assert synthesized(env).has_stack("network")


def test_endpoint_egress_has_no_nat_and_no_public_subnet(prod: SynthesizedApp) -> None:
    template = prod.template("network")
    template.resource_count_is("AWS::EC2::NatGateway", 0)
    template.resource_count_is("AWS::EC2::InternetGateway", 0)
    for subnet in template.find_resources("AWS::EC2::Subnet").values():
        assert subnet["Properties"]["MapPublicIpOnLaunch"] is False


def test_endpoint_egress_creates_the_needed_endpoints_in_every_zone_in_prod(
    prod: SynthesizedApp,
) -> None:
    template = prod.template("network")
    endpoints = template.find_resources("AWS::EC2::VPCEndpoint")
    interface = [
        e for e in endpoints.values() if e["Properties"].get("VpcEndpointType") == "Interface"
    ]
    gateway = [e for e in endpoints.values() if e["Properties"].get("VpcEndpointType") == "Gateway"]
    assert len(interface) == len(prod.settings.interface_endpoints) == 8
    assert len(gateway) == 1  # S3
    for endpoint in interface:
        assert endpoint["Properties"]["PrivateDnsEnabled"] is True
        assert len(endpoint["Properties"]["SubnetIds"]) == 2  # prod keeps a zone's failure out


def _endpoints(env: str, **overrides: str) -> dict[str, str]:
    settings = Settings.from_context({**cdk_json.context(), "env": env, **overrides}, environ={})
    return {str(name): why for name, why in needed_endpoints(settings).items()}


def test_endpoints_follow_the_features() -> None:
    # prod: fargate MLflow with basic auth, VPC jobs, VpcOnly Studio.
    assert set(_endpoints("prod")) == {
        "ecr_api", "ecr_docker", "logs", "secrets_manager",  # Fargate tasks and VPC jobs
        "sagemaker_api", "sagemaker_runtime", "sts", "ssm",  # Studio apps
    }  # fmt: skip
    # SageMaker-hosted MLflow: Studio calls its tracking API, jobs stay outside the VPC.
    serverless = _endpoints("staging", **{"network.egress": "endpoints"})
    assert set(serverless) == {
        "sagemaker_api", "sagemaker_runtime", "sts", "logs", "ssm", "sagemaker_experiments",
    }  # fmt: skip
    assert "Studio apps" in serverless["ssm"]
    # No Studio and jobs outside the VPC: nothing calls AWS from the VPC.
    assert _endpoints("dev", **{"network.enabled": "true"}) == {}
    # Jobs in the VPC with SageMaker MLflow: ECR, logs and the MLflow API, no Studio endpoints.
    jobs = _endpoints("dev", **{"pipelines.vpc": "true"})
    assert set(jobs) == {
        "ecr_api", "ecr_docker", "logs", "sagemaker_api", "sagemaker_experiments",
    }  # fmt: skip
    # NAT egress needs no interface endpoint.
    assert _endpoints("prod", **{"network.egress": "nat_gateway"}) == {}


def test_endpoints_sit_in_one_zone_outside_prod() -> None:
    app = synthesize("staging", {"network.egress": "endpoints"})
    endpoints = app.template_json("network")["Resources"].values()
    interface = [
        e
        for e in endpoints
        if e["Type"] == "AWS::EC2::VPCEndpoint"
        and e["Properties"]["VpcEndpointType"] == "Interface"
    ]
    assert interface and all(len(e["Properties"]["SubnetIds"]) == 1 for e in interface)


def test_every_configurable_endpoint_has_a_service() -> None:
    assert set(INTERFACE_ENDPOINTS) == set(get_args(InterfaceEndpoint))


def test_endpoint_security_group_admits_only_https_from_the_vpc(prod: SynthesizedApp) -> None:
    template = prod.template("network")
    groups = template.find_resources("AWS::EC2::SecurityGroup")
    (endpoint_group,) = [
        g for k, g in groups.items() if k.startswith("NetworkEndpointSecurityGroup")
    ]
    assert endpoint_group["Properties"]["SecurityGroupIngress"] == [
        {
            "CidrIp": "10.0.0.0/16",
            "Description": "HTTPS from the VPC",
            "FromPort": 443,
            "IpProtocol": "tcp",
            "ToPort": 443,
        }
    ]


def test_flow_logs_go_to_a_log_group_with_retention(any_env: SynthesizedApp) -> None:
    if not any_env.has_stack("network"):
        pytest.skip("no network in this environment")
    template = any_env.template("network")
    template.resource_count_is("AWS::EC2::FlowLog", 1)
    template.has_resource_properties("AWS::Logs::LogGroup", {"RetentionInDays": 90})


def test_explicit_zones_are_spanned() -> None:
    app = synthesize(
        "dev",
        {
            "region": "eu-west-1",
            "network.enabled": "true",
            "network.availability_zones": '["eu-west-1a", "eu-west-1b", "eu-west-1c"]',
        },
    )
    subnets = app.template("network").find_resources("AWS::EC2::Subnet").values()
    assert sorted(s["Properties"]["AvailabilityZone"] for s in subnets) == [
        "eu-west-1a",
        "eu-west-1b",
        "eu-west-1c",
    ]


def test_nat_gateway_egress() -> None:
    app = synthesize("dev", {"network.enabled": "true", "network.egress": "nat_gateway"})
    template = app.template("network")
    template.resource_count_is("AWS::EC2::NatGateway", 1)
    endpoints = template.find_resources("AWS::EC2::VPCEndpoint")
    assert [e["Properties"]["VpcEndpointType"] for e in endpoints.values()] == ["Gateway"]


def test_nat_instance_egress_uses_the_current_graviton_ami() -> None:
    app = synthesize("dev", {"network.enabled": "true", "network.egress": "nat_instance"})
    template = app.template_json("network")
    resources = template["Resources"].values()
    assert not [r for r in resources if r["Type"] == "AWS::EC2::NatGateway"]
    (instance,) = [r for r in resources if r["Type"] == "AWS::EC2::Instance"]
    assert instance["Properties"]["InstanceType"] == "t4g.nano"
    # The AMI is the public SSM parameter, resolved by CloudFormation, not looked up at synth.
    image = instance["Properties"]["ImageId"]["Ref"]
    parameter = template["Parameters"][image]
    assert parameter["Type"] == "AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>"
    assert parameter["Default"].startswith("/aws/service/ami-amazon-linux-latest/al2023-ami-")
    assert parameter["Default"].endswith("-arm64")
    # Outbound-only gives the NAT no ingress: the private subnets (the VPC) must be let in,
    # and nothing else (tests/test_reachability.py proves every client gets through).
    (group,) = [
        r
        for r in resources
        if r["Type"] == "AWS::EC2::SecurityGroup"
        and r["Properties"]["GroupDescription"] == "Security Group for NAT instances"
    ]
    assert [rule["CidrIp"] for rule in group["Properties"]["SecurityGroupIngress"]] == [
        "10.0.0.0/16"
    ]
