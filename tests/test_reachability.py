"""Every client -> server pair the platform needs is allowed on both sides, in every variant.

The model and how it derives the pairs from the templates: tests/reachability.py.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.aws_calls import endpoint_service, services_called
from tests.conftest import with_app
from tests.matrix import Variant, variant_params
from tests.reachability import Platform, flatten
from tools.synthesis import templates_by_name


def _platform(variant: Variant) -> Platform:
    app = variant.app()
    return Platform.of(templates_by_name(app.assembly))


@pytest.mark.parametrize("variant", variant_params())
def test_every_client_reaches_its_servers_on_both_sides(variant: Variant) -> None:
    platform = _platform(variant)
    failures = platform.failures()
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("variant", variant_params())
def test_every_interface_endpoint_is_called_by_some_client(variant: Variant) -> None:
    """An endpoint bills per hour and zone: each one built must serve a VPC client's calls."""
    assert _platform(variant).unused_endpoints == []


@pytest.mark.parametrize("variant", variant_params())
def test_the_pairs_cover_what_the_platform_runs(variant: Variant) -> None:
    """Guards the check against passing on nothing: the pairs it derives name every party."""
    app = variant.app()
    platform = _platform(variant)
    reasons = {pair.why for pair in platform.pairs}
    settings = app.settings
    self_hosted = settings.tracking.mode in ("fargate", "ec2")
    if settings.jobs_in_vpc:
        # Every job step (a tuning step's training jobs too) is a client in the private subnets.
        assert app.platform.pipelines is not None
        pipelines = app.platform.pipelines
        steps = {
            step.name
            for built in (pipelines.training, pipelines.inference)
            for step in built.definition.job_steps()
        }
        clients = {
            node.name.split(" ")[1] for node in platform.vpc_clients if node.name.startswith("job ")
        }
        assert steps <= clients, f"job steps not placed in the VPC: {sorted(steps - clients)}"
    if self_hosted:
        clients = {
            pair.client.name.split(" ")[0]
            for pair in platform.pairs
            if pair.why == "MLflow tracking"
        }
        assert "job" in clients
        assert "instances of one job" in reasons
        if app.has_stack("studio"):
            assert "Studio" in clients
        basic_auth = settings.tracking.mode == "ec2" or settings.tracking.fargate.oidc is None
        if basic_auth:  # the users' secret rotation function calls MLflow's auth API
            assert "function" in clients
        assert "MLflow's backend store" in reasons
        assert "secret rotation logs in to the database" in reasons
    if settings.tracking.mode == "fargate":
        assert "listener forwards to the tasks" in reasons
    if app.has_stack("network"):
        egress = settings.network.egress
        if egress == "endpoints":
            assert "AWS API via interface endpoint" in reasons
        else:
            assert "AWS APIs through the NAT" in reasons
        if egress == "nat_instance":
            assert "private subnet's default route" in reasons


def _templates(variant: Variant) -> dict[str, dict[str, Any]]:
    return templates_by_name(variant.app().assembly)  # a new copy on each call


def _drop(templates: dict[str, dict[str, Any]], type_: str, description: str) -> None:
    for template in templates.values():
        resources = template["Resources"]
        for logical_id in [
            k
            for k, r in resources.items()
            if r["Type"] == type_ and r["Properties"].get("Description") == description
        ]:
            del resources[logical_id]


PROD_FARGATE = Variant("prod", "fargate")
STAGING_NAT_INSTANCE = Variant(
    "staging", "fargate", "deployed", (("network.egress", "nat_instance"),)
)


def test_a_missing_server_side_ingress_is_caught() -> None:
    """The defect of issue 11: the client's egress without the server's ingress."""
    templates = _templates(PROD_FARGATE)
    _drop(templates, "AWS::EC2::SecurityGroupIngress", "Studio notebooks to MLflow")
    failures = Platform.of(templates).failures()
    assert len(failures) == 1, failures
    assert failures[0].startswith("Studio apps (mlops-prod-studio) -> load balancer")
    assert failures[0].endswith(
        "no ingress on [('mlops-prod-tracking', 'FargateLoadBalancerSecurityGroupE870D964')]"
    )


def test_a_missing_client_side_egress_is_caught() -> None:
    templates = _templates(PROD_FARGATE)
    _drop(templates, "AWS::EC2::SecurityGroupEgress", "MLflow from ML jobs")
    failures = Platform.of(templates).failures()
    assert len(failures) == 3, failures  # training, inference, and the preflight reading the alias
    assert all("no egress from" in f and "(MLflow tracking)" in f for f in failures)


