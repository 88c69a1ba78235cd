"""Monthly cost estimate of an environment, counted from its synthesized templates.

Every quantity comes from the CloudFormation templates the app synthesizes (interface endpoints
and the subnets they sit in, NAT gateways, the tracking server size, Fargate task CPU/memory and
task count, Aurora minimum capacity, instance types, the pipeline definitions' job instances and
the schedules that are enabled); every price comes from the dated table in ``pricing/``. The
estimate is split into what the environment costs idle and what its scheduled runs add, with
one column per tracking mode (the environment is synthesized once per mode).

    .venv/bin/python -m tools.cost                      # every environment
    .venv/bin/python -m tools.cost --env staging        # one environment
    .venv/bin/python -m tools.cost --env prod -c tracking.fargate.scale_to_zero=true
    .venv/bin/python -m tools.cost --refresh-prices     # rewrite pricing/ from the Price List API

A resource type the estimator does not know is listed as "not priced", never ignored.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from mlops_cdk.constructs.pipeline_definition import all_steps
from mlops_cdk.settings import TRACKING_MODES, ConfigError
from mlops_cdk.settings.cron import runs_per_month, scheduled_capacity_hours
from tools import price_list
from tools.cdk_json import ENVIRONMENTS
from tools.synthesis import (
    ROOT,
    StackTemplate,
    default_mode,
    local_refs,
    synthesize,
)

PRICE_TABLE = ROOT / "pricing" / "us-east-1.yaml"

Part = Literal["idle", "scheduled"]

# Types that cost nothing by themselves (or are priced through the resource that uses them).
NO_CHARGE = frozenset(
    {
        "AWS::ApplicationAutoScaling::ScalableTarget",  # read by the ECS service line
        "AWS::ApplicationAutoScaling::ScalingPolicy",
        "AWS::CDK::Metadata",
        "AWS::EC2::InternetGateway",
        "AWS::EC2::LaunchTemplate",  # priced through its auto-scaling group
        "AWS::EC2::Route",
        "AWS::EC2::RouteTable",
        "AWS::EC2::SecurityGroup",
        "AWS::EC2::SecurityGroupEgress",
        "AWS::EC2::SecurityGroupIngress",
        "AWS::EC2::Subnet",
        "AWS::EC2::SubnetRouteTableAssociation",
        "AWS::EC2::VPC",
        "AWS::EC2::VPCGatewayAttachment",
        "AWS::ECS::Cluster",
        "AWS::ECS::TaskDefinition",  # priced through its service
        "AWS::ElasticLoadBalancingV2::Listener",
        "AWS::ElasticLoadBalancingV2::TargetGroup",
        "AWS::IAM::InstanceProfile",
        "AWS::IAM::Policy",
        "AWS::IAM::Role",
        "AWS::RDS::DBSubnetGroup",
        "AWS::S3::BucketPolicy",
        "AWS::SNS::TopicPolicy",
        "AWS::SQS::QueuePolicy",
        "AWS::SSM::Parameter",  # standard tier, standard throughput: no charge
        "AWS::SageMaker::Pipeline",  # its jobs are priced through the schedules
        "AWS::SageMaker::StudioLifecycleConfig",
        "AWS::SageMaker::UserProfile",
        "AWS::SecretsManager::SecretTargetAttachment",
        # Secret rotation: no charge of its own (the functions' invocations are usage-based).
        "AWS::Lambda::Permission",
        "AWS::SecretsManager::ResourcePolicy",
        "AWS::SecretsManager::RotationSchedule",
    }
)
# Types billed per request or per GB moved: near zero for this platform, not estimated.
USAGE_BASED = {
    "AWS::EC2::FlowLog": "flow log delivery",
    "AWS::Events::Rule": "EventBridge events",
    "AWS::Lambda::Function": "Lambda invocations",
    "AWS::Logs::LogGroup": "CloudWatch Logs ingestion and storage",
    "AWS::SNS::Topic": "SNS messages",
    "AWS::SQS::Queue": "SQS requests",
    "AWS::Scheduler::Schedule": "Scheduler invocations",
    # Secrets Manager's published rotation functions (Lambda), a few invocations a month.
    "AWS::Serverless::Application": "rotation function invocations",
}
# Pipeline steps that start no instances.
FREE_STEPS = frozenset({"Condition", "Fail", "Lambda", "Callback"})

# Row order of the table (items not listed sort after, by name).
ORDER = (
    "VPC interface endpoints",
    "NAT gateways",
    "Public IPv4 addresses",
    "EC2",
    "EBS gp3 volumes",
    "Route 53 hosted zones",
    "SageMaker MLflow App",
    "MLflow tracking server",
    "MLflow metadata storage",
    "Application Load Balancer",
    "Fargate vCPU",
    "Fargate memory",
    "Aurora Serverless v2 capacity",
    "Aurora storage",
    "RDS",
    "RDS gp3 storage",
    "Studio home (EFS)",
    "S3 storage",
    "KMS keys",
    "Secrets Manager secrets",
    "CloudWatch alarms",
    "Training",
    "Processing",
    "SageMaker job volumes",
)


def _rank(item: str) -> int:
    """Table position of an item: its own name in ORDER, else its first word (``EC2 t3.small``)."""
    for name in (item, item.split(" ", maxsplit=1)[0]):
        if name in ORDER:
            return ORDER.index(name)
    return len(ORDER)


# --- the price table --------------------------------------------------------------------------


@dataclass(frozen=True)
class Price:
    usd: float
    unit: str
    source: str
    read: str


@dataclass(frozen=True)
class PriceTable:
    region: str
    read: str
    verified_online: bool
    assumptions: Mapping[str, Any]
    prices: Mapping[str, Price]

    @property
    def hours(self) -> float:
        return float(self.assumptions["hours_per_month"])

    def assumption(self, name: str) -> float:
        return float(self.assumptions[name])


def load_prices(path: Path = PRICE_TABLE) -> PriceTable:
    data = yaml.safe_load(path.read_text())
    return PriceTable(
        region=data["region"],
        read=str(data["read"]),
        verified_online=bool(data["verified_online"]),
        assumptions=data["assumptions"],
        prices={
            key: Price(usd=float(p["usd"]), unit=p["unit"], source=p["source"], read=str(p["read"]))
            for key, p in data["prices"].items()
        },
    )


# --- the estimate -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    """One priced quantity: ``quantity`` units of ``price_key`` per month."""

    part: Part
    item: str
    price_key: str
    quantity: float
    usd: float
    detail: str


@dataclass(frozen=True)
class Estimate:
    lines: tuple[Line, ...]
    not_priced: tuple[str, ...]
    usage_based: tuple[str, ...]

    def total(self, part: Part | None = None) -> float:
        return sum(line.usd for line in self.lines if part is None or line.part == part)

    def line(self, item: str) -> Line | None:
        return next((line for line in self.lines if line.item == item), None)

    @property
    def items(self) -> list[str]:
        return [line.item for line in self.lines]


@dataclass
class _Collector:
    prices: PriceTable
    lines: list[Line] = field(default_factory=list)
    not_priced: list[str] = field(default_factory=list)
    usage_based: set[str] = field(default_factory=set)

    def add(self, part: Part, item: str, price_key: str, quantity: float, detail: str) -> None:
        price = self.prices.prices.get(price_key)
        if price is None:
            self.not_priced.append(f"{item} ({detail}): no price {price_key!r} in the table")
            return
        existing = next((i for i, x in enumerate(self.lines) if x.item == item), None)
        if existing is not None:  # same item from another resource: add up
            old = self.lines[existing]
            self.lines[existing] = Line(
                part, item, price_key, old.quantity + quantity,
                old.usd + quantity * price.usd, f"{old.detail}; {detail}",
            )  # fmt: skip
            return
        self.lines.append(Line(part, item, price_key, quantity, quantity * price.usd, detail))


class _Templates:
    """All resources of one environment, addressable by (stack, logical id)."""

    def __init__(self, stacks: Sequence[StackTemplate]) -> None:
        self.stacks = stacks

    def each(self, *types: str) -> Iterable[tuple[StackTemplate, str, Mapping[str, Any]]]:
        for stack in self.stacks:
            for logical_id, resource in stack.resources.items():
                if not types or resource["Type"] in types:
                    yield stack, logical_id, resource


def _props(resource: Mapping[str, Any]) -> Mapping[str, Any]:
    props: Mapping[str, Any] = resource.get("Properties", {})
    return props


def _plural(count: float, word: str) -> str:
    return f"{count:g} {word}{'' if count == 1 else 's'}"


def estimate(stacks: Sequence[StackTemplate], prices: PriceTable) -> Estimate:
    """Price one synthesized environment: idle lines and the scheduled runs' lines."""
    templates = _Templates(stacks)
    out = _Collector(prices)
    hours = prices.hours
    handled: set[tuple[str, str]] = set()

    def mark(stack: StackTemplate, logical_id: str) -> None:
        handled.add((stack.name, logical_id))

    for handler in _IDLE_HANDLERS:
        handler(templates, out, hours, mark)
    _scheduled_runs(templates, out, mark)

    for stack, logical_id, resource in templates.each():
        kind = resource["Type"]
        if (stack.name, logical_id) in handled or kind in NO_CHARGE or kind.startswith("Custom::"):
            continue
        if kind in USAGE_BASED:
            out.usage_based.add(USAGE_BASED[kind])
            continue
        out.not_priced.append(f"{kind} {logical_id} ({stack.name}): unknown resource type")

    lines = sorted(out.lines, key=lambda x: (x.part != "idle", _rank(x.item), x.item))
    return Estimate(tuple(lines), tuple(out.not_priced), tuple(sorted(out.usage_based)))


