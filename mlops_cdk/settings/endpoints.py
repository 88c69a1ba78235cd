"""Which interface endpoints an environment needs: one function from its features to services.

In ``network.egress=endpoints`` a private subnet reaches an AWS API only through an interface
endpoint (S3 goes through the free gateway endpoint), and each endpoint bills per hour and zone.
So the network builds exactly the endpoints the enabled features call from inside the VPC,
each with the reason it is there. Features that call AWS from outside the VPC add nothing:
the schedules (EventBridge Scheduler), the Lambda launcher and the pipelines' orchestration
run in AWS's own network, and a SageMaker job outside the VPC (``pipelines.vpc=false``) too.

The reachability check (tests/reachability.py) derives the same needs independently from the
templates (what each VPC client's IAM role may call) and fails when an endpoint is missing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlops_cdk.settings.network import InterfaceEndpoint
from mlops_cdk.settings.tracking import SELF_HOSTED_MODES

if TYPE_CHECKING:
    from mlops_cdk.settings.root import Settings

Needs = tuple[tuple[InterfaceEndpoint, str], ...]

# Why a service is called, per caller.
_STUDIO: Needs = (
    # "you won't be able to run a Studio notebook unless your VPC has an interface endpoint to
    # the SageMaker API and runtime" (VpcOnly mode), and STS for the apps' credentials checks:
    # https://docs.aws.amazon.com/sagemaker/latest/dg/studio-notebooks-and-internet-access.html
    ("sagemaker_api", "Studio apps (VpcOnly): SageMaker API"),
    ("sagemaker_runtime", "Studio apps (VpcOnly): SageMaker runtime"),
    ("sts", "Studio apps (VpcOnly): STS"),
    ("logs", "Studio apps: their execution role writes logs"),
    ("ssm", "Studio apps: the start-up script reads the MLflow settings parameter"),
)
# Not needed by any feature: sagemaker_studio (aws.sagemaker.<region>.studio) serves browsers
# that open Studio from inside the VPC (users here open it through its presigned URL from the
# internet: https://docs.aws.amazon.com/sagemaker/latest/dg/studio-interface-endpoint.html);
# sagemaker_notebook the same for notebook instances; monitoring, kms, ssm_messages and
# ec2_messages no VPC client calls (KMS is called by S3, Secrets Manager and SageMaker for
# the caller; Session Manager serves the ec2 mode, which always has NAT egress).
_JOBS: Needs = (
    # https://docs.aws.amazon.com/sagemaker/latest/dg/train-vpc.html: the job image from ECR and
    # the container's logs to CloudWatch through the job's subnets.
    ("ecr_api", "SageMaker jobs in the VPC: image from ECR"),
    ("ecr_docker", "SageMaker jobs in the VPC: image layers from ECR"),
    ("logs", "SageMaker jobs in the VPC: container logs"),
)
_FARGATE: Needs = (
    # Fargate (platform 1.4) pulls the image, ships logs and reads the task's secrets through
    # the task's own network interface:
    # https://docs.aws.amazon.com/AmazonECS/latest/developerguide/vpc-endpoints.html
    ("ecr_api", "MLflow on Fargate: image from ECR"),
    ("ecr_docker", "MLflow on Fargate: image layers from ECR"),
    ("logs", "MLflow on Fargate: awslogs driver"),
    ("secrets_manager", "MLflow on Fargate: database and basic-auth secrets"),
)
_SAGEMAKER_MLFLOW: Needs = (
    # The SageMaker-hosted MLflow's tracking API is its own endpoint service (aws.sagemaker.
    # <region>.experiments); describing the server or App goes through the SageMaker API.
    # https://docs.aws.amazon.com/sagemaker/latest/dg/mlflow-interface-endpoint.html
    ("sagemaker_experiments", "MLflow clients: the SageMaker MLflow tracking API"),
    ("sagemaker_api", "MLflow clients: describe the SageMaker MLflow server or App"),
)
_BASIC_AUTH: Needs = (("secrets_manager", "MLflow clients: the basic-auth client credentials"),)


def needed_endpoints(settings: Settings) -> dict[InterfaceEndpoint, str]:
    """Each interface endpoint the environment's features call from the VPC, with the reasons.

    Empty when there is no network or it has NAT egress (everything leaves through the NAT).
    """
    if not settings.needs_network or settings.network.egress != "endpoints":
        return {}
    mode = settings.tracking.mode
    self_hosted = mode in SELF_HOSTED_MODES
    basic_auth = mode == "fargate" and settings.tracking.fargate.oidc is None
    mlflow_client: Needs = (_BASIC_AUTH if basic_auth else ()) if self_hosted else _SAGEMAKER_MLFLOW

    wanted: list[tuple[InterfaceEndpoint, str]] = []
    studio_in_vpc = settings.studio.enabled and settings.studio.network_access == "VpcOnly"
    if studio_in_vpc:
        wanted += [*_STUDIO, *mlflow_client]
    if settings.jobs_in_vpc:
        wanted += [*_JOBS, *mlflow_client]
    if mode == "fargate":
        wanted += _FARGATE
    reasons: dict[InterfaceEndpoint, list[str]] = {}
    for name, why in wanted:
        if why not in reasons.setdefault(name, []):
            reasons[name].append(why)
    return {name: "; ".join(whys) for name, whys in sorted(reasons.items())}


def interface_endpoints(settings: Settings) -> tuple[InterfaceEndpoint, ...]:
    """The endpoints the network builds: ``network.interface_endpoints``, else the needed ones."""
    if settings.network.egress != "endpoints":
        return ()
    explicit = settings.network.interface_endpoints
    return explicit if explicit is not None else tuple(needed_endpoints(settings))


def endpoint_zones(settings: Settings) -> int:
    """Zones that hold each interface endpoint: ``network.endpoint_zones``, else 1 in an
    environment that is torn down (removal_policy=destroy) and every zone of the VPC in one
    that is kept (retain: prod), so losing a zone does not cut the kept one off AWS's APIs."""
    network = settings.network
    zones = len(network.availability_zones or ()) or network.max_azs
    if network.endpoint_zones is not None:
        return min(network.endpoint_zones, zones)
    return 1 if settings.removal_policy == "destroy" else zones