def test_a_cidr_peer_must_cover_the_client_subnets() -> None:
    templates = _templates(PROD_FARGATE)
    network = templates["mlops-prod-network"]["Resources"]
    group = next(r for k, r in network.items() if k.startswith("NetworkEndpointSecurityGroup"))
    group["Properties"]["SecurityGroupIngress"][0]["CidrIp"] = "10.0.0.0/20"  # one subnet of two
    failures = Platform.of(templates).failures()
    assert failures
    assert all("AWS API via interface endpoint" in f and "no ingress" in f for f in failures)


def test_a_nat_instance_without_ingress_is_caught() -> None:
    templates = _templates(STAGING_NAT_INSTANCE)
    network = templates["mlops-staging-network"]["Resources"]
    group = next(r for k, r in network.items() if k.startswith("NetworkVpcNatSecurityGroup"))
    del group["Properties"]["SecurityGroupIngress"]
    failures = Platform.of(templates).failures()
    assert failures
    assert all("-> NAT instance" in f and "no ingress" in f for f in failures)


def test_distributed_training_needs_the_job_group_open_to_itself() -> None:
    templates = _templates(PROD_FARGATE)
    _drop(templates, "AWS::EC2::SecurityGroupIngress", "From the instances of a job")
    failures = Platform.of(templates).failures()
    assert len(failures) == 1, failures
    assert "on all traffic (instances of one job): no ingress" in failures[0]


STAGING_ENDPOINTS = Variant("staging", "serverless", "deployed", (("network.egress", "endpoints"),))


def _drop_endpoint(templates: dict[str, dict[str, Any]], service: str) -> None:
    for template in templates.values():
        resources = template["Resources"]
        for logical_id in [
            k
            for k, r in resources.items()
            if r["Type"] == "AWS::EC2::VPCEndpoint"
            and endpoint_service(flatten(r["Properties"]["ServiceName"])).endswith(service)
        ]:
            del resources[logical_id]


def test_a_missing_endpoint_a_feature_needs_is_caught() -> None:
    """Secrets Manager: the Fargate tasks (their secrets), the jobs and Studio (the basic-auth
    client credentials) and the MLflow users' rotation function call it; without its endpoint
    and without NAT none of them can."""
    templates = _templates(PROD_FARGATE)
    _drop_endpoint(templates, "secretsmanager")
    failures = Platform.of(templates).failures()
    assert failures
    assert all("calls secretsmanager" in f and "no interface endpoint" in f for f in failures)
    clients = {f.split(" ")[0] for f in failures}
    assert clients == {"ECS", "job", "Studio", "function"}, failures


def test_a_missing_endpoint_of_studio_is_caught() -> None:
    """VpcOnly Studio with the serverless MLflow App: the start-up script reads SSM, and the
    apps call the MLflow App's tracking API (sagemaker.experiments)."""
    for service in ("ssm", "experiments"):
        templates = _templates(STAGING_ENDPOINTS)
        _drop_endpoint(templates, service)
        failures = Platform.of(templates).failures()
        assert len(failures) == 1, failures
        assert failures[0].startswith("Studio apps (mlops-staging-studio) calls ")


@with_app(STAGING_ENDPOINTS.key)
def test_an_endpoint_nobody_calls_is_reported() -> None:
    templates = _templates(STAGING_ENDPOINTS)
    network = templates["mlops-staging-network"]["Resources"]
    (ssm,) = [
        r
        for r in network.values()
        if r["Type"] == "AWS::EC2::VPCEndpoint"
        and endpoint_service(flatten(r["Properties"]["ServiceName"])) == "ssm"
    ]
    extra = copy.deepcopy(ssm)
    extra["Properties"]["ServiceName"] = "com.amazonaws.eu-west-1.kms"
    network["ExtraKmsEndpoint"] = extra
    assert Platform.of(templates).unused_endpoints == ["endpoint ExtraKmsEndpoint"]


def test_actions_map_to_the_endpoints_that_answer_them() -> None:
    found, unknown = services_called(
        [
            "ecr:BatchGetImage",
            "logs:PutLogEvents",
            "sagemaker:CallMlflowAppApi",
            "sagemaker:DescribeMlflowApp",
            "kms:Decrypt",  # S3/Secrets Manager call KMS for the client
            "iam:PassRole",
            "ec2:CreateNetworkInterface",  # SageMaker/Lambda attach the client's ENI
            "cloudwatch:PutMetricData",  # SageMaker publishes a job's metrics
            "bedrock:InvokeModel",
        ],
        sagemaker_job=True,
    )
    assert set(found) == {
        "ecr.api", "ecr.dkr", "logs", "sagemaker.experiments", "sagemaker.api",
    }  # fmt: skip
    assert unknown == ["bedrock:InvokeModel"]  # an unknown service is a failure, never a pass
    assert services_called(["cloudwatch:PutMetricData"])[0] == {
        "monitoring": {"cloudwatch:PutMetricData"}
    }