Mark = Callable[[StackTemplate, str], None]


def _network(t: _Templates, out: _Collector, hours: float, mark: Mark) -> None:
    endpoints, endpoint_azs, services = 0, 0, []
    for stack, logical_id, resource in t.each("AWS::EC2::VPCEndpoint"):
        mark(stack, logical_id)
        props = _props(resource)
        if props.get("VpcEndpointType", "Gateway") == "Interface":
            endpoints += 1
            endpoint_azs += len(props.get("SubnetIds", []))
            services.append(_endpoint_service(props.get("ServiceName")))
    if endpoints:
        out.add("idle", "VPC interface endpoints", "vpc.interface_endpoint.hour",
                endpoint_azs * hours, f"{endpoints} endpoints in {endpoint_azs / endpoints:g} AZs "
                f"({', '.join(sorted(services))})")  # fmt: skip


def _endpoint_service(name: Any) -> str:
    """``com.amazonaws.<region>.ecr.api`` -> ``ecr.api``; ``aws.sagemaker.<region>.studio`` ->
    ``sagemaker.studio`` (the region a literal or a ``Ref``)."""
    parts = name["Fn::Join"][1] if isinstance(name, dict) and "Fn::Join" in name else [name]
    text = "".join(p if isinstance(p, str) else "" for p in parts)
    match = re.fullmatch(r"(?:com\.amazonaws|aws\.(sagemaker))\.[a-z0-9-]*\.(.+)", text)
    if match is None:
        return text
    return f"{match[1]}.{match[2]}" if match[1] else match[2]


