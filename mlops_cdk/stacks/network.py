"""Network: the private VPC, built only when some stack needs one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aws_cdk import CfnOutput, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from constructs import Construct

from mlops_cdk.constructs.private_network import PrivateNetwork
from mlops_cdk.settings import NetworkSettings


class NetworkStack(Stack):
    """Exposes the VPC, the private subnets and the endpoint security group to other stacks."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        settings: NetworkSettings,
        removal: RemovalPolicy,
        interface_endpoints: Sequence[str] = (),
        endpoint_zones: int = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, id, **kwargs)
        network = PrivateNetwork(
            self,
            "Network",
            settings=settings,
            removal=removal,
            interface_endpoints=interface_endpoints,
            endpoint_zones=endpoint_zones,
        )
        self.vpc: ec2.IVpc = network.vpc
        self.private_subnets = network.private_subnets
        self.egress = settings.egress

        CfnOutput(self, "VpcId", value=self.vpc.vpc_id)
        self.private_subnet_ids: list[str] = network.private_subnet_ids
        CfnOutput(self, "PrivateSubnetIds", value=",".join(self.private_subnet_ids))
        CfnOutput(self, "Egress", value=settings.egress)
