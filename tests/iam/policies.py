"""Every role's identity policies and every resource policy of an app, with concrete ARNs.

Reads the synthesized templates of all stacks of a deployed-form app (account
111122223333, region eu-west-1) and resolves ``Ref``, ``Fn::GetAtt``, ``Fn::Join``,
``Fn::Sub``, ``Fn::Select``/``Fn::Split`` and ``Fn::ImportValue`` (across stacks, through the
producer's ``Export``) to concrete strings. Physical names CloudFormation would generate are
derived from the stack name and logical id (``<stack>-<LogicalId>``), and each resource type's
``Ref``/``GetAtt`` gives the ARN shape its service documents, so a policy that names a resource
and a request for that resource meet on the same string.

AWS managed policies are not downloaded: :data:`AWS_MANAGED_POLICIES` lists the few the app
attaches, with the statements of theirs that the runtime calls rely on (an allow-list, written
from the policies' published documents; anything not listed is treated as not granted).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from aws_cdk import Stack

from tests.synth import DEPLOY_ACCOUNT, DEPLOY_REGION, SynthesizedApp
from tools.synthesis import exports, templates_by_name

ACCOUNT = DEPLOY_ACCOUNT
REGION = DEPLOY_REGION
PARTITION = "aws"
PSEUDO = {
    "AWS::AccountId": ACCOUNT,
    "AWS::Region": REGION,
    "AWS::Partition": PARTITION,
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::NoValue": None,
}

# The AWS managed policies the app attaches, reduced to what the runtime calls need.
# Sources: the policies' documents in the AWS Managed Policy Reference
# (https://docs.aws.amazon.com/aws-managed-policy/latest/reference/), e.g.
# AWSLambdaBasicExecutionRole: logs:CreateLogGroup/CreateLogStream/PutLogEvents on "*".
AWS_MANAGED_POLICIES: dict[str, list[dict[str, Any]]] = {
    # RDS enhanced monitoring (the MLflow databases' monitoring role): RDS writes OS metrics
    # to its RDSOSMetrics log group. No runtime call of ours relies on it.
    "service-role/AmazonRDSEnhancedMonitoringRole": [
        {
            "Effect": "Allow",
            "Action": ["logs:CreateLogGroup", "logs:PutRetentionPolicy"],
            "Resource": "arn:aws:logs:*:*:log-group:RDS*",
        },
        {
            "Effect": "Allow",
            "Action": [
                "logs:CreateLogStream",
                "logs:PutLogEvents",
                "logs:DescribeLogStreams",
                "logs:GetLogEvents",
            ],
            "Resource": "arn:aws:logs:*:*:log-group:RDS*:log-stream:*",
        },
    ],
    "service-role/AWSLambdaBasicExecutionRole": [
        {
            "Effect": "Allow",
            "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": "*",
        }
    ],
    # v3 (AWS Managed Policy Reference, AWSLambdaVPCAccessExecutionRole.html): the MLflow
    # users' rotation function in the VPC.
    "service-role/AWSLambdaVPCAccessExecutionRole": [
        {
            "Effect": "Allow",
            "Action": [
                "logs:CreateLogGroup",
                "logs:CreateLogStream",
                "logs:PutLogEvents",
                "ec2:CreateNetworkInterface",
                "ec2:DescribeNetworkInterfaces",
                "ec2:DescribeSubnets",
                "ec2:DeleteNetworkInterface",
                "ec2:AssignPrivateIpAddresses",
                "ec2:UnassignPrivateIpAddresses",
            ],
            "Resource": "*",
        }
    ],
    "AmazonSSMManagedInstanceCore": [
        {
            "Effect": "Allow",
            "Action": [
                "ssm:DescribeAssociation",
                "ssm:GetDeployablePatchSnapshotForInstance",
                "ssm:GetDocument",
                "ssm:DescribeDocument",
                "ssm:GetManifest",
                "ssm:GetParameter",
                "ssm:GetParameters",
                "ssm:ListAssociations",
                "ssm:ListInstanceAssociations",
                "ssm:PutInventory",
                "ssm:PutComplianceItems",
                "ssm:PutConfigurePackageResult",
                "ssm:UpdateAssociationStatus",
                "ssm:UpdateInstanceAssociationStatus",
                "ssm:UpdateInstanceInformation",
            ],
            "Resource": "*",
        },
        {
            "Effect": "Allow",
            "Action": [
                "ssmmessages:CreateControlChannel",
                "ssmmessages:CreateDataChannel",
                "ssmmessages:OpenControlChannel",
                "ssmmessages:OpenDataChannel",
            ],
            "Resource": "*",
        },
        {
            "Effect": "Allow",
            "Action": [
                "ec2messages:AcknowledgeMessage",
                "ec2messages:DeleteMessage",
                "ec2messages:FailMessage",
                "ec2messages:GetEndpoint",
                "ec2messages:GetMessages",
                "ec2messages:SendReply",
            ],
            "Resource": "*",
        },
    ],
    "CloudWatchAgentServerPolicy": [
        {
            "Effect": "Allow",
            "Action": [
                "cloudwatch:PutMetricData",
                "ec2:DescribeVolumes",
                "ec2:DescribeTags",
                "logs:PutLogEvents",
                "logs:PutRetentionPolicy",
                "logs:DescribeLogStreams",
                "logs:DescribeLogGroups",
                "logs:CreateLogStream",
                "logs:CreateLogGroup",
            ],
            "Resource": "*",
        },
        {
            "Effect": "Allow",
            "Action": ["ssm:GetParameter"],
            "Resource": "arn:aws:ssm:*:*:parameter/AmazonCloudWatch-*",
        },
    ],
}
AWS_MANAGED_ARN = re.compile(r"^arn:aws:iam::aws:policy/(?P<name>.+)$")


def _name(stack: str, logical_id: str, limit: int = 64) -> str:
    return f"{stack}-{logical_id}"[:limit]


@dataclass(frozen=True)
class Role:
    stack: str
    logical_id: str
    arn: str
    trust_policy: dict[str, Any]
    identity_policies: list[dict[str, Any]] = field(default_factory=list)


class Resolver:
    """Concrete values for the intrinsics of every template of one deployed-form app."""

    def __init__(self, app: SynthesizedApp) -> None:
        if app.platform.storage.account != ACCOUNT:
            raise ValueError("policies need the deployed form (a concrete account and region)")
        self.app = app
        self.templates = templates_by_name(app.assembly)
        self.exports = exports(self.templates)

    # --- intrinsics -------------------------------------------------------------------
    def resolve(self, stack: str, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(stack, v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref" or key.startswith("Fn::"):
                return self._intrinsic(stack, key, arg)
        return {k: self.resolve(stack, v) for k, v in value.items()}

    def _intrinsic(self, stack: str, key: str, arg: Any) -> Any:
        if key == "Ref":
            if arg == "AWS::StackName":
                return stack
            if arg == "AWS::StackId":  # the stack's own ARN; its id part is CloudFormation's
                return f"arn:{PARTITION}:cloudformation:{REGION}:{ACCOUNT}:stack/{stack}/0000"
            return PSEUDO[arg] if arg in PSEUDO else self.ref(stack, arg)
        if key == "Fn::GetAtt":
            logical_id, attr = arg if isinstance(arg, list) else arg.split(".", 1)
            return self.get_att(stack, logical_id, attr)
        if key == "Fn::Join":
            sep, parts = arg
            return sep.join(str(p) for p in self.resolve(stack, parts))
        if key == "Fn::Sub":
            return self._sub(stack, arg)
        if key == "Fn::ImportValue":
            producer, expr = self.exports[self.resolve(stack, arg)]
            return self.resolve(producer, expr)
        if key == "Fn::Select":
            index, items = self.resolve(stack, arg)
            return items[int(index)]
        if key == "Fn::Split":
            sep, text = self.resolve(stack, arg)
            return text.split(sep)
        if key == "Fn::GetAZs":
            return [f"{REGION}{s}" for s in "abc"]
        if key == "Fn::Base64":
            return self.resolve(stack, arg)
        raise ValueError(f"{stack}: intrinsic {key} is not resolved by tests/iam")

    def _sub(self, stack: str, arg: Any) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else arg
        values = {k: self.resolve(stack, v) for k, v in variables.items()}

        def one(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in values:
                return str(values[name])
            if name in PSEUDO:
                return str(PSEUDO[name])
            if "." in name:
                logical_id, attr = name.split(".", 1)
                return str(self.get_att(stack, logical_id, attr))
            return str(self.ref(stack, name))

        return re.sub(r"\$\{([^}!]+)\}", one, text)

    def _resource(self, stack: str, logical_id: str) -> dict[str, Any]:
        resource: dict[str, Any] = self.templates[stack]["Resources"][logical_id]
        return resource

    def _prop(self, stack: str, logical_id: str, name: str) -> Any:
        value = self._resource(stack, logical_id).get("Properties", {}).get(name)
        return None if value is None else self.resolve(stack, value)

    def physical_name(self, stack: str, logical_id: str) -> str:
        kind = self._resource(stack, logical_id)["Type"]
        explicit = {
            "AWS::IAM::Role": "RoleName",
            "AWS::S3::Bucket": "BucketName",
            "AWS::SNS::Topic": "TopicName",
            "AWS::SQS::Queue": "QueueName",
            "AWS::SecretsManager::Secret": "Name",
            "AWS::Logs::LogGroup": "LogGroupName",
            "AWS::Lambda::Function": "FunctionName",
            "AWS::SageMaker::Pipeline": "PipelineName",
            "AWS::SageMaker::MlflowTrackingServer": "TrackingServerName",
            "AWS::SageMaker::MlflowApp": "Name",
            "AWS::Scheduler::Schedule": "Name",
            "AWS::Events::Rule": "Name",
            "AWS::CloudWatch::Alarm": "AlarmName",
            "AWS::SageMaker::Domain": "DomainName",
        }.get(kind)
        if explicit is not None:
            value = self._prop(stack, logical_id, explicit)
            if value is not None:
                return str(value)
        if kind == "AWS::S3::Bucket":
            return _name(stack, logical_id, 63).lower()
        return _name(stack, logical_id)

    def ref(self, stack: str, logical_id: str) -> Any:
        kind = self._resource(stack, logical_id)["Type"]
        name = self.physical_name(stack, logical_id)
        if kind in ("AWS::SNS::Topic", "AWS::SecretsManager::Secret", "AWS::IAM::ManagedPolicy"):
            return self.get_att(stack, logical_id, "Arn")
        if kind == "AWS::SQS::Queue":
            return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{name}"
        if kind == "AWS::ECS::Service":  # Ref: the service ARN (long form, with the cluster)
            props = self._resource(stack, logical_id)["Properties"]
            cluster = self.resolve(stack, props["Cluster"])
            return f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/{cluster}/{name}"
        if kind == "AWS::KMS::Key":
            return f"key-{logical_id.lower()}"
        if kind == "AWS::EC2::VPC":
            return f"vpc-{logical_id.lower()}"
        if kind == "AWS::EC2::SecurityGroup":
            return f"sg-{logical_id.lower()}"
        if kind == "AWS::EC2::Subnet":
            return f"subnet-{logical_id.lower()}"
        if kind == "AWS::SageMaker::Domain":
            return self.get_att(stack, logical_id, "DomainArn")
        if kind == "AWS::SecretsManager::SecretTargetAttachment":
            return self._prop(stack, logical_id, "SecretId")  # Ref: the secret's ARN
        if kind == "AWS::Route53::HostedZone":
            return f"Z{logical_id.upper()}"
        return name

    def get_att(self, stack: str, logical_id: str, attr: str) -> Any:
        kind = self._resource(stack, logical_id)["Type"]
        name = self.physical_name(stack, logical_id)
        arn = f"arn:{PARTITION}:{{}}:{REGION}:{ACCOUNT}:{{}}"
        arns: dict[tuple[str, str], str] = {
            ("AWS::IAM::Role", "Arn"): f"arn:aws:iam::{ACCOUNT}:role/{name}",
            ("AWS::IAM::InstanceProfile", "Arn"): f"arn:aws:iam::{ACCOUNT}:instance-profile/{name}",
            ("AWS::IAM::ManagedPolicy", "Arn"): f"arn:aws:iam::{ACCOUNT}:policy/{name}",
            ("AWS::KMS::Key", "Arn"): arn.format("kms", f"key/key-{logical_id.lower()}"),
            ("AWS::S3::Bucket", "Arn"): f"arn:aws:s3:::{name}",
            ("AWS::SNS::Topic", "Arn"): arn.format("sns", name),
            ("AWS::SNS::Topic", "TopicArn"): arn.format("sns", name),
            ("AWS::SQS::Queue", "Arn"): arn.format("sqs", name),
            ("AWS::SecretsManager::Secret", "Arn"): arn.format(
                "secretsmanager", f"secret:{name}-AbCdEf"
            ),
            ("AWS::Logs::LogGroup", "Arn"): arn.format("logs", f"log-group:{name}:*"),
            ("AWS::Lambda::Function", "Arn"): arn.format("lambda", f"function:{name}"),
            ("AWS::SageMaker::MlflowApp", "Arn"): arn.format(
                "sagemaker", f"mlflow-app/app-{logical_id.lower()[:12]}"
            ),
            ("AWS::SageMaker::MlflowTrackingServer", "TrackingServerArn"): arn.format(
                "sagemaker", f"mlflow-tracking-server/{name}"
            ),
            ("AWS::SageMaker::Domain", "DomainArn"): arn.format(
                "sagemaker", f"domain/d-{logical_id.lower()[:12]}"
            ),
            ("AWS::SageMaker::Pipeline", "Arn"): arn.format(
                "sagemaker", f"pipeline/{name.lower()}"
            ),
            ("AWS::Scheduler::Schedule", "Arn"): arn.format(
                "scheduler", f"schedule/default/{name}"
            ),
            ("AWS::Events::Rule", "Arn"): arn.format("events", f"rule/{name}"),
            ("AWS::CloudWatch::Alarm", "Arn"): arn.format("cloudwatch", f"alarm:{name}"),
            ("AWS::SageMaker::StudioLifecycleConfig", "StudioLifecycleConfigArn"): arn.format(
                "sagemaker", f"studio-lifecycle-config/{name.lower()}"
            ),
            ("AWS::Route53::HostedZone", "Id"): f"Z{logical_id.upper()}",
        }
        if (kind, attr) in arns:
            return arns[(kind, attr)]
        if kind == "AWS::SageMaker::Domain" and attr == "DomainId":
            return f"d-{logical_id.lower()[:12]}"
        if kind == "AWS::SQS::Queue" and attr == "QueueName":
            return name
        if kind == "AWS::SNS::Topic" and attr == "TopicName":
            return name
        if kind == "AWS::EC2::SecurityGroup" and attr == "GroupId":
            return self.ref(stack, logical_id)
        if kind == "AWS::EC2::VPC" and attr == "DefaultSecurityGroup":
            return f"sg-default-{logical_id.lower()}"
        return f"{logical_id}.{attr}"

    # --- policies ---------------------------------------------------------------------
    def resources(self, kind: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
        for stack, template in self.templates.items():
            for logical_id, resource in template.get("Resources", {}).items():
                if resource["Type"] == kind:
                    yield stack, logical_id, resource

    @cached_property
    def roles(self) -> dict[str, Role]:
        """Every role by ARN, with its inline, attached and managed policies."""
        by_name: dict[str, Role] = {}
        for stack, logical_id, resource in self.resources("AWS::IAM::Role"):
            props = self.resolve(stack, resource.get("Properties", {}))
            role = Role(
                stack=stack,
                logical_id=logical_id,
                arn=self.get_att(stack, logical_id, "Arn"),
                trust_policy=props["AssumeRolePolicyDocument"],
            )
            for policy in props.get("Policies", []):
                role.identity_policies.append(
                    {"name": policy["PolicyName"], "policy": policy["PolicyDocument"]}
                )
            for policy_arn in props.get("ManagedPolicyArns", []):
                role.identity_policies.append(self._managed(policy_arn))
            by_name[self.ref(stack, logical_id)] = role
        for kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            for stack, logical_id, resource in self.resources(kind):
                props = self.resolve(stack, resource["Properties"])
                for role_name in props.get("Roles", []):
                    if role_name in by_name:
                        by_name[role_name].identity_policies.append(
                            {"name": f"{stack}/{logical_id}", "policy": props["PolicyDocument"]}
                        )
        return {role.arn: role for role in by_name.values()}

    def _managed(self, policy_arn: str) -> dict[str, Any]:
        match = AWS_MANAGED_ARN.match(policy_arn)
        if match is not None:
            name = match.group("name")
            if name not in AWS_MANAGED_POLICIES:
                raise ValueError(
                    f"AWS managed policy {policy_arn} is not in tests/iam/policies.py "
                    "AWS_MANAGED_POLICIES: add the statements the runtime calls rely on"
                )
            return {
                "name": policy_arn,
                "policy": {"Version": "2012-10-17", "Statement": AWS_MANAGED_POLICIES[name]},
            }
        for stack, logical_id, resource in self.resources("AWS::IAM::ManagedPolicy"):
            if self.get_att(stack, logical_id, "Arn") == policy_arn:
                document = self.resolve(stack, resource["Properties"]["PolicyDocument"])
                return {"name": policy_arn, "policy": document}
        raise ValueError(f"managed policy {policy_arn} is neither AWS managed nor in the app")

    @cached_property
    def resource_policies(self) -> dict[str, dict[str, Any]]:
        """Resource ARN (key, bucket, topic, queue, secret) -> its resource policy."""
        found: dict[str, dict[str, Any]] = {}
        for stack, logical_id, resource in self.resources("AWS::KMS::Key"):
            found[self.get_att(stack, logical_id, "Arn")] = self.resolve(
                stack, resource["Properties"]["KeyPolicy"]
            )
        for stack, _, resource in self.resources("AWS::S3::BucketPolicy"):
            props = self.resolve(stack, resource["Properties"])
            found[f"arn:aws:s3:::{props['Bucket']}"] = props["PolicyDocument"]
        for stack, _, resource in self.resources("AWS::SNS::TopicPolicy"):
            props = self.resolve(stack, resource["Properties"])
            for topic in props["Topics"]:
                found[topic] = props["PolicyDocument"]
        for stack, _, resource in self.resources("AWS::SQS::QueuePolicy"):
            props = self.resolve(stack, resource["Properties"])
            for url in props["Queues"]:
                account, name = url.rsplit("/", 2)[-2:]
                found[f"arn:aws:sqs:{REGION}:{account}:{name}"] = props["PolicyDocument"]
        for stack, _, resource in self.resources("AWS::SecretsManager::ResourcePolicy"):
            props = self.resolve(stack, resource["Properties"])
            found[props["SecretId"]] = props["ResourcePolicy"]
        return found

    def resource_policy_for(self, resource_arn: str) -> dict[str, Any] | None:
        """The policy of the resource ``resource_arn`` names (an S3 object: its bucket's)."""
        if resource_arn in self.resource_policies:
            return self.resource_policies[resource_arn]
        if resource_arn.startswith("arn:aws:s3:::"):
            bucket = resource_arn.removeprefix("arn:aws:s3:::").split("/", 1)[0]
            return self.resource_policies.get(f"arn:aws:s3:::{bucket}")
        return None

    # --- tokens of the app's constructs -------------------------------------------------
    def token(self, scope: Stack, value: Any) -> Any:
        """The concrete value of a CDK token (an ARN, a name) as the templates resolve it."""
        return self.resolve(scope.stack_name, scope.resolve(value))
