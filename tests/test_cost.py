"""`make cost`: the estimate counts what the synthesized templates contain and prices it all."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from mlops_cdk.settings import TRACKING_MODES
from mlops_cdk.settings.cron import runs_per_month, scheduled_capacity_hours
from tests.conftest import app_key, stored_stacks, synthesized, synthesized_stacks, with_app
from tests.matrix import Variant
from tools.cdk_json import ENVIRONMENTS
from tools.cost import Estimate, estimate, load_prices, render
from tools.synthesis import StackTemplate, default_mode, stacks_of

PRICES = load_prices()
HOURS = PRICES.hours


def stacks(env: str, mode: str | None = None) -> list[StackTemplate]:
    """The stacks of ``env`` (with ``mode``), as whichever worker synthesized them stored them."""
    return synthesized_stacks(app_key(env) if mode is None else Variant(env, mode).key)


@with_app(app_key("staging"))  # in staging's xdist group: no second synthesis
def test_stacks_read_back_from_the_session_cache_are_the_apps() -> None:
    app = synthesized("staging")  # stores its stacks for the other workers
    assert stored_stacks(app_key("staging")) == stacks_of(app.assembly)


def cost(env: str, mode: str | None = None) -> Estimate:
    return estimate(stacks(env, mode), PRICES)


def count(env: str, kind: str, mode: str | None = None) -> int:
    return Counter(r["Type"] for s in stacks(env, mode) for r in s.resources.values())[kind]


def test_every_price_is_dated_and_sourced() -> None:
    assert re.fullmatch(r"\d{4}-\d{2}", PRICES.read)
    for key, price in PRICES.prices.items():
        assert price.usd >= 0, key
        assert "https://" in price.source or "Price List" in price.source, key
        assert re.fullmatch(r"\d{4}-\d{2}", price.read), key
        assert price.unit, key


def test_dev_serverless_idle_has_no_network_lines() -> None:
    est = cost("dev")
    assert not any(s.name.endswith("-network") for s in stacks("dev"))
    assert {"VPC interface endpoints", "NAT gateways", "Public IPv4 addresses"}.isdisjoint(
        est.items
    )
    app = est.line("SageMaker MLflow App")
    assert app is not None and app.usd == 0
    assert est.total("idle") < 5  # keys and nominal storage only
    assert est.total("scheduled") == 0  # dev enables no schedule


def test_prod_fargate_prices_alb_tasks_and_endpoints() -> None:
    est = cost("prod")
    endpoints = [
        r
        for s in stacks("prod")
        for r in s.resources.values()
        if r["Type"] == "AWS::EC2::VPCEndpoint"
        and r["Properties"]["VpcEndpointType"] == "Interface"
    ]
    endpoint_azs = sum(len(r["Properties"]["SubnetIds"]) for r in endpoints)
    line = est.line("VPC interface endpoints")
    assert line is not None and line.quantity == endpoint_azs * HOURS
    alb = est.line("Application Load Balancer")
    assert alb is not None
    assert alb.quantity == count("prod", "AWS::ElasticLoadBalancingV2::LoadBalancer") * HOURS
    vcpu = est.line("Fargate vCPU")
    assert vcpu is not None  # prod: min_tasks=2 of 1 vCPU, always on
    assert vcpu.quantity == pytest.approx(2 * 1 * HOURS)
    aurora = est.line("Aurora Serverless v2 capacity")
    assert aurora is not None  # writer + reader at 0.5 ACU minimum
    assert aurora.quantity == pytest.approx(2 * 0.5 * HOURS)


def test_counted_resources_match_the_template() -> None:
    for env in ENVIRONMENTS:
        est = cost(env)
        for kind, item in (
            ("AWS::KMS::Key", "KMS keys"),
            ("AWS::SecretsManager::Secret", "Secrets Manager secrets"),
            ("AWS::CloudWatch::Alarm", "CloudWatch alarms"),
        ):
            line = est.line(item)
            assert (line.quantity if line else 0) == count(env, kind), (env, item)


def test_tracking_server_size_comes_from_the_template() -> None:
    est = cost("staging", "managed")
    server = est.line("MLflow tracking server")
    assert server is not None
    assert server.price_key == "sagemaker.mlflow_tracking_server.Small.hour"
    assert server.usd == pytest.approx(PRICES.prices[server.price_key].usd * HOURS)


def test_scheduled_runs_follow_enabled_schedules_and_job_instances() -> None:
    est = cost("staging")  # training weekly (30 min), inference daily (20 min), ml.m5.large
    training, processing = est.line("Training ml.m5.large"), est.line("Processing ml.m5.large")
    assert training is not None and processing is not None
    assert training.quantity == pytest.approx(HOURS / 24 / 7 * 0.5)
    assert processing.quantity == pytest.approx(HOURS / 24 * 20 / 60)
    assert all(x.part == "scheduled" for x in (training, processing))


@pytest.mark.after_groups  # reads every variant's stacks, stored by the variant's own group
def test_every_resource_is_priced_or_explicitly_free() -> None:
    for env in ENVIRONMENTS:
        for mode in TRACKING_MODES:
            assert cost(env, mode).not_priced == (), (env, mode)


def test_unknown_types_and_prices_are_listed_not_ignored() -> None:
    base = stacks("dev")
    extra = StackTemplate(
        name="extra",
        template={"Resources": {"Cache": {"Type": "AWS::ElastiCache::CacheCluster"}}},
        depends_on=(),
    )
    est = estimate([*base, extra], PRICES)
    assert any("AWS::ElastiCache::CacheCluster Cache (extra)" in n for n in est.not_priced)
    instance = StackTemplate(
        name="extra",
        template={"Resources": {"Box": {"Type": "AWS::EC2::Instance",
                                        "Properties": {"InstanceType": "x9.huge"}}}},
        depends_on=(),
    )  # fmt: skip
    est = estimate([instance], PRICES)
    assert any("ec2.x9.huge.hour" in n for n in est.not_priced)
    assert "Not priced: none" not in render("x", {"serverless": est}, "serverless", PRICES)


@pytest.mark.parametrize(
    ("expression", "runs"),
    [
        ("cron(0 2 ? * SUN *)", HOURS / 24 / 7),
        ("cron(0 6 * * ? *)", HOURS / 24),
        ("cron(0 8,20 ? * MON-FRI *)", 2 * 5 * HOURS / 24 / 7),
        ("rate(1 hour)", HOURS),
        ("cron(0 0 1 * ? *)", 1),
        ("cron(0 6 ? * WED *)", HOURS / 24 / 7),  # WED is a day name, not the W mark
        ("cron(0 6 1 JUN-JUL ? *)", 2 / 12),  # JUL is a month name, not the L mark
        ("cron(0 6 ? * FRI-MON *)", 4 * HOURS / 24 / 7),  # a range that wraps the week
        ("cron(0 6 ? * MON#1 *)", 1),  # the first Monday: once a month
    ],
)
def test_runs_per_month(expression: str, runs: float) -> None:
    assert runs_per_month(expression, HOURS) == pytest.approx(runs)


@pytest.mark.after_groups
def test_table_has_one_column_per_mode_and_marks_the_default() -> None:
    estimates: dict[str, Estimate] = {mode: cost("staging", mode) for mode in TRACKING_MODES}
    text = render("staging", estimates, default_mode("staging"), PRICES)
    header = next(line for line in text.splitlines() if line.startswith("|"))
    assert [c.strip() for c in header.strip("|").split("|")][1:] == [
        "serverless*", "managed", "fargate", "ec2",
    ]  # fmt: skip
    total = next(line for line in text.splitlines() if "Monthly total" in line)
    assert f"{estimates['serverless'].total():,.2f}" in total
    assert "Assumptions:" in text and "Not priced: none." in text


def test_scale_to_zero_counts_only_working_hours() -> None:
    actions = [  # what tracking.fargate.scale_to_zero synthesizes (min_tasks=2, MON-FRI 7-19)
        {"Schedule": "cron(0 7 ? * MON-FRI *)", "ScalableTargetAction": {"MinCapacity": 2}},
        {"Schedule": "cron(0 19 * * ? *)", "ScalableTargetAction": {"MinCapacity": 0}},
    ]
    assert scheduled_capacity_hours(actions) == 2 * 12 * 5


def test_scale_to_zero_over_a_weekend_counts_the_wrapped_days() -> None:
    actions = [  # working_days FRI-MON: Friday, Saturday, Sunday, Monday
        {"Schedule": "cron(0 7 ? * FRI-MON *)", "ScalableTargetAction": {"MinCapacity": 1}},
        {"Schedule": "cron(0 19 ? * FRI-MON *)", "ScalableTargetAction": {"MinCapacity": 0}},
    ]
    assert scheduled_capacity_hours(actions) == 1 * 12 * 4


# --- the targets of the default settings (issue 16) -----------------------------------------


def test_staging_idles_under_30_dollars_and_stays_private() -> None:
    est = cost("staging")
    assert est.total("idle") <= 30, est.total("idle")
    assert est.line("SageMaker MLflow App") is not None  # serverless: no idle server
    assert est.line("EC2 t4g.nano") is not None  # egress through one NAT instance
    resources = [r for s in stacks("staging") for r in s.resources.values()]
    (domain,) = [r for r in resources if r["Type"] == "AWS::SageMaker::Domain"]
    assert domain["Properties"]["AppNetworkAccessType"] == "VpcOnly"
    (nat,) = [r for r in resources if r["Type"] == "AWS::EC2::Instance"]
    assert nat["Properties"]["SourceDestCheck"] is False  # the only thing in a public subnet


@pytest.mark.after_groups
def test_staging_endpoints_only_costs_the_endpoints_its_features_call() -> None:
    endpoints = Variant("staging", "serverless", "deployed", (("network.egress", "endpoints"),))
    est = estimate(synthesized_stacks(endpoints.key), PRICES)
    line = est.line("VPC interface endpoints")
    assert line is not None
    assert line.detail == (
        "6 endpoints in 1 AZs (logs, sagemaker.api, sagemaker.experiments, sagemaker.runtime, "
        "ssm, sts)"
    ), line.detail
    assert est.line("NAT gateways") is None and est.line("EC2 t4g.nano") is None


def test_prod_costs_at_most_300_dollars_with_its_high_availability() -> None:
    est = cost("prod")
    assert est.total() <= 300, est.total()
    resources = [r for s in stacks("prod") for r in s.resources.values()]
    (service,) = [r for r in resources if r["Type"] == "AWS::ECS::Service"]
    assert service["Properties"]["DesiredCount"] >= 2
    assert len(service["Properties"]["NetworkConfiguration"]["AwsvpcConfiguration"]["Subnets"]) == 2
    members = [
        r
        for r in resources
        if r["Type"] == "AWS::RDS::DBInstance" and "DBClusterIdentifier" in r["Properties"]
    ]
    assert len(members) == 2  # writer and a reader (Aurora spreads them over the subnet group)
    endpoints = [
        r
        for r in resources
        if r["Type"] == "AWS::EC2::VPCEndpoint"
        and r["Properties"]["VpcEndpointType"] == "Interface"
    ]
    assert endpoints and all(len(r["Properties"]["SubnetIds"]) == 2 for r in endpoints)
