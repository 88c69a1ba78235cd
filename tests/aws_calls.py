"""Which AWS services a VPC client calls, read from the templates: its IAM role's actions.

A client in a private subnet reaches an AWS API only through an interface endpoint of that
service, a gateway endpoint (S3) or a NAT. The reachability model (tests/reachability.py) asks
each VPC client's role what it may call, maps every action to the endpoint service that
answers it, and requires a path to each. The app chooses its endpoints from the settings
(mlops_cdk/settings/endpoints.py); this reads them back from the resources, independently.

Actions that never leave the client's network interface are not calls from the VPC:
- ``kms:*``: S3 (SSE-KMS), Secrets Manager, EFS and SageMaker call KMS for the caller ("AWS
  services that are integrated with AWS KMS ... call KMS on your behalf",
  https://docs.aws.amazon.com/kms/latest/developerguide/service-integration.html);
- ``iam:PassRole``: a permission check, not an API call;
- on a role SageMaker assumes for a job: the ENI management (``ec2:*NetworkInterface*``,
  ``ec2:Describe*``: SageMaker attaches the job to the subnets) and ``cloudwatch:PutMetricData``
  (SageMaker publishes the job's metrics; no container here calls CloudWatch metrics).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.reachability import AppNetwork, Key

S3 = "s3"

# IAM action prefix -> the endpoint service(s) (the tail of the endpoint's service name,
# com.amazonaws.<region>.<tail> or aws.sagemaker.<region>.<tail> as sagemaker.<tail>).
SERVICES_OF_PREFIX: Mapping[str, tuple[str, ...]] = {
    "ecr": ("ecr.api", "ecr.dkr"),  # GetAuthorizationToken on ecr.api, layers on ecr.dkr
    "logs": ("logs",),
    "secretsmanager": ("secretsmanager",),
    "ssm": ("ssm",),
    "ssmmessages": ("ssmmessages",),
    "ec2messages": ("ec2messages",),
    "sts": ("sts",),
    "cloudwatch": ("monitoring",),
    "sagemaker": ("sagemaker.api",),
    "sagemaker-mlflow": ("sagemaker.experiments",),
    "s3": (S3,),
    "ec2": ("ec2",),
    "cloudformation": ("cloudformation",),  # cfn-signal at boot (ec2 mode)
    "route53": ("route53",),  # a global API without an interface endpoint: NAT only (ec2 mode)
    "lambda": ("lambda",),
    "states": ("states",),
    "sqs": ("sqs",),
    "sns": ("sns",),
    "events": ("events",),
    "scheduler": ("scheduler",),
    "rds": ("rds",),
}
# sagemaker: actions answered by another endpoint than the API.
SAGEMAKER_ACTIONS: Mapping[str, str] = {
    "sagemaker:CallMlflowAppApi": "sagemaker.experiments",  # the MLflow App's tracking API
    "sagemaker:InvokeEndpoint": "sagemaker.runtime",
}
# What the AWS managed policies the app attaches let a client call (their documented actions,
# prefixes only): https://docs.aws.amazon.com/aws-managed-policy/latest/reference/
MANAGED_POLICY_ACTIONS: Mapping[str, tuple[str, ...]] = {
    "AmazonSSMManagedInstanceCore": (
        "ssm:UpdateInstanceInformation", "ssmmessages:OpenControlChannel",
        "ec2messages:GetMessages",
    ),
    "CloudWatchAgentServerPolicy": ("cloudwatch:PutMetricData", "logs:PutLogEvents"),
    "service-role/AWSLambdaBasicExecutionRole": ("logs:PutLogEvents",),
    "service-role/AWSLambdaVPCAccessExecutionRole": (
        "logs:PutLogEvents", "ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces",
        "ec2:DeleteNetworkInterface",
    ),
}  # fmt: skip


def _service_side(action: str, sagemaker_job: bool) -> bool:
    prefix, _, name = action.partition(":")
    if prefix == "kms" or action == "iam:PassRole":
        return True
    if prefix == "ec2" and (
        "NetworkInterface" in name or "PrivateIpAddresses" in name or name.startswith("Describe")
    ):
        # SageMaker and Lambda attach the client's network interfaces with the client's role
        # ("Lambda uses permissions in the function's execution role to create and manage
        # network interfaces", https://docs.aws.amazon.com/lambda/latest/dg/configuration-vpc.html;
        # AWSLambdaVPCAccessExecutionRole also lists Assign/UnassignPrivateIpAddresses for it)
        return True
    return sagemaker_job and action == "cloudwatch:PutMetricData"


def services_called(
    actions: Iterable[str], *, sagemaker_job: bool = False
) -> tuple[dict[str, set[str]], list[str]]:
    """Endpoint service -> the actions that call it; and the actions no mapping knows."""
    found: dict[str, set[str]] = {}
    unknown = []
    for action in actions:
        if _service_side(action, sagemaker_job):
            continue
        prefix = action.split(":", 1)[0]
        if action in SAGEMAKER_ACTIONS:
            services: tuple[str, ...] = (SAGEMAKER_ACTIONS[action],)
        elif prefix in SERVICES_OF_PREFIX:
            services = SERVICES_OF_PREFIX[prefix]
        else:
            unknown.append(action)
            continue
        for service in services:
            found.setdefault(service, set()).add(action)
    return found, unknown


def endpoint_service(service_name: Iterable[Any]) -> str:
    """``com.amazonaws.<region>.ecr.api`` -> ``ecr.api``; ``aws.sagemaker.<region>.studio`` ->
    ``sagemaker.studio`` (the region a literal or a token)."""
    text = "".join(p if isinstance(p, str) else "\0" for p in service_name)
    match = re.fullmatch(r"(com\.amazonaws|aws\.sagemaker)\.(?:[a-z0-9-]+|\0)\.(.+)", text)
    if match is None:
        raise ValueError(f"endpoint service name {text!r} is not <prefix>.<region>.<service>")
    prefix, tail = match.groups()
    return f"sagemaker.{tail}" if prefix == "aws.sagemaker" else tail


def _statements_actions(document: Mapping[str, Any]) -> set[str]:
    found: set[str] = set()
    for statement in document.get("Statement", []):
        if statement.get("Effect") != "Allow":
            continue
        action = statement.get("Action", [])
        found |= {action} if isinstance(action, str) else set(action)
    return found


def role_actions(net: AppNetwork, role: Key) -> tuple[set[str], list[str]]:
    """Every action a role is allowed (inline policies, policies of any stack attached to it,
    AWS managed policies it names); and the managed policies this module does not know."""
    props = net.resource(role).get("Properties", {})
    actions: set[str] = set()
    for policy in props.get("Policies", []):
        actions |= _statements_actions(policy["PolicyDocument"])
    for kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
        for (stack, _), policy in net.resources(kind):
            attached = {net.ref(stack, r) for r in policy.get("Roles", []) if isinstance(r, dict)}
            if role in attached:
                actions |= _statements_actions(policy["PolicyDocument"])
    unknown = []
    for arn in props.get("ManagedPolicyArns", []):
        parts = [p for p in _flatten(arn) if isinstance(p, str)]
        text = "".join(parts)
        name = text.split(":policy/", 1)[-1] if ":policy/" in text else text
        if name in MANAGED_POLICY_ACTIONS:
            actions |= set(MANAGED_POLICY_ACTIONS[name])
        else:
            unknown.append(text)
    return actions, unknown


def _flatten(value: Any) -> list[Any]:
    if isinstance(value, dict) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        out: list[Any] = []
        for i, part in enumerate(parts):
            if i and separator:
                out.append(separator)
            out.extend(_flatten(part))
        return out
    if isinstance(value, dict) and "Fn::Sub" in value and isinstance(value["Fn::Sub"], str):
        return [re.sub(r"\$\{[^}]+\}", "", value["Fn::Sub"])]
    return [value]
