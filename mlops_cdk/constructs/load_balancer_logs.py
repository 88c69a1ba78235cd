"""Access logs of an Application Load Balancer, into an S3 bucket of another stack.

What Elastic Load Balancing needs ("Enable access logs for your Application Load Balancer",
https://docs.aws.amazon.com/elasticloadbalancing/latest/application/enable-access-logging.html):
the bucket in the load balancer's Region, SSE-S3 as its only encryption (the access-log bucket,
``AccessLogBucket``, is SSE-S3), and a bucket policy that lets the delivery principal put
objects under ``<prefix>/AWSLogs/<account>/``. The principal depends on the Region: Regions
available before August 2022 name that Region's Elastic Load Balancing account
(``arn:aws:iam::<elb-account>:root``), Regions launched since the service principal
``logdelivery.elasticloadbalancing.amazonaws.com``.

With a concrete region (what ``cdk deploy`` synthesizes: the CLI passes the account and region)
CDK's own ``log_access_logs`` picks the principal at synth. Environment-agnostic it cannot
("Region is required to enable ELBv2 access logging"), and choosing it at deploy would take a
CloudFormation Condition, which this app does not use (DESIGN.md: decisions at synth time); so
an agnostic synth leaves the logs off and says why beside the load balancer.
"""

from __future__ import annotations

from aws_cdk import Stack, Token
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_s3 as s3

from mlops_cdk import nag
from mlops_cdk.checkov import skip

NO_REGION = (
    "Environment-agnostic synth: the log-delivery principal depends on the Region, unknown "
    "here. `cdk deploy` synthesizes with the account and region and turns the access logs on "
    "(mlops_cdk/constructs/load_balancer_logs.py); the request log also goes to CloudWatch."
)


def log_access(
    load_balancer: elbv2.ApplicationLoadBalancer, *, bucket: s3.IBucket, prefix: str
) -> None:
    """Turn on ``load_balancer``'s access logs into ``bucket`` under ``prefix``, with its policy.

    The bucket's stack gains the policy statements; it never references the load balancer, so
    it can be a stack the load balancer's stack depends on. CDK makes the load balancer wait
    for the bucket policy: ELB checks it can write when logging is turned on.
    """
    if not isinstance(bucket, s3.Bucket):  # an imported bucket's policy is not ours to write
        raise ValueError(f"log_access needs a bucket this app creates, not {bucket.node.path}")
    if Token.is_unresolved(Stack.of(load_balancer).region):
        nag.ack(load_balancer, "AwsSolutions-ELB2", NO_REGION)
        skip(load_balancer, "CKV_AWS_91", NO_REGION)
        return
    load_balancer.log_access_logs(bucket, prefix)
