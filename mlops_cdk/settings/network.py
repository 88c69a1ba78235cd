"""network: the VPC that self-hosted tracking, VPC-only Studio and VPC training jobs run in."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal, get_args

from pydantic import AfterValidator, Field

from mlops_cdk.settings.common import LogRetentionDays, Section, no_duplicates


def _check_cidr(value: str) -> str:
    try:
        network = ipaddress.IPv4Network(value)
    except ValueError:
        raise ValueError("must be an IPv4 network such as 10.0.0.0/16") from None
    if not 16 <= network.prefixlen <= 24:
        raise ValueError("must have a prefix length between /16 and /24")
    return value


EgressMode = Literal["endpoints", "nat_gateway", "nat_instance"]
InterfaceEndpoint = Literal[
    "sagemaker_api",
    "sagemaker_runtime",
    "sagemaker_studio",
    "sagemaker_notebook",
    "sagemaker_experiments",
    "sts",
    "logs",
    "monitoring",
    "ecr_api",
    "ecr_docker",
    "secrets_manager",
    "kms",
    "ssm",
    "ssm_messages",
    "ec2_messages",
]
INTERFACE_ENDPOINT_NAMES: tuple[InterfaceEndpoint, ...] = get_args(InterfaceEndpoint)


class NetworkSettings(Section):
    """The VPC that self-hosted tracking, VPC-only Studio and VPC training jobs run in."""

    enabled: bool | None = Field(
        default=None,
        description="null: built when a stack needs it; true: always; false: never.",
    )
    egress: EgressMode = Field(
        default="endpoints",
        description="endpoints (no NAT, VPC endpoints), nat_gateway or nat_instance.",
    )
    cidr: Annotated[str, AfterValidator(_check_cidr)] = Field(
        default="10.0.0.0/16", description="IPv4 range of the VPC, /16 to /24."
    )
    max_azs: int = Field(
        default=2,
        ge=2,
        le=3,
        description="Zones to span; an environment-agnostic synth can see only 2 (set availability_zones).",
    )
    availability_zones: (
        Annotated[tuple[str, ...], no_duplicates("network.availability_zones")] | None
    ) = Field(
        default=None,
        min_length=2,
        max_length=6,
        description="Explicit zones, e.g. [eu-west-1a, eu-west-1b, eu-west-1c]; needs region.",
    )
    nat_gateways: int = Field(
        default=1, ge=1, le=3, description="NAT gateways or instances (nat_* egress)."
    )
    nat_instance_type: str = Field(
        default="t4g.nano",
        pattern=r"^[a-z][a-z0-9-]*\.[a-z0-9]+$",
        description="Instance type of the NAT instance (egress: nat_instance).",
    )
    interface_endpoints: (
        Annotated[tuple[InterfaceEndpoint, ...], no_duplicates("network.interface_endpoints")]
        | None
    ) = Field(
        default=None,
        description="Interface endpoints of endpoints egress (each bills per hour and zone); "
        "null: those the enabled features call (mlops_cdk/settings/endpoints.py).",
    )
    endpoint_zones: int | None = Field(
        default=None,
        ge=1,
        le=6,
        description="Zones holding each interface endpoint; null: 1 when removal_policy=destroy, "
        "every zone of the VPC when retain (prod).",
    )
    flow_log_retention_days: LogRetentionDays = Field(
        default=90, description="Retention of the VPC flow logs (a CloudWatch Logs period)."
    )


# Subnet sizes of the private network construct (mlops_cdk/constructs/private_network.py).
PRIVATE_SUBNET_MASK = 20
PUBLIC_SUBNET_MASK = 24
