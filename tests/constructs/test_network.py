"""PrivateNetwork in a bare stack: subnets, egress per mode, flow logs, endpoints."""

from __future__ import annotations

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Match, Template

from mlops_cdk.constructs.private_network import PrivateNetwork
from mlops_cdk.settings import NetworkSettings
from tests.constructs.bare import bare_stack, only, resources

CIDR = "10.0.0.0/16"


def _network(
    egress: str, interface_endpoints: tuple[str, ...] = (), endpoint_zones: int = 1
) -> tuple[PrivateNetwork, Template]:
    stack = bare_stack()
    network = PrivateNetwork(
        stack,
        "Network",
        settings=NetworkSettings(egress=egress, cidr=CIDR, max_azs=2),
        removal=cdk.RemovalPolicy.DESTROY,
        interface_endpoints=interface_endpoints,
        endpoint_zones=endpoint_zones,
    )
    return network, Template.from_stack(stack)


def _subnets_public(template: Template) -> list[bool]:
    return [
        subnet["Properties"]["MapPublicIpOnLaunch"]
        for subnet in resources(template, "AWS::EC2::Subnet").values()
    ]


def test_endpoints_egress_has_only_private_subnets_and_the_asked_endpoints() -> None:
    network, template = _network("endpoints", ("sts", "logs"), endpoint_zones=1)
    template.has_resource_properties("AWS::EC2::VPC", {"CidrBlock": CIDR})
    assert _subnets_public(template) == [False, False]  # two zones, isolated
    template.resource_count_is("AWS::EC2::NatGateway", 0)
    template.resource_count_is("AWS::EC2::InternetGateway", 0)
    # S3 through the free gateway endpoint; the two interface endpoints in one zone's subnet.
    (gateway,) = [
        e["Properties"]
        for e in resources(template, "AWS::EC2::VPCEndpoint").values()
        if e["Properties"].get("VpcEndpointType") == "Gateway"
    ]
    assert ".s3" in repr(gateway["ServiceName"])
    assert len(gateway["RouteTableIds"]) == 2  # both private subnets' route tables
    interfaces = [
        e["Properties"]
        for e in resources(template, "AWS::EC2::VPCEndpoint").values()
        if e["Properties"].get("VpcEndpointType") == "Interface"
    ]
    assert sorted(e["ServiceName"] for e in interfaces) == [
        "com.amazonaws.eu-west-1.logs",
        "com.amazonaws.eu-west-1.sts",
    ]
    assert all(e["PrivateDnsEnabled"] is True and len(e["SubnetIds"]) == 1 for e in interfaces)
    # The endpoints' group admits HTTPS from the VPC only and sends nothing.
    group = template.find_resources(
        "AWS::EC2::SecurityGroup",
        {
            "Properties": {
                "GroupDescription": "HTTPS from inside the VPC to the interface endpoints"
            }
        },
    )
    (properties,) = [g["Properties"] for g in group.values()]
    assert properties["SecurityGroupIngress"] == [
        {
            "CidrIp": CIDR,
            "Description": "HTTPS from the VPC",
            "FromPort": 443,
            "IpProtocol": "tcp",
            "ToPort": 443,
        }
    ]
    assert properties["SecurityGroupEgress"][0]["CidrIp"] == "255.255.255.255/32"  # none
    assert len(network.private_subnet_ids) == 2


def test_a_second_endpoint_zone_puts_each_endpoint_in_two_subnets() -> None:
    _, template = _network("endpoints", ("sts",), endpoint_zones=2)
    (endpoint,) = [
        e["Properties"]
        for e in resources(template, "AWS::EC2::VPCEndpoint").values()
        if e["Properties"].get("VpcEndpointType") == "Interface"
    ]
    assert len(endpoint["SubnetIds"]) == 2


def test_flow_logs_go_to_a_log_group_with_the_configured_retention() -> None:
    _, template = _network("endpoints")
    template.has_resource_properties(
        "AWS::EC2::FlowLog", {"ResourceType": "VPC", "LogDestinationType": "cloud-watch-logs"}
    )
    assert only(template, "AWS::Logs::LogGroup")["RetentionInDays"] == 90


def test_nat_gateway_egress_adds_public_subnets_and_no_interface_endpoints() -> None:
    _, template = _network("nat_gateway", ("sts",))
    assert sorted(_subnets_public(template)) == [False, False, True, True]
    template.resource_count_is("AWS::EC2::NatGateway", 1)  # network.nat_gateways default
    template.resource_count_is("AWS::EC2::Instance", 0)
    # Egress reaches AWS APIs through the NAT: interface endpoints are built only without one.
    template.resource_count_is("AWS::EC2::VPCEndpoint", 1)  # S3 gateway


def test_nat_instance_egress_is_a_graviton_instance_that_admits_the_vpc() -> None:
    _, template = _network("nat_instance")
    template.resource_count_is("AWS::EC2::NatGateway", 0)
    instance = only(template, "AWS::EC2::Instance")
    assert instance["InstanceType"] == "t4g.nano"
    assert instance["SourceDestCheck"] is False
    parameters = template.to_json()["Parameters"]
    assert any("arm64" in str(p.get("Default", "")) for p in parameters.values())
    template.has_resource_properties(
        "AWS::EC2::SecurityGroup",
        {
            "SecurityGroupIngress": [
                Match.object_like({"CidrIp": CIDR, "IpProtocol": "-1"}),
            ]
        },
    )


def test_an_unknown_interface_endpoint_is_refused_in_one_line() -> None:
    with pytest.raises(ValueError, match=r"bogus.*not one of"):
        _network("endpoints", ("bogus",))