def _egress(t: _Templates, out: _Collector, hours: float, mark: Mark) -> None:
    public_subnets = set()
    nats = [(s, i) for s, i, _ in t.each("AWS::EC2::NatGateway")]
    for stack, logical_id in nats:
        mark(stack, logical_id)
    if nats:
        out.add("idle", "NAT gateways", "vpc.nat_gateway.hour", len(nats) * hours,
                _plural(len(nats), "gateway"))  # fmt: skip
    for stack, logical_id, resource in t.each("AWS::EC2::Subnet"):
        if _props(resource).get("MapPublicIpOnLaunch") is True:
            public_subnets.add((stack.name, logical_id))
    addresses = 0
    for stack, logical_id, _ in t.each("AWS::EC2::EIP"):
        mark(stack, logical_id)
        addresses += 1
    for stack, logical_id, resource in t.each("AWS::EC2::Instance"):
        mark(stack, logical_id)
        props = _props(resource)
        kind = props.get("InstanceType", "?")
        out.add("idle", f"EC2 {kind}", f"ec2.{kind}.hour", hours, f"instance {logical_id}")
        if not props.get("BlockDeviceMappings"):  # the AMI's root volume
            gb = out.prices.assumption("ami_root_volume_gb")
            out.add("idle", "EBS gp3 volumes", "ebs.gp3.gb_month", gb,
                    f"{logical_id} root {gb:g} GB (AMI default, assumed)")  # fmt: skip
        subnet = props.get("SubnetId", {})
        if isinstance(subnet, dict) and (stack.name, subnet.get("Ref")) in public_subnets:
            addresses += 1
    if addresses:
        out.add("idle", "Public IPv4 addresses", "vpc.public_ipv4.hour", addresses * hours,
                _plural(addresses, "address"))  # fmt: skip
    zones = [(s, i) for s, i, _ in t.each("AWS::Route53::HostedZone")]
    for stack, logical_id in zones:
        mark(stack, logical_id)
    if zones:
        out.add("idle", "Route 53 hosted zones", "route53.hosted_zone.month", len(zones),
                _plural(len(zones), "zone"))  # fmt: skip


