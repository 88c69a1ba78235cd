"""The Fargate MLflow load balancer writes access logs to the environment's access-log bucket.

Whole class: every Fargate variant of tests/matrix.py, both synth forms. The tracking stack's
load balancer turns access logs on with the storage stack's access-log bucket and its own
prefix, and that bucket's policy lets Elastic Load Balancing's delivery principal put objects
under ``<prefix>/AWSLogs/<account>/`` and nowhere else. Which principal depends on the region
("Enable access logs for your Application Load Balancer", step 2: Regions available before
August 2022 name the Region's Elastic Load Balancing account, later ones the service principal
``logdelivery.elasticloadbalancing.amazonaws.com``;
https://docs.aws.amazon.com/elasticloadbalancing/latest/application/enable-access-logging.html).
The deployed form (eu-west-1, what ``cdk deploy`` synthesizes) names eu-west-1's account. An
environment-agnostic synth cannot know the principal without a CloudFormation Condition, which
the app does not use: there the logs are off and the finding acknowledged with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_s3 as s3

from mlops_cdk.constructs.load_balancer_logs import NO_REGION, log_access
from tests.iam.simulator import Request, simulate
from tests.matrix import VARIANTS, Variant, variant_params
from tests.synth import DEPLOY_ACCOUNT, DEPLOY_REGION, FORMS, SynthesizedApp
from tools.cdk_json import ENVIRONMENTS
from tools.synthesis import exports, templates_by_name

PREFIX = "mlflow-load-balancer"
ACCOUNT = DEPLOY_ACCOUNT
SERVICE = "logdelivery.elasticloadbalancing.amazonaws.com"
# From the ELB guide's table of Regions available before August 2022 (and aws-cdk-lib's
# region-info, which carries the same table).
ELB_ACCOUNTS = {"us-east-1": "127311923021", "eu-west-1": "156460612806"}
BUCKET_ARN = "arn:aws:s3:::mlops-storage-accesslogsbucket-0123"
ANY_PUT = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:PutObject", "Resource": "*"}],
}

FARGATE = tuple(v for v in VARIANTS if v.mode == "fargate")
DEPLOYED = tuple(v for v in FARGATE if v.form == "deployed")


class Template:
    """Evaluates one template's intrinsics for a region (Ref, Join, ImportValue).

    Logical IDs stay symbolic (``{"Ref": id}``, ``{"Fn::GetAtt": [id, attr]}``) so a test
    can say which resource a value names; ``Fn::ImportValue`` resolves through ``exports``.
    """

    def __init__(
        self, template: dict[str, Any], *, region: str, exports: dict[str, Any] | None = None
    ) -> None:
        self.template = template
        self.region = region
        self.exports = exports or {}
        self.pseudo = {
            "AWS::Region": region,
            "AWS::AccountId": ACCOUNT,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
        }

    def value(self, node: Any) -> Any:
        if isinstance(node, list):
            items = [self.value(v) for v in node]
            return [v for v in items if v is not _NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, arg),) = node.items()
            handler = self._intrinsics.get(key)
            if handler is not None:
                return handler(arg)
        out = {k: self.value(v) for k, v in node.items()}
        return {k: v for k, v in out.items() if v is not _NO_VALUE}

    @property
    def _intrinsics(self) -> dict[str, Callable[[Any], Any]]:
        return {
            "Ref": self._ref,
            "Fn::GetAtt": lambda arg: {"Fn::GetAtt": arg},
            "Fn::Join": self._join,
            "Fn::ImportValue": lambda arg: self.value(self.exports[self.value(arg)]),
        }

    def _ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return _NO_VALUE
        return self.pseudo.get(name, {"Ref": name})

    def _join(self, arg: list[Any]) -> Any:
        sep, parts = arg
        values: list[Any] = []
        for part in self.value(parts):  # adjacent strings merged: one shape per value
            if values and isinstance(part, str) and isinstance(values[-1], str):
                values[-1] += sep + part
            else:
                values.append(part)
        return values[0] if len(values) == 1 else {"Fn::Join": [sep, values]}


_NO_VALUE = object()


def _exports(app: SynthesizedApp) -> dict[str, Any]:
    """Export name -> the output's value expression, over the app's stacks."""
    return {name: value for name, (_, value) in exports(templates_by_name(app.assembly)).items()}


def _access_log_bucket_id(app: SynthesizedApp) -> str:
    storage = app.platform.storage
    bucket = storage.access_logs.node.default_child
    logical_id: str = storage.resolve(bucket.logical_id)  # type: ignore[union-attr]
    return logical_id


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _load_balancer(app: SynthesizedApp) -> dict[str, Any]:
    template = app.template_json("tracking")
    (lb,) = (
        r
        for r in template["Resources"].values()
        if r["Type"] == "AWS::ElasticLoadBalancingV2::LoadBalancer"
    )
    found: dict[str, Any] = lb
    return found


def _bucket_policy(storage: Template, bucket_id: str) -> dict[str, Any]:
    """The access-log bucket's policy resource's properties, evaluated."""
    (policy,) = (
        storage.value(r["Properties"])
        for r in storage.template["Resources"].values()
        if r["Type"] == "AWS::S3::BucketPolicy" and r["Properties"]["Bucket"] == {"Ref": bucket_id}
    )
    found: dict[str, Any] = policy
    return found


def _check_region(app: SynthesizedApp, region: str, principal: dict[str, str]) -> None:
    """At deploy in ``region``: the load balancer's attributes and the bucket policy's grant."""
    exports = _exports(app)
    bucket_id = _access_log_bucket_id(app)
    tracking = Template(app.template_json("tracking"), region=region, exports=exports)
    storage = Template(app.template_json("storage"), region=region)

    attributes = {
        a["Key"]: a["Value"]
        for a in tracking.value(_load_balancer(app)["Properties"]["LoadBalancerAttributes"])
    }
    assert attributes.get("access_logs.s3.enabled") == "true", attributes
    assert attributes.get("access_logs.s3.bucket") == {"Ref": bucket_id}, attributes
    assert attributes.get("access_logs.s3.prefix") == PREFIX, attributes

    policy = _bucket_policy(storage, bucket_id)
    objects = {
        "Fn::Join": ["", [{"Fn::GetAtt": [bucket_id, "Arn"]}, f"/{PREFIX}/AWSLogs/{ACCOUNT}/*"]]
    }
    grants = [
        s
        for s in policy["PolicyDocument"]["Statement"]
        if s["Effect"] == "Allow" and s.get("Principal") == principal
    ]
    assert grants, f"{region}: no statement allows {principal}: {policy['PolicyDocument']}"
    for statement in grants:  # PutObject under the prefix, nothing else
        assert _as_list(statement["Action"]) == ["s3:PutObject"], statement
        assert _as_list(statement["Resource"]) == [objects], statement
    elb_principals = [SERVICE, *(f"arn:aws:iam::{a}:root" for a in ELB_ACCOUNTS.values())]
    others = [
        s
        for s in policy["PolicyDocument"]["Statement"]
        if s["Effect"] == "Allow"
        and s not in grants
        and any(p in str(s.get("Principal")) for p in elb_principals)
    ]
    assert not others, f"{region}: other statements for an ELB principal: {others}"


@pytest.mark.parametrize("variant", variant_params(FARGATE))
def test_load_balancer_logs_to_the_access_log_bucket(variant: Variant) -> None:
    app = variant.app()
    if variant.form == "deployed":
        principal = {"AWS": f"arn:aws:iam::{ELB_ACCOUNTS[DEPLOY_REGION]}:root"}
        _check_region(app, DEPLOY_REGION, principal)
        return
    balancer = _load_balancer(app)
    keys = {a["Key"] for a in balancer["Properties"]["LoadBalancerAttributes"]}
    assert not {k for k in keys if k.startswith("access_logs.")}, keys
    assert "Conditions" not in app.template_json("storage"), "decisions at synth time"
    skips = balancer["Metadata"]["checkov"]["skip"]
    assert {"id": "CKV_AWS_91", "comment": NO_REGION} in skips, skips


def _concrete(value: Any, template: Template, bucket_id: str) -> Any:
    """``value`` with ARNs in place of ``Fn::GetAtt`` (the access-log bucket's: BUCKET_ARN)."""
    if isinstance(value, list):
        return [_concrete(v, template, bucket_id) for v in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"Fn::GetAtt"}:
        logical_id, _ = value["Fn::GetAtt"]
        if logical_id == bucket_id:
            return BUCKET_ARN
        kind = template.template["Resources"][logical_id]["Type"]
        return {
            "AWS::S3::Bucket": f"arn:aws:s3:::{logical_id.lower()}",
            "AWS::IAM::Role": f"arn:aws:iam::{ACCOUNT}:role/{logical_id}",
        }[kind]
    if set(value) == {"Fn::Join"}:
        sep, parts = value["Fn::Join"]
        return sep.join(str(_concrete(p, template, bucket_id)) for p in parts)
    return {k: _concrete(v, template, bucket_id) for k, v in value.items()}


@pytest.mark.parametrize("variant", variant_params(DEPLOYED))
def test_the_permission_simulator_lets_elb_deliver_only_under_the_prefix(variant: Variant) -> None:
    """IAM evaluation (tests/iam's simulator) of the bucket policy as deployed in each region.

    An old region's ELB account is modelled as a role of that account whose own (identity)
    policy lets it put objects anywhere: the bucket policy alone decides, as for a
    cross-account write. A newer region's service principal needs the bucket policy only.
    """
    app = variant.app()
    bucket_id = _access_log_bucket_id(app)
    regions = ((DEPLOY_REGION, {"AWS": f"arn:aws:iam::{ELB_ACCOUNTS[DEPLOY_REGION]}:root"}),)
    requests: list[Request] = []
    expected: list[tuple[str, bool]] = []
    for region, principal in regions:
        storage = Template(app.template_json("storage"), region=region)
        document = _concrete(
            _bucket_policy(storage, bucket_id)["PolicyDocument"], storage, bucket_id
        )
        log = f"{BUCKET_ARN}/{PREFIX}/AWSLogs/{ACCOUNT}/elasticloadbalancing/{region}/x.log.gz"
        elsewhere = f"{BUCKET_ARN}/data/{PREFIX}/AWSLogs/{ACCOUNT}/x.log.gz"
        old_account = principal.get("AWS", "").split(":")[4:5]
        writers = {  # principal -> its identity policies, and whether it should be let in
            (f"arn:aws:iam::{old_account[0]}:role/delivery" if old_account else SERVICE): True,
            "arn:aws:iam::999988887777:role/delivery": False,  # some other account
            **({SERVICE: False} if old_account else {}),  # the wrong principal for the region
        }
        for writer, allowed in writers.items():
            identity = (
                [{"name": "delivery", "policy": ANY_PUT}] if writer.startswith("arn:") else []
            )
            for resource, ok in ((log, allowed), (elsewhere, False)):
                requests.append(
                    Request(
                        principal=writer,
                        action="s3:PutObject",
                        resource=resource,
                        account=ACCOUNT,
                        identity_policies=identity,
                        resource_policy=document,
                        context={"aws:SecureTransport": "true"},
                    )
                )
                expected.append((f"{region}: {writer} PutObject {resource}", ok))
    wrong = [
        f"{what}: {decision.reason}"
        for (what, ok), decision in zip(expected, simulate(requests), strict=True)
        if decision.allowed != ok
    ]
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("variant", variant_params(DEPLOYED))
def test_tracking_deploys_after_the_bucket_policy(variant: Variant) -> None:
    """The load balancer checks the bucket policy when logging is turned on: storage first."""
    app = variant.app()
    balancer = app.platform.tracking.backend.load_balancer.node.default_child  # type: ignore[attr-defined]
    policy = app.platform.storage.access_logs.policy
    assert policy is not None
    depends_on = {d.node.path for d in balancer.obtain_dependencies()}
    assert policy.node.default_child.node.path in depends_on, depends_on  # type: ignore[union-attr]
    storage = app.template_json("storage")
    assert "Fn::ImportValue" not in str(storage), "storage must not reference another stack"
    # Last: jsii hands the dependencies out as plain CloudArtifact proxies, after which
    # get_stack_by_name returns the storage stack as one too (no .template).
    tracking = app.assembly.get_stack_by_name(app.platform.tracking.stack_name)
    assert app.platform.storage.stack_name in {d.id for d in tracking.dependencies}


def test_every_fargate_variant_is_covered() -> None:
    assert {(v.env, v.form) for v in FARGATE} >= {
        (env, form) for env in ENVIRONMENTS for form in FORMS
    }


def test_log_access_refuses_a_bucket_whose_policy_it_cannot_write() -> None:
    app = cdk.App()
    stack = cdk.Stack(app, "Bare")
    vpc = ec2.Vpc(stack, "Vpc", max_azs=2, nat_gateways=0)
    balancer = elbv2.ApplicationLoadBalancer(stack, "LoadBalancer", vpc=vpc)
    imported = s3.Bucket.from_bucket_name(stack, "Imported", "someone-elses-logs")
    with pytest.raises(ValueError, match="needs a bucket this app creates, not Bare/Imported"):
        log_access(balancer, bucket=imported, prefix=PREFIX)
