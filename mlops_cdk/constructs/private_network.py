"""A VPC whose workloads sit in private subnets, with flow logs and the endpoints they need."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from constructs import Construct, IConstruct

from mlops_cdk import nag
from mlops_cdk.settings import (
    PRIVATE_SUBNET_MASK,
    PUBLIC_SUBNET_MASK,
    NetworkSettings,
    retention_days,
)

# Every interface endpoint the settings can name; which ones an environment builds comes from
# its features (mlops_cdk/settings/endpoints.py), or from network.interface_endpoints.
INTERFACE_ENDPOINTS: dict[str, ec2.InterfaceVpcEndpointAwsService] = {
    "sagemaker_api": ec2.InterfaceVpcEndpointAwsService.SAGEMAKER_API,
    "sagemaker_runtime": ec2.InterfaceVpcEndpointAwsService.SAGEMAKER_RUNTIME,
    "sagemaker_studio": ec2.InterfaceVpcEndpointAwsService.SAGEMAKER_STUDIO,
    "sagemaker_notebook": ec2.InterfaceVpcEndpointAwsService.SAGEMAKER_NOTEBOOK,
    "sagemaker_experiments": ec2.InterfaceVpcEndpointAwsService.SAGEMAKER_EXPERIMENTS,
    "sts": ec2.InterfaceVpcEndpointAwsService.STS,
    "logs": ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS,
    "monitoring": ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_MONITORING,
    "ecr_api": ec2.InterfaceVpcEndpointAwsService.ECR,
    "ecr_docker": ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER,
    "secrets_manager": ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER,
    "kms": ec2.InterfaceVpcEndpointAwsService.KMS,
    "ssm": ec2.InterfaceVpcEndpointAwsService.SSM,
    "ssm_messages": ec2.InterfaceVpcEndpointAwsService.SSM_MESSAGES,
    "ec2_messages": ec2.InterfaceVpcEndpointAwsService.EC2_MESSAGES,
}


class PrivateNetwork(Construct):
    """VPC with private subnets; egress through VPC endpoints, a NAT gateway or a NAT instance."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        settings: NetworkSettings,
        removal: RemovalPolicy,
        interface_endpoints: Sequence[str] = (),
        endpoint_zones: int = 1,
    ) -> None:
        """``interface_endpoints``: built in endpoints egress, each in the private subnets of
        the first ``endpoint_zones`` zones (clients in other zones reach them inside the VPC)."""
        super().__init__(scope, id)
        unknown = [name for name in interface_endpoints if name not in INTERFACE_ENDPOINTS]
        if unknown:
            raise ValueError(
                f"interface endpoint {unknown[0]!r} is not one of {', '.join(INTERFACE_ENDPOINTS)}"
            )
        isolated = settings.egress == "endpoints"
        private_type = (
            ec2.SubnetType.PRIVATE_ISOLATED if isolated else ec2.SubnetType.PRIVATE_WITH_EGRESS
        )
        subnets = [
            ec2.SubnetConfiguration(
                name="private", subnet_type=private_type, cidr_mask=PRIVATE_SUBNET_MASK
            )
        ]
        nat_provider = self._nat_provider(settings)
        if not isolated:
            subnets.append(
                ec2.SubnetConfiguration(
                    name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=PUBLIC_SUBNET_MASK
                )
            )
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr(settings.cidr),
            max_azs=None if settings.availability_zones else settings.max_azs,
            availability_zones=list(settings.availability_zones or []) or None,
            subnet_configuration=subnets,
            nat_gateways=0 if isolated else settings.nat_gateways,
            nat_gateway_provider=nat_provider,
            restrict_default_security_group=True,
        )
        if isinstance(nat_provider, ec2.NatInstanceProviderV2):
            # OUTBOUND_ONLY gives the NAT's group no ingress at all, so nothing the private
            # subnets send would enter it. Let the VPC in; each client's own group decides what
            # leaves (CDK: "provider.connections.allowFrom(...)" after an outbound-only default).
            # https://docs.aws.amazon.com/cdk/api/v2/python/aws_cdk.aws_ec2/README.html#using-nat-instances
            nat_provider.connections.allow_from(
                ec2.Peer.ipv4(settings.cidr),
                ec2.Port.all_traffic(),
                "The private subnets' traffic to the internet",
            )
        self.private_subnets = ec2.SubnetSelection(subnet_type=private_type)
        self.private_subnet_ids = self.vpc.select_subnets(subnet_type=private_type).subnet_ids
        for subnet in self.vpc.public_subnets:
            nat = subnet.node.try_find_child("NatInstance")
            if nat is not None:
                self._acknowledge_nat_instance(nat)

        flow_logs = logs.LogGroup(
            self,
            "FlowLogs",
            retention=retention_days(settings.flow_log_retention_days),
            removal_policy=removal,
        )
        self.vpc.add_flow_log(
            "FlowLog", destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_logs)
        )

        # S3 is reached through a free gateway endpoint in every egress mode.
        self.vpc.add_gateway_endpoint(
            "S3", service=ec2.GatewayVpcEndpointAwsService.S3, subnets=[self.private_subnets]
        )
        self.endpoint_security_group = ec2.SecurityGroup(
            self,
            "EndpointSecurityGroup",
            vpc=self.vpc,
            description="HTTPS from inside the VPC to the interface endpoints",
            allow_all_outbound=False,
        )
        self.endpoint_security_group.add_ingress_rule(
            ec2.Peer.ipv4(settings.cidr), ec2.Port.HTTPS, "HTTPS from the VPC"
        )
        if isolated:
            # An endpoint answers the whole VPC from whichever zones hold its network
            # interfaces; a second zone keeps it up when one zone fails, at a second hourly
            # charge (AWS PrivateLink guide, "Access an AWS service using an interface VPC
            # endpoint": https://docs.aws.amazon.com/vpc/latest/privatelink/create-interface-endpoint.html).
            endpoint_subnets = ec2.SubnetSelection(
                subnets=self.vpc.select_subnets(subnet_type=private_type).subnets[:endpoint_zones]
            )
            for name in interface_endpoints:
                self.vpc.add_interface_endpoint(
                    _construct_id(name),
                    service=INTERFACE_ENDPOINTS[name],
                    subnets=endpoint_subnets,
                    security_groups=[self.endpoint_security_group],
                    private_dns_enabled=True,
                    open=False,  # the shared security group already admits HTTPS from the VPC
                )

    @staticmethod
    def _acknowledge_nat_instance(nat: IConstruct) -> None:
        nag.ack(
            nat,
            "AwsSolutions-EC26",
            "The NAT instance's root volume holds only the stock AMI, no data, and "
            "NatProvider.instanceV2 offers no block-device setting.",
        )
        nag.ack(
            nat,
            "AwsSolutions-EC28",
            "A NAT instance is chosen to save cost; 5-minute basic monitoring is enough for it.",
        )
        nag.ack(
            nat,
            "AwsSolutions-EC29",
            "The NAT instance is stateless and replaced by redeploying; termination "
            "protection would only block that.",
        )

    @staticmethod
    def _nat_provider(settings: NetworkSettings) -> ec2.NatInstanceProviderV2 | None:
        if settings.egress != "nat_instance":
            return None
        return ec2.NatProvider.instance_v2(
            instance_type=ec2.InstanceType(settings.nat_instance_type),
            # The public SSM parameter is resolved by CloudFormation at deploy time: no lookup at
            # synth, so synthesis stays deterministic and offline.
            machine_image=ec2.MachineImage.latest_amazon_linux2023(
                cpu_type=_cpu_type(settings.nat_instance_type)
            ),
            default_allowed_traffic=ec2.NatTrafficDirection.OUTBOUND_ONLY,
        )


def _cpu_type(instance_type: str) -> ec2.AmazonLinuxCpuType:
    family = instance_type.split(".", 1)[0]
    graviton = "g" in family[1:]  # t4g, m7g, c7gn, ...
    return ec2.AmazonLinuxCpuType.ARM_64 if graviton else ec2.AmazonLinuxCpuType.X86_64


def _construct_id(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_")) + "Endpoint"