def _ec2_groups(t: _Templates, out: _Collector, hours: float, mark: Mark) -> None:
    for stack, logical_id, resource in t.each("AWS::AutoScaling::AutoScalingGroup"):
        mark(stack, logical_id)
        props = _props(resource)
        count = int(props.get("DesiredCapacity", props.get("MinSize", 1)))
        template_id = props.get("LaunchTemplate", {}).get("LaunchTemplateId", {}).get("Ref")
        data = _props(stack.resources.get(template_id, {})).get("LaunchTemplateData", {})
        kind = data.get("InstanceType", "?")
        out.add("idle", f"EC2 {kind}", f"ec2.{kind}.hour", count * hours,
                f"{_plural(count, 'instance')} in {logical_id}")  # fmt: skip
        gib = sum(
            m.get("Ebs", {}).get("VolumeSize", 0)
            for m in data.get("BlockDeviceMappings", [])
            if m.get("Ebs", {}).get("VolumeType", "gp3") == "gp3"
        )
        if gib:
            out.add("idle", "EBS gp3 volumes", "ebs.gp3.gb_month", count * gib,
                    f"{count} x {gib} GB")  # fmt: skip


def _tracking(t: _Templates, out: _Collector, hours: float, mark: Mark) -> None:
    for stack, logical_id, _ in t.each("AWS::SageMaker::MlflowApp"):
        mark(stack, logical_id)
        out.add("idle", "SageMaker MLflow App", "sagemaker.mlflow_app.hour", hours,
                "serverless App: no idle server")  # fmt: skip
    for stack, logical_id, resource in t.each("AWS::SageMaker::MlflowTrackingServer"):
        mark(stack, logical_id)
        size = _props(resource).get("TrackingServerSize", "Small")
        out.add("idle", "MLflow tracking server", f"sagemaker.mlflow_tracking_server.{size}.hour",
                hours, f"size {size}, always on")  # fmt: skip
        gb = out.prices.assumption("mlflow_metadata_gb")
        out.add("idle", "MLflow metadata storage", "sagemaker.mlflow_metadata.gb_month", gb,
                f"{gb:g} GB assumed")  # fmt: skip
    albs = [(s, i) for s, i, _ in t.each("AWS::ElasticLoadBalancingV2::LoadBalancer")]
    for stack, logical_id in albs:
        mark(stack, logical_id)
    if albs:
        out.add("idle", "Application Load Balancer", "elb.alb.hour", len(albs) * hours,
                _plural(len(albs), "load balancer") + " (LCUs not counted)")  # fmt: skip
    for stack, logical_id, resource in t.each("AWS::ECS::Service"):
        mark(stack, logical_id)
        _fargate_service(stack, logical_id, resource, out, hours)
    for stack, logical_id, resource in t.each("AWS::RDS::DBCluster"):
        mark(stack, logical_id)
        _aurora(
            stack=stack, logical_id=logical_id, resource=resource, out=out, hours=hours, mark=mark
        )
    for stack, logical_id, resource in t.each("AWS::RDS::DBInstance"):
        props = _props(resource)
        if "DBClusterIdentifier" in props:
            continue  # priced with its cluster
        mark(stack, logical_id)
        kind, engine = props.get("DBInstanceClass", "?"), props.get("Engine", "?")
        copies = 2 if props.get("MultiAZ") is True else 1
        az = "Multi-AZ" if copies == 2 else "Single-AZ"
        out.add("idle", f"RDS {kind}", f"rds.{engine}.{kind}.hour", copies * hours,
                f"{engine} {az}")  # fmt: skip
        gib = float(props.get("AllocatedStorage", 0))
        out.add("idle", "RDS gp3 storage", "rds.gp3.gb_month", copies * gib, f"{gib:g} GB {az}")


