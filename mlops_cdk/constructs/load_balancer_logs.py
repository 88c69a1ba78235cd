"""Access logs of an Application Load Balancer, into an S3 bucket of another stack.

What Elastic Load Balancing needs ("Enable access logs for your Application Load Balancer",
https://docs.aws.amazon.com/elasticloadbalancing/latest/application/enable-access-logging.html):
the bucket in the load balancer's Region, SSE-S3 as its only encryption (the access-log bucket,
``AccessLogBucket``, is SSE-S3), and a bucket policy that lets the delivery principal put
objects under ``<prefix>/AWSLogs/<account>/``. The principal depends on the Region: Regions
available before August 2022 name that Region's Elastic Load Balancing account
(``arn:aws:iam::<elb-account>:root``), Regions launched since the service principal
``logdelivery.elasticloadbalancing.amazonaws.com``.

With a concrete region (``cdk deploy`` with an account and region) CDK's own
``log_access_logs`` picks the principal at synth. Environment-agnostic it cannot ("Region is
required to enable ELBv2 access logging"), so :func:`log_access` writes the same policy with
the choice left to CloudFormation: a mapping Region -> Elastic Load Balancing account from
aws-cdk-lib's region-info (the table the ELB guide publishes) and a condition "this Region
has one". A Region not in the table, i.e. launched after this CDK release, gets the service
principal, as CDK's own code gives it. This is the one decision the app cannot take at synth
(DESIGN.md "decisions at synth time"): the region is not known there.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import (
    Aws,
    CfnCondition,
    CfnMapping,
    CfnResource,
    Fn,
    ICfnConditionExpression,
    Stack,
    Token,
)
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk.region_info import RegionInfo

SERVICE_PRINCIPAL = "logdelivery.elasticloadbalancing.amazonaws.com"
# CDK's log_access_logs also lets the log-delivery service write (with the bucket-owner ACL)
# and read the bucket ACL; the agnostic form grants the same so both forms match.
LOG_DELIVERY = "delivery.logs.amazonaws.com"
MAPPING_ID = "ElbAccessLogAccounts"
CONDITION_ID = "ElbAccessLogsByAccount"
MAX_OR = 10  # Fn::Or takes 2 to 10 conditions


def elb_accounts() -> dict[str, str]:
    """Region -> Elastic Load Balancing account, for the Regions that have one (sorted)."""
    return {
        region.name: region.elbv2_account
        for region in sorted(RegionInfo.regions, key=lambda r: r.name)
        if region.elbv2_account
    }


def log_access(
    load_balancer: elbv2.ApplicationLoadBalancer, *, bucket: s3.IBucket, prefix: str
) -> None:
    """Turn on ``load_balancer``'s access logs into ``bucket`` under ``prefix``, with its policy.

    The bucket's stack gains the policy statements (and, agnostic, the mapping and condition
    they use); it never references the load balancer, so it can be a stack the load
    balancer's stack depends on. The load balancer waits for the bucket policy, as CDK's
    ``log_access_logs`` makes it: ELB checks it can write when logging is turned on.
    """
    if not isinstance(bucket, s3.Bucket):  # an imported bucket's policy is not ours to write
        raise ValueError(f"log_access needs a bucket this app creates, not {bucket.node.path}")
    if not Token.is_unresolved(Stack.of(load_balancer).region):
        load_balancer.log_access_logs(bucket, prefix)
        return
    load_balancer.set_attribute("access_logs.s3.enabled", "true")
    load_balancer.set_attribute("access_logs.s3.bucket", bucket.bucket_name)
    load_balancer.set_attribute("access_logs.s3.prefix", prefix)
    objects = bucket.arn_for_objects(f"{prefix}/AWSLogs/{Stack.of(load_balancer).account}/*")
    by_account = _by_account_condition(Stack.of(bucket))
    elb_account = Fn.find_in_map(MAPPING_ID, Aws.REGION, "account")
    bucket.add_to_resource_policy(
        iam.PolicyStatement(
            actions=["s3:PutObject"],
            principals=[
                iam.ArnPrincipal(
                    Fn.condition_if(
                        by_account.logical_id,
                        f"arn:{Aws.PARTITION}:iam::{elb_account}:root",
                        Aws.NO_VALUE,
                    ).to_string()
                ),
                iam.ServicePrincipal(
                    Fn.condition_if(
                        by_account.logical_id, Aws.NO_VALUE, SERVICE_PRINCIPAL
                    ).to_string()
                ),
            ],
            resources=[objects],
        )
    )
    bucket.add_to_resource_policy(
        iam.PolicyStatement(
            actions=["s3:PutObject"],
            principals=[iam.ServicePrincipal(LOG_DELIVERY)],
            resources=[objects],
            conditions={"StringEquals": {"s3:x-amz-acl": "bucket-owner-full-control"}},
        )
    )
    bucket.add_to_resource_policy(
        iam.PolicyStatement(
            actions=["s3:GetBucketAcl"],
            principals=[iam.ServicePrincipal(LOG_DELIVERY)],
            resources=[bucket.bucket_arn],
        )
    )
    balancer = load_balancer.node.default_child
    policy = bucket.policy.node.default_child if bucket.policy is not None else None
    if isinstance(balancer, CfnResource) and isinstance(policy, CfnResource):
        balancer.add_resource_dependency(policy)


def _by_account_condition(stack: Stack) -> CfnCondition:
    """``stack``'s condition "this Region has an ELB account", with its mapping (made once)."""
    existing = stack.node.try_find_child(CONDITION_ID)
    if isinstance(existing, CfnCondition):
        return existing
    accounts = elb_accounts()
    CfnMapping(
        stack,
        MAPPING_ID,
        mapping={region: {"account": account} for region, account in accounts.items()},
    )
    equals = [Fn.condition_equals(Aws.REGION, region) for region in accounts]
    return CfnCondition(stack, CONDITION_ID, expression=_any(equals))


def _any(conditions: Sequence[ICfnConditionExpression]) -> ICfnConditionExpression:
    """Fn::Or of ``conditions``, nested where there are more than Fn::Or takes."""
    if len(conditions) == 1:
        return conditions[0]
    if len(conditions) <= MAX_OR:
        return Fn.condition_or(*conditions)
    size = -(-len(conditions) // MAX_OR)  # ceil: at most MAX_OR groups of `size`
    return _any([_any(conditions[i : i + size]) for i in range(0, len(conditions), size)])