def _fargate_service(
    stack: StackTemplate, logical_id: str, resource: Mapping[str, Any], out: _Collector,
    hours: float,
) -> None:  # fmt: skip
    props = _props(resource)
    task = stack.resources.get(props.get("TaskDefinition", {}).get("Ref", ""), {})
    vcpu = float(_props(task).get("Cpu", 0)) / 1024
    gb = float(_props(task).get("Memory", 0)) / 1024
    count = float(props.get("DesiredCount", 1))
    target = next(
        (
            r
            for r in stack.resources.values()
            if r["Type"] == "AWS::ApplicationAutoScaling::ScalableTarget"
            and logical_id in local_refs(_props(r).get("ResourceId"))
        ),
        None,
    )
    task_hours, how = count * hours, f"{_plural(count, 'task')} always on"
    if target is not None:
        minimum = float(_props(target).get("MinCapacity", count))
        actions = _props(target).get("ScheduledActions", [])
        if actions:
            task_hours = scheduled_capacity_hours(actions) * hours / 168
            how = f"{task_hours / hours:.2f} tasks on average (scheduled scaling)"
        else:
            task_hours, how = minimum * hours, f"{_plural(minimum, 'task')} (autoscaling minimum)"
    out.add(
        "idle", "Fargate vCPU", "fargate.vcpu.hour", task_hours * vcpu, f"{how} x {vcpu:g} vCPU"
    )
    out.add("idle", "Fargate memory", "fargate.gb.hour", task_hours * gb, f"{how} x {gb:g} GB")


def _aurora(
    *,
    stack: StackTemplate, logical_id: str, resource: Mapping[str, Any], out: _Collector,
    hours: float, mark: Mark,
) -> None:  # fmt: skip
    props = _props(resource)
    members = [
        member_id
        for member_id, member in stack.resources.items()
        if member["Type"] == "AWS::RDS::DBInstance"
        and _props(member).get("DBClusterIdentifier") == {"Ref": logical_id}
    ]
    for member_id in members:
        mark(stack, member_id)
    scaling = props.get("ServerlessV2ScalingConfiguration")
    if scaling is None:
        out.not_priced.append(f"AWS::RDS::DBCluster {logical_id} ({stack.name}): provisioned")
        return
    minimum = float(scaling.get("MinCapacity", 0))
    detail = (
        f"{_plural(len(members), 'instance')} x {minimum:g} ACU minimum"
        if minimum
        else f"{_plural(len(members), 'instance')} paused at 0 ACU when idle"
    )
    out.add("idle", "Aurora Serverless v2 capacity", "aurora.serverless_v2.acu_hour",
            len(members) * minimum * hours, detail)  # fmt: skip
    gb = out.prices.assumption("aurora_storage_gb")
    out.add("idle", "Aurora storage", "aurora.storage.gb_month", gb, f"{gb:g} GB assumed")


def _shared(t: _Templates, out: _Collector, hours: float, mark: Mark) -> None:
    del hours
    simple = (
        ("AWS::KMS::Key", "KMS keys", "kms.key.month", "key"),
        ("AWS::SecretsManager::Secret", "Secrets Manager secrets", "secretsmanager.secret.month",
         "secret"),
        ("AWS::CloudWatch::Alarm", "CloudWatch alarms", "cloudwatch.alarm.month", "alarm"),
    )  # fmt: skip
    for kind, item, key, word in simple:
        found = list(t.each(kind))
        for stack, logical_id, _ in found:
            mark(stack, logical_id)
        if found:
            out.add("idle", item, key, len(found), _plural(len(found), word))
    buckets = list(t.each("AWS::S3::Bucket"))
    for stack, logical_id, _ in buckets:
        mark(stack, logical_id)
    if buckets:
        gb = out.prices.assumption("s3_gb_per_bucket")
        out.add("idle", "S3 storage", "s3.standard.gb_month", len(buckets) * gb,
                f"{_plural(len(buckets), 'bucket')} x {gb:g} GB assumed")  # fmt: skip
    domains = list(t.each("AWS::SageMaker::Domain"))
    for stack, logical_id, _ in domains:
        mark(stack, logical_id)
    if domains:
        gb = out.prices.assumption("studio_efs_gb")
        out.add("idle", "Studio home (EFS)", "efs.standard.gb_month", len(domains) * gb,
                f"{gb:g} GB assumed, apps bill only while running")  # fmt: skip


_IDLE_HANDLERS = (_network, _egress, _ec2_groups, _tracking, _shared)


# --- scheduled runs ---------------------------------------------------------------------------


def _scheduled_runs(t: _Templates, out: _Collector, mark: Mark) -> None:
    hours = out.prices.hours
    for stack, logical_id, resource in t.each("AWS::Scheduler::Schedule"):
        props = _props(resource)
        if props.get("State", "ENABLED") != "ENABLED":
            continue
        runs = runs_per_month(props["ScheduleExpression"], hours)
        target = props.get("Target", {})
        if ":aws-sdk:" in json.dumps(target.get("Arn")):
            continue  # a universal target (one API call, e.g. the weekly task restart)
        pipeline_id = _pipeline_of(stack, local_refs(target.get("Arn")))
        if pipeline_id is None:
            out.not_priced.append(
                f"AWS::Scheduler::Schedule {logical_id} ({stack.name}): target is no pipeline"
            )
            continue
        mark(stack, pipeline_id)
        for step in _pipeline_steps(stack.resources[pipeline_id]):
            _price_step(step, runs, out)


def _pipeline_of(stack: StackTemplate, refs: set[str]) -> str | None:
    """The SageMaker pipeline a schedule starts: directly, or through a launcher function."""
    for ref in sorted(refs):
        kind = stack.resources.get(ref, {}).get("Type")
        if kind == "AWS::SageMaker::Pipeline":
            return ref
        if kind == "AWS::Lambda::Function":
            env = _props(stack.resources[ref]).get("Environment", {})
            found = _pipeline_of(stack, local_refs(env))
            if found is not None:
                return found
    return None


def _pipeline_steps(resource: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Steps of a pipeline definition, with ``{"Get": "Parameters.X"}`` resolved to defaults."""
    body = _props(resource)["PipelineDefinition"]["PipelineDefinitionBody"]
    if isinstance(body, dict):  # Fn::Join of literals and tokens (tokens sit inside strings)
        parts = body["Fn::Join"][1]
        body = "".join(p if isinstance(p, str) else "TOKEN" for p in parts)
    definition = json.loads(body)
    defaults = {p["Name"]: p.get("DefaultValue") for p in definition.get("Parameters", [])}

    def resolve(value: Any) -> Any:
        if isinstance(value, dict):
            ref = value.get("Get")
            if isinstance(ref, str) and ref.startswith("Parameters."):
                return defaults.get(ref.removeprefix("Parameters."))
            return {k: resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [resolve(v) for v in value]
        return value

    # An upper bound: the job(s) a condition gates are priced as if they ran every time.
    return [dict(step) for step in all_steps(resolve(definition.get("Steps", [])))]


def _price_step(step: Mapping[str, Any], runs: float, out: _Collector) -> None:
    kind, args = step["Type"], step.get("Arguments", {})
    if kind in FREE_STEPS:
        return
    if kind == "Tuning":
        _price_tuning_step(step, runs, out)
        return
    if kind == "Training":
        config = args.get("ResourceConfig", {})
        family = "training"
    elif kind == "Processing":
        config = args.get("ProcessingResources", {}).get("ClusterConfig", {})
        family = "processing"
    else:
        out.not_priced.append(f"pipeline step {step['Name']} of type {kind}: unknown step type")
        return
    instance, count = config.get("InstanceType", "?"), int(config.get("InstanceCount", 1))
    seconds = float(args.get("StoppingCondition", {}).get("MaxRuntimeInSeconds", 86400))
    run_hours = seconds / 3600
    spot = " (spot priced on-demand)" if args.get("EnableManagedSpotTraining") is True else ""
    detail = f"{runs:.2f} runs x {count} x {seconds / 60:g} min max runtime{spot}"
    out.add("scheduled", f"{family.capitalize()} {instance}",
            f"sagemaker.{family}.{instance}.hour", runs * count * run_hours, detail)  # fmt: skip
    gb = float(config.get("VolumeSizeInGB", 0))
    if gb:
        out.add("scheduled", "SageMaker job volumes", "sagemaker.ml_storage.gb_month",
                runs * count * gb * run_hours / out.prices.hours, f"{step['Name']}: {gb:g} GB")  # fmt: skip


def _price_tuning_step(step: Mapping[str, Any], runs: float, out: _Collector) -> None:
    """A tuning step: up to MaxNumberOfTrainingJobs training jobs per run, each on its
    definition's instances for at most its max runtime (MaxParallelTrainingJobs of them at a
    time: that sets the wall clock and the instances running at once, not the instance-hours)."""
    args = step.get("Arguments", {})
    limits = args.get("HyperParameterTuningJobConfig", {}).get("ResourceLimits", {})
    jobs = int(limits.get("MaxNumberOfTrainingJobs", 1))
    parallel = int(limits.get("MaxParallelTrainingJobs", 1))
    definition = args.get("TrainingJobDefinition", {})
    config = definition.get("ResourceConfig", {})
    instance, count = config.get("InstanceType", "?"), int(config.get("InstanceCount", 1))
    seconds = float(definition.get("StoppingCondition", {}).get("MaxRuntimeInSeconds", 86400))
    spot = " (spot priced on-demand)" if definition.get("EnableManagedSpotTraining") else ""
    detail = (f"{runs:.2f} runs x {jobs} tuning jobs ({parallel} at a time) x {count} x "
              f"{seconds / 60:g} min max runtime{spot}")  # fmt: skip
    out.add("scheduled", f"Training {instance}", f"sagemaker.training.{instance}.hour",
            runs * jobs * count * seconds / 3600, detail)  # fmt: skip
    gb = float(config.get("VolumeSizeInGB", 0))
    if gb:
        out.add("scheduled", "SageMaker job volumes", "sagemaker.ml_storage.gb_month",
                runs * jobs * count * gb * seconds / 3600 / out.prices.hours,
                f"{step['Name']}: {jobs} x {gb:g} GB")  # fmt: skip


# --- the table --------------------------------------------------------------------------------


def _money(usd: float | None) -> str:
    return "-" if usd is None else f"{usd:,.2f}"


def render(env: str, estimates: Mapping[str, Estimate], default: str, prices: PriceTable) -> str:
    """A Markdown table: one row per item, one column per tracking mode, idle then scheduled."""
    modes = list(estimates)
    header = ["", *[f"{m}*" if m == default else m for m in modes]]
    rows: list[list[str]] = []

    def section(part: Part, title: str) -> None:
        items: list[str] = []
        for est in estimates.values():
            items += [x.item for x in est.lines if x.part == part and x.item not in items]
        ranked = {x.item: i for i, x in enumerate(_all_lines(estimates.values(), part))}
        rows.append([f"**{title}**", *["" for _ in modes]])
        for item in sorted(items, key=lambda i: ranked[i]):
            cells = []
            for est in estimates.values():
                line = next((x for x in est.lines if x.item == item and x.part == part), None)
                cells.append(_money(line.usd if line else None))
            rows.append([item, *cells])
        rows.append([f"{title} total", *[_money(e.total(part)) for e in estimates.values()]])

    section("idle", "Idle")
    section("scheduled", "Scheduled runs")
    rows.append(["**Monthly total**", *[f"**{_money(e.total())}**" for e in estimates.values()]])

    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def fmt(row: list[str]) -> str:
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        return "| " + " | ".join(cells) + " |"

    checked = "checked online" if prices.verified_online else "NOT re-checked online: verify"
    out = [
        f"## {env}: monthly cost estimate (USD, {prices.region} on-demand)",
        "",
        fmt(header),
        "| " + " | ".join(["-" * widths[0], *["-" * (w - 1) + ":" for w in widths[1:]]]) + " |",
        *[fmt(r) for r in rows],
        "",
        f"\\* the mode cdk.json sets for {env}. Prices: pricing/{prices.region}.yaml "
        f"(read {prices.read}, {checked}).",
        "",
        "Counted from the synthesized templates:",
    ]
    for mode, est in estimates.items():
        details = "; ".join(f"{x.item}: {x.detail}" for x in est.lines)
        out.append(f"- {mode}: {details}")
    usage = sorted({u for e in estimates.values() for u in e.usage_based})
    not_priced = sorted({f"{m}: {n}" for m, e in estimates.items() for n in e.not_priced})
    hours = prices.hours
    out += [
        "",
        f"Assumptions: {hours:g} hours a month; runs bill their full max runtime (an upper "
        f"bound); S3 {prices.assumption('s3_gb_per_bucket'):g} GB per bucket, Aurora "
        f"{prices.assumption('aurora_storage_gb'):g} GB, MLflow metadata "
        f"{prices.assumption('mlflow_metadata_gb'):g} GB, Studio EFS "
        f"{prices.assumption('studio_efs_gb'):g} GB; no free tier, no data transfer, "
        "no Savings Plans; Studio apps bill only while a user runs them.",
        f"Usage-based, not estimated: {', '.join(usage) or 'none'}.",
        f"Not priced: {'; '.join(not_priced) or 'none'}.",
    ]
    return "\n".join(out) + "\n"


def _all_lines(estimates: Iterable[Estimate], part: Part) -> list[Line]:
    """Lines of ``part`` across modes in table order (first occurrence wins)."""
    seen: dict[str, Line] = {}
    for est in estimates:
        for line in est.lines:
            if line.part == part:
                seen.setdefault(line.item, line)
    return sorted(seen.values(), key=lambda x: (_rank(x.item), x.item))


# --- command line -----------------------------------------------------------------------------


def estimate_env(
    env: str, modes: Sequence[str] = TRACKING_MODES, overrides: Mapping[str, str] | None = None
) -> dict[str, Estimate]:
    prices = load_prices()
    return {
        mode: estimate(synthesize(env, {**(overrides or {}), "tracking.mode": mode}), prices)
        for mode in modes
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.cost", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--env", action="append", help="environment (repeatable); default: all")
    parser.add_argument(
        "--mode", action="append", choices=TRACKING_MODES, help="tracking mode column(s)"
    )
    parser.add_argument("-c", "--context", action="append", default=[], metavar="KEY=VALUE",
                        help="a -c style setting override, e.g. tracking.size=Medium")  # fmt: skip
    parser.add_argument("--refresh-prices", action="store_true",
                        help="first rewrite pricing/ from the AWS Price List API (needs "
                        "AWS credentials; tools/price_list.py)")  # fmt: skip
    args = parser.parse_args(argv)
    overrides = dict(item.split("=", 1) for item in args.context)
    if args.refresh_prices:
        try:
            price_list.refresh(
                PRICE_TABLE, price_list.pricing_client(), dt.datetime.now(dt.UTC).date()
            )
        except price_list.PriceListError as err:
            sys.exit(f"price refresh: {err}")
        sys.stderr.write(f"prices refreshed from the AWS Price List API: {PRICE_TABLE}\n")
    prices = load_prices()
    try:
        for env in args.env or ENVIRONMENTS:
            estimates = estimate_env(env, args.mode or TRACKING_MODES, overrides)
            sys.stdout.write(render(env, estimates, default_mode(env), prices) + "\n")
    except ConfigError as err:
        sys.exit(f"config error: {err}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
