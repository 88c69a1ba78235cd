"""Network reachability over the synthesized templates of every stack of one app.

A template can hold one side of a security-group rule and not the other (an egress from the
client with no ingress on the server) and still synthesize, lint and match its snapshot. This
model reads ALL templates of an app together, resolves every security group across stacks
(``Fn::ImportValue`` -> the producer's ``Export`` -> its ``GetAtt``/``Ref``), collects the rules
of each group (inline ``SecurityGroupIngress``/``SecurityGroupEgress`` and the separate
``AWS::EC2::SecurityGroupIngress``/``Egress`` resources of any stack), and derives the
client -> server pairs the platform needs from the templates themselves:

- every MLflow client (Studio's domain security groups, SageMaker jobs' ``VpcConfig`` /
  ``NetworkConfig`` in the pipeline definitions) -> the server its own MLFLOW_TRACKING_URI names
  (a load balancer's listener, or the instance behind a private DNS name);
- each load balancer -> the ECS tasks its listener forwards to, on the container port;
- each compute node of a stack (ECS tasks, an Auto Scaling group) -> that stack's databases;
- every VPC client -> each AWS service it calls (what its IAM role may call, tests/aws_calls.py):
  an interface endpoint of that service in its VPC on 443, or else its subnets' default route
  to a NAT gateway or NAT instance (whose group must let the subnets in) and the NAT's own way
  out; S3 through the gateway endpoint on every client subnet's route table. A service with
  neither is a failure, and so is an interface endpoint no client calls (money for nothing).

A pair is reachable on port P when the client's groups allow egress to the server (its group,
or a CIDR covering all the server's subnets) AND the server's groups allow ingress from the
client (its group, or a CIDR covering all the client's subnets) on P.

Semantics relied on (AWS::EC2::SecurityGroup, CloudFormation reference): "When you create a
security group, if you do not add egress rules, we add egress rules that allow all outbound
IPv4 and IPv6 traffic" (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-resource-ec2-securitygroup.html),
and CloudFormation strips that default when an egress rule is added to the group later
(aws/aws-cdk#998). The model takes the cautious reading: a group allows all outbound by
default only when no template gives it any egress rule, inline or as a separate resource.

Not in the templates, so not checked here: Studio's home EFS on 2049 uses the security groups
SageMaker creates for the domain ("SageMaker AI adds a security group to allow NFS traffic
from Amazon SageMaker AI Studio", UserSettings.SecurityGroups in the SageMaker API reference),
and DNS through the VPC resolver needs no security-group rule.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from mlops_cdk.constructs.pipeline_definition import all_steps
from tests.aws_calls import S3, endpoint_service, role_actions, services_called
from tools.synthesis import exports

Template = Mapping[str, Any]
Key = tuple[str, str]  # (stack name, logical id)
Network = ipaddress.IPv4Network

ANYWHERE = ipaddress.IPv4Network("0.0.0.0/0")
HTTPS = 443
ALL_TRAFFIC = -1  # a pair that needs every protocol and port (distributed training)
DEFAULT_DB_PORTS = {"mysql": 3306, "mariadb": 3306, "postgres": 5432, "aurora-mysql": 3306}
DEFAULT_DB_PORTS["aurora-postgresql"] = 5432


@dataclass(frozen=True)
class Rule:
    """One direction of one rule: protocol and ports, and a peer (a group or a CIDR)."""

    protocol: str  # "tcp", "udp", "icmp" or "-1"
    from_port: int
    to_port: int
    group: Key | None = None
    cidr: Network | None = None
    source: str = ""  # where it was written, for messages

    def allows(self, port: int) -> bool:
        if self.protocol == "-1":
            return True
        if port == ALL_TRAFFIC:
            return False
        return self.protocol == "tcp" and self.from_port <= port <= self.to_port


@dataclass
class Group:
    key: Key
    ingress: list[Rule] = field(default_factory=list)
    egress: list[Rule] = field(default_factory=list)


@dataclass(frozen=True)
class Node:
    """A party to a connection: its security groups and the subnets it sits in."""

    name: str
    groups: tuple[Key, ...]
    subnets: tuple[Key, ...]


@dataclass(frozen=True)
class Pair:
    client: Node
    server: Node
    port: int
    why: str

    def __str__(self) -> str:
        port = "all traffic" if self.port == ALL_TRAFFIC else self.port
        return f"{self.client.name} -> {self.server.name} on {port} ({self.why})"


class UnresolvedError(ValueError):
    """A value the model cannot trace to a resource: the check must not guess."""


class AppNetwork:
    """The templates of every stack of one app, resolved into groups, subnets and routes."""

    def __init__(self, templates: Mapping[str, Template]) -> None:
        self.templates = dict(templates)
        self.exports = exports(self.templates)
        self.groups: dict[Key, Group] = {
            key: Group(key) for key, _ in self.resources("AWS::EC2::SecurityGroup")
        }
        self._collect_rules()

    # --- reading templates -------------------------------------------------------------

    def resources(self, type_: str) -> Iterator[tuple[Key, Mapping[str, Any]]]:
        for stack, template in self.templates.items():
            for logical_id, resource in template.get("Resources", {}).items():
                if resource["Type"] == type_:
                    yield (stack, logical_id), resource.get("Properties", {})

    def resource(self, key: Key) -> Mapping[str, Any]:
        resource: Mapping[str, Any] = self.templates[key[0]]["Resources"][key[1]]
        return resource

    def resolve(self, stack: str, value: Any) -> tuple[str, Any]:
        """Follow ``Fn::ImportValue`` to the producer's exported value (in the producer's stack)."""
        while isinstance(value, dict) and "Fn::ImportValue" in value:
            name = value["Fn::ImportValue"]
            if not isinstance(name, str) or name not in self.exports:
                raise UnresolvedError(f"{stack}: import {name!r} has no matching export")
            stack, value = self.exports[name]
        return stack, value

    def ref(self, stack: str, value: Any) -> Key:
        """The resource a ``Ref``/``GetAtt`` (possibly imported) points at."""
        stack, value = self.resolve(stack, value)
        if isinstance(value, dict) and "Ref" in value:
            return stack, value["Ref"]
        if isinstance(value, dict) and "Fn::GetAtt" in value:
            return stack, value["Fn::GetAtt"][0]
        raise UnresolvedError(f"{stack}: {json.dumps(value)} is not a resource reference")

    def group_key(self, stack: str, value: Any) -> Key:
        key = self.ref(stack, value)
        if key not in self.groups:
            raise UnresolvedError(f"{key} is not a security group of this app")
        return key

    def port(self, stack: str, value: Any) -> int:
        """A literal port, or a database's ``Endpoint.Port`` (its Port, else the engine's)."""
        stack, value = self.resolve(stack, value)
        if isinstance(value, (int, str)) and str(value).lstrip("-").isdigit():
            return int(value)
        if isinstance(value, dict) and "Fn::GetAtt" in value:
            logical_id, attribute = value["Fn::GetAtt"]
            if attribute == "Endpoint.Port":
                return self.database_port((stack, logical_id))
        raise UnresolvedError(f"{stack}: port {json.dumps(value)} cannot be resolved")

    def database_port(self, key: Key) -> int:
        props = self.resource(key).get("Properties", {})
        if "Port" in props:
            return int(props["Port"])
        return DEFAULT_DB_PORTS[props["Engine"]]

    # --- rules ---------------------------------------------------------------------------

    def _rule(self, stack: str, props: Mapping[str, Any], peer_key: str, source: str) -> Rule:
        protocol = str(props["IpProtocol"])
        if protocol in ("6", "tcp"):
            protocol = "tcp"
        whole = protocol == "-1"
        from_port = 0 if whole else self.port(stack, props.get("FromPort", 0))
        to_port = 65535 if whole else self.port(stack, props.get("ToPort", 65535))
        group = None
        cidr = None
        if peer_key in props:
            group = self.group_key(stack, props[peer_key])
        elif "CidrIp" in props:
            cidr = ipaddress.IPv4Network(props["CidrIp"])
        return Rule(protocol, from_port, to_port, group=group, cidr=cidr, source=source)

    def _collect_rules(self) -> None:
        for key, props in self.resources("AWS::EC2::SecurityGroup"):
            group = self.groups[key]
            stack = key[0]
            for item in props.get("SecurityGroupIngress", []):
                rule = self._rule(stack, item, "SourceSecurityGroupId", f"{key[1]} (inline)")
                group.ingress.append(rule)
            for item in props.get("SecurityGroupEgress", []):
                rule = self._rule(stack, item, "DestinationSecurityGroupId", f"{key[1]} (inline)")
                group.egress.append(rule)
        for type_, peer, direction in (
            ("AWS::EC2::SecurityGroupIngress", "SourceSecurityGroupId", "ingress"),
            ("AWS::EC2::SecurityGroupEgress", "DestinationSecurityGroupId", "egress"),
        ):
            for (stack, logical_id), props in self.resources(type_):
                owner = self.groups[self.group_key(stack, props["GroupId"])]
                rule = self._rule(stack, props, peer, f"{stack}/{logical_id}")
                getattr(owner, direction).append(rule)
        for key, props in self.resources("AWS::EC2::SecurityGroup"):
            group = self.groups[key]
            if "SecurityGroupEgress" not in props and not group.egress:  # the AWS default
                group.egress.append(Rule("-1", 0, 65535, cidr=ANYWHERE, source="AWS default"))

    # --- subnets, routes -------------------------------------------------------------------

    def subnet_keys(self, stack: str, values: Iterable[Any]) -> tuple[Key, ...]:
        return tuple(sorted(self.ref(stack, value) for value in values))

    def subnet_cidr(self, key: Key) -> Network:
        cidr = self.resource(key)["Properties"]["CidrBlock"]
        return ipaddress.IPv4Network(cidr)

    def route_table_of(self, subnet: Key) -> Key:
        for (stack, _), props in self.resources("AWS::EC2::SubnetRouteTableAssociation"):
            if stack == subnet[0] and self.ref(stack, props["SubnetId"]) == subnet:
                return self.ref(stack, props["RouteTableId"])
        raise UnresolvedError(f"subnet {subnet} has no route table association")

    def default_route(self, route_table: Key) -> Mapping[str, Any] | None:
        for (stack, _), props in self.resources("AWS::EC2::Route"):
            if (
                stack == route_table[0]
                and self.ref(stack, props["RouteTableId"]) == route_table
                and props.get("DestinationCidrBlock") == "0.0.0.0/0"
            ):
                return props
        return None

    # --- the check -----------------------------------------------------------------------------

    def _covers(self, rule: Rule, node: Node, port: int) -> bool:
        if not rule.allows(port):
            return False
        if rule.group is not None:
            return rule.group in node.groups
        if rule.cidr is None:
            return False
        if not node.subnets:  # the internet, for a NAT's way out
            return rule.cidr == ANYWHERE
        return all(self.subnet_cidr(s).subnet_of(rule.cidr) for s in node.subnets)

    def egress_allowed(self, client: Node, server: Node, port: int) -> bool:
        return any(
            self._covers(rule, server, port)
            for group in client.groups
            for rule in self.groups[group].egress
        )

    def ingress_allowed(self, client: Node, server: Node, port: int) -> bool:
        return any(
            self._covers(rule, client, port)
            for group in server.groups
            for rule in self.groups[group].ingress
        )

    def failures(self, pair: Pair) -> list[str]:
        """What is missing for ``pair`` (empty when both sides allow the port)."""
        missing = []
        if not self.egress_allowed(pair.client, pair.server, pair.port):
            missing.append(f"no egress from {list(pair.client.groups)}")
        if pair.server.groups and not self.ingress_allowed(pair.client, pair.server, pair.port):
            missing.append(f"no ingress on {list(pair.server.groups)}")
        return [f"{pair}: {'; '.join(missing)}"] if missing else []


INTERNET = Node("the internet", (), ())
# Studio apps in VpcOnly mode call these whatever their role (tests/aws_calls.py).
STUDIO_SERVICES = ("sagemaker.api", "sagemaker.runtime", "sts")


def _cut(parts: list[Any], begin: int, end: int) -> list[Any]:
    """Characters ``begin:end`` of flattened ``parts`` (a token counts as one), tokens kept."""
    out: list[Any] = []
    position = 0
    for part in parts:
        size = len(part) if isinstance(part, str) else 1
        lo, hi = max(begin, position), min(end, position + size)
        if lo < hi:
            out.append(part[lo - position : hi - position] if isinstance(part, str) else part)
        position += size
    return out


def flatten(value: Any) -> list[Any]:
    """A string-valued template expression as a list of literal strings and tokens."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict) and "Fn::Base64" in value:
        return flatten(value["Fn::Base64"])
    if isinstance(value, dict) and "Fn::Join" in value:
        separator, items = value["Fn::Join"]
        parts: list[Any] = []
        for index, item in enumerate(items):
            if index and separator:
                parts.append(separator)
            parts.extend(flatten(item))
        return parts
    return [value]


def parse_with_tokens(value: Any) -> Any:
    """JSON text built with ``Fn::Join`` (a pipeline definition), tokens kept as they were."""
    tokens: list[Any] = []
    text = ""
    for part in flatten(value):
        if isinstance(part, str):
            text += part
        else:
            tokens.append(part)
            text += f"@@TOKEN{len(tokens) - 1}@@"

    def restore(item: Any) -> Any:
        if isinstance(item, dict):
            return {k: restore(v) for k, v in item.items()}
        if isinstance(item, list):
            return [restore(v) for v in item]
        if isinstance(item, str):
            match = re.fullmatch(r"@@TOKEN(\d+)@@", item)
            if match:
                return tokens[int(match.group(1))]
            if "@@TOKEN" in item:
                pieces = re.split(r"(@@TOKEN\d+@@)", item)
                return [tokens[int(p[7:-2])] if p.startswith("@@TOKEN") else p for p in pieces if p]
        return item

    return restore(json.loads(text))


def walk(item: Any) -> Iterator[Mapping[str, Any]]:
    if isinstance(item, dict):
        yield item
        for value in item.values():
            yield from walk(value)
    elif isinstance(item, list):
        for value in item:
            yield from walk(value)


@dataclass
class Platform:
    """The nodes and pairs one app needs, derived from its templates."""

    net: AppNetwork
    mlflow_clients: list[tuple[Node, list[Any], str]] = field(default_factory=list)
    vpc_clients: list[Node] = field(default_factory=list)
    # client name -> endpoint service -> the actions that call it (tests/aws_calls.py)
    calls: dict[str, dict[str, set[str]]] = field(default_factory=dict)
    unused_endpoints: list[str] = field(default_factory=list)
    pairs: list[Pair] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, templates: Mapping[str, Template]) -> Platform:
        platform = cls(AppNetwork(templates))
        platform._derive()
        return platform

    # --- nodes ---------------------------------------------------------------------------

    def _node(self, name: str, stack: str, groups: Iterable[Any], subnets: Iterable[Any]) -> Node:
        net = self.net
        return Node(
            name,
            tuple(sorted({net.group_key(stack, g) for g in groups})),
            net.subnet_keys(stack, subnets),
        )

    def _calls(
        self,
        node: Node,
        stack: str,
        roles: Iterable[Any],
        *,
        sagemaker_job: bool = False,
        baseline: Iterable[str] = (),
    ) -> None:
        """Record the AWS services ``node`` calls: what its roles may call, plus ``baseline``."""
        calls = self.calls.setdefault(node.name, {})
        for service in baseline:
            calls.setdefault(service, set()).add("(documented need)")
        for value in roles:
            actions, unknown_policies = role_actions(self.net, self.net.ref(stack, value))
            found, unknown = services_called(actions, sagemaker_job=sagemaker_job)
            for service, by in found.items():
                calls.setdefault(service, set()).update(by)
            for item in [*unknown_policies, *unknown]:
                self.problems.append(f"{node.name}: no endpoint mapping for {item}")

    def _studio(self) -> None:
        for (stack, _), props in self.net.resources("AWS::SageMaker::Domain"):
            groups = [
                *props["DefaultUserSettings"].get("SecurityGroups", []),
                *props.get("DefaultSpaceSettings", {}).get("SecurityGroups", []),
            ]
            node = self._node(f"Studio apps ({stack})", stack, groups, props["SubnetIds"])
            self.vpc_clients.append(node)
            if props.get("AppNetworkAccessType") == "VpcOnly":  # else apps use SageMaker's internet
                roles = [
                    props["DefaultUserSettings"]["ExecutionRole"],
                    *[r for r in [props.get("DefaultSpaceSettings", {}).get("ExecutionRole")] if r],
                ]
                self._calls(node, stack, roles, baseline=STUDIO_SERVICES)
            uri = self._studio_uri(stack)
            if uri is not None:
                self.mlflow_clients.append((node, uri, stack))

    # Where a Studio stack writes the tracking URI its apps use: the SSM parameter the
    # lifecycle script reads at each app start ({"uri": "..."}), or the script itself.
    _STUDIO_URI_SOURCES = (
        ("AWS::SSM::Parameter", "Value", '"uri":"', '"'),
        ("AWS::SageMaker::StudioLifecycleConfig", "StudioLifecycleConfigContent", "uri='", "'"),
    )

    def _studio_uri(self, stack: str) -> list[Any] | None:
        """The tracking URI the Studio stack gives its apps, as literal parts and tokens."""
        for resource_type, prop, opening, closing in self._STUDIO_URI_SOURCES:
            for (where, _), props in self.net.resources(resource_type):
                if where != stack or not isinstance(props.get(prop), str | dict):
                    continue
                parts = flatten(props[prop])
                text = "".join(p if isinstance(p, str) else "\0" for p in parts)
                start = text.find(opening)
                if start < 0:
                    continue
                begin = start + len(opening)
                return _cut(parts, begin, text.index(closing, begin))
        return None

    def _jobs(self) -> None:
        for (stack, logical_id), props in self.net.resources("AWS::SageMaker::Pipeline"):
            definition = parse_with_tokens(props["PipelineDefinition"]["PipelineDefinitionBody"])
            for step in all_steps(definition.get("Steps", [])):
                arguments = step.get("Arguments", {})
                if step.get("Type") == "Tuning":
                    # A tuning job's training jobs run as its TrainingJobDefinition says.
                    arguments = arguments.get("TrainingJobDefinition", {})
                vpc = arguments.get("VpcConfig") or arguments.get("NetworkConfig", {}).get(
                    "VpcConfig"
                )
                if not vpc:
                    continue
                node = self._node(
                    f"job {step['Name']} of {logical_id} ({stack})",
                    stack,
                    vpc["SecurityGroupIds"],
                    vpc["Subnets"],
                )
                self.vpc_clients.append(node)
                self._calls(node, stack, [arguments["RoleArn"]], sagemaker_job=True)
                if step["Type"] in ("Training", "Tuning"):
                    # "allow inbound connections between members of the same security group"
                    # (distributed training, any port):
                    # https://docs.aws.amazon.com/sagemaker/latest/dg/train-vpc.html
                    self.pairs.append(Pair(node, node, ALL_TRAFFIC, "instances of one job"))
                uri = arguments.get("Environment", {}).get("MLFLOW_TRACKING_URI")
                if uri is not None:
                    parts = uri if isinstance(uri, list) else flatten(uri)
                    self.mlflow_clients.append((node, parts, stack))

    def _lambdas(self) -> None:
        for (stack, logical_id), props in self.net.resources("AWS::Lambda::Function"):
            vpc = props.get("VpcConfig")
            if vpc:
                node = self._node(
                    f"function {logical_id} ({stack})",
                    stack,
                    vpc["SecurityGroupIds"],
                    vpc["SubnetIds"],
                )
                self.vpc_clients.append(node)
                self._calls(node, stack, [props["Role"]])
                # A function that talks to MLflow (the users' secret rotation function).
                uri = props.get("Environment", {}).get("Variables", {}).get("MLFLOW_TRACKING_URI")
                if uri is not None:
                    self.mlflow_clients.append((node, flatten(uri), stack))

    def _rotation_functions(self) -> list[tuple[str, Node]]:
        """Secrets Manager's published rotation functions (serverless applications) in a VPC.

        CDK's ``add_rotation_single_user``/``add_rotation_multi_user`` deploy them with their
        security group and subnets as application parameters; they log in to the database.
        """
        found = []
        for (stack, logical_id), props in self.net.resources("AWS::Serverless::Application"):
            parameters = props.get("Parameters", {})
            if "vpcSecurityGroupIds" not in parameters:
                continue
            groups = [p for p in flatten(parameters["vpcSecurityGroupIds"]) if p != ","]
            subnets = [p for p in flatten(parameters["vpcSubnetIds"]) if p != ","]
            assert all(not isinstance(p, str) for p in groups + subnets), parameters
            node = self._node(f"rotation function {logical_id} ({stack})", stack, groups, subnets)
            self.vpc_clients.append(node)
            found.append((stack, node))
        return found

    def _services(self) -> dict[Key, Node]:
        services = {}
        for (stack, logical_id), props in self.net.resources("AWS::ECS::Service"):
            vpc = props["NetworkConfiguration"]["AwsvpcConfiguration"]
            node = self._node(
                f"ECS tasks {logical_id} ({stack})", stack, vpc["SecurityGroups"], vpc["Subnets"]
            )
            services[(stack, logical_id)] = node
            self.vpc_clients.append(node)
            task = self.net.resource(self.net.ref(stack, props["TaskDefinition"]))["Properties"]
            roles = [task[r] for r in ("TaskRoleArn", "ExecutionRoleArn") if r in task]
            self._calls(node, stack, roles)
        return services

    def _instances(self) -> dict[Key, Node]:
        groups = {}
        for (stack, logical_id), props in self.net.resources("AWS::AutoScaling::AutoScalingGroup"):
            template = self.net.ref(stack, props["LaunchTemplate"]["LaunchTemplateId"])
            data = self.net.resource(template)["Properties"]["LaunchTemplateData"]
            node = self._node(
                f"instances of {logical_id} ({stack})",
                stack,
                data.get("SecurityGroupIds", []),
                props["VPCZoneIdentifier"],
            )
            groups[(stack, logical_id)] = node
            self.vpc_clients.append(node)
            profile = self.net.ref(stack, data["IamInstanceProfile"]["Arn"])
            self._calls(node, stack, self.net.resource(profile)["Properties"]["Roles"])
        return groups

    def _load_balancers(self) -> dict[Key, Node]:
        balancers = {}
        for (stack, logical_id), props in self.net.resources(
            "AWS::ElasticLoadBalancingV2::LoadBalancer"
        ):
            balancers[(stack, logical_id)] = self._node(
                f"load balancer {logical_id} ({stack})",
                stack,
                props.get("SecurityGroups", []),
                props["Subnets"],
            )
        return balancers

    def _databases(self) -> list[tuple[Key, Node, int]]:
        found = []
        for (stack, logical_id), props in self.net.resources("AWS::RDS::DBCluster"):
            subnets = self._db_subnets(stack, props["DBSubnetGroupName"])
            node = self._node(
                f"database {logical_id} ({stack})", stack, props["VpcSecurityGroupIds"], subnets
            )
            found.append(((stack, logical_id), node, self.net.database_port((stack, logical_id))))
        for (stack, logical_id), props in self.net.resources("AWS::RDS::DBInstance"):
            if "DBClusterIdentifier" in props:
                continue  # a member of a cluster above
            subnets = self._db_subnets(stack, props["DBSubnetGroupName"])
            node = self._node(
                f"database {logical_id} ({stack})", stack, props["VPCSecurityGroups"], subnets
            )
            found.append(((stack, logical_id), node, self.net.database_port((stack, logical_id))))
        return found

    def _db_subnets(self, stack: str, value: Any) -> list[Any]:
        group = self.net.ref(stack, value)
        subnets: list[Any] = self.net.resource(group)["Properties"]["SubnetIds"]
        return subnets

    # --- pairs ---------------------------------------------------------------------------------

    def _derive(self) -> None:
        self._studio()
        self._jobs()
        self._lambdas()
        services = self._services()
        instances = self._instances()
        balancers = self._load_balancers()
        listeners = self._listeners(balancers)
        for node, uri, stack in self.mlflow_clients:
            self._mlflow_pair(node, uri, stack, listeners, instances)
        self._balancer_pairs(balancers, services)
        rotations = self._rotation_functions()
        for db_key, db, port in self._databases():
            compute = [n for k, n in [*services.items(), *instances.items()] if k[0] == db_key[0]]
            if not compute:
                self.problems.append(f"{db.name}: no task or instance in its stack uses it")
            for node in compute:
                self.pairs.append(Pair(node, db, port, "MLflow's backend store"))
            for stack, node in rotations:
                if stack == db_key[0]:
                    self.pairs.append(
                        Pair(node, db, port, "secret rotation logs in to the database")
                    )
        self._egress_pairs()
        self._dns()

    def _listeners(self, balancers: Mapping[Key, Node]) -> dict[tuple[Key, int], Key]:
        """(load balancer, port) -> the target group its listener forwards to."""
        found = {}
        for (stack, _), props in self.net.resources("AWS::ElasticLoadBalancingV2::Listener"):
            balancer = self.net.ref(stack, props["LoadBalancerArn"])
            for action in walk(props["DefaultActions"]):
                if action.get("Type") == "forward" and "TargetGroupArn" in action:
                    target = self.net.ref(stack, action["TargetGroupArn"])
                    found[(balancer, int(props["Port"]))] = target
        return found

    def _balancer_pairs(self, balancers: Mapping[Key, Node], services: Mapping[Key, Node]) -> None:
        for (balancer, _), target in self._listeners(balancers).items():
            for key, service in services.items():
                for entry in self.net.resource(key)["Properties"].get("LoadBalancers", []):
                    if self.net.ref(key[0], entry["TargetGroupArn"]) == target:
                        self.pairs.append(
                            Pair(
                                balancers[balancer],
                                service,
                                int(entry["ContainerPort"]),
                                "listener forwards to the tasks",
                            )
                        )

    def _mlflow_pair(
        self,
        client: Node,
        uri: list[Any],
        stack: str,
        listeners: Mapping[tuple[Key, int], Key],
        instances: Mapping[Key, Node],
    ) -> None:
        """The server ``uri`` names: ``http(s)://<load balancer DNS>[:port]`` or a private host."""
        text = "".join(p if isinstance(p, str) else "\0" for p in uri)
        tokens = [p for p in uri if not isinstance(p, str)]
        if text == "\0" and self.net.resource(self.net.ref(stack, tokens[0]))["Type"].startswith(
            "AWS::SageMaker::Mlflow"
        ):
            return  # SageMaker-hosted MLflow (an ARN): reached through the API (egress pairs)
        match = re.fullmatch(r"(https?)://([^/:]*)(?::(\d+))?/?", text)
        if match is None:
            self.problems.append(f"{client.name}: MLflow URI {text!r} is not http(s)://host[:port]")
            return
        scheme, host, port_text = match.groups()
        port = int(port_text) if port_text else (443 if scheme == "https" else 80)
        if host == "\0" and len(tokens) == 1:
            balancer = self.net.ref(stack, tokens[0])
            if (balancer, port) not in listeners:
                self.problems.append(f"{client.name}: no listener on {port} of {balancer}")
            node = self._load_balancers()[balancer]
            self.pairs.append(Pair(client, node, port, "MLflow tracking"))
            return
        # A private DNS name the instance registers at boot: the Auto Scaling group in the stack
        # of the private hosted zone that serves the name.
        for (zone_stack, _), props in self.net.resources("AWS::Route53::HostedZone"):
            zone = str(props["Name"]).rstrip(".")
            if host.endswith("." + zone):
                zone_vpcs = {self.net.ref(zone_stack, v["VPCId"]) for v in props.get("VPCs", [])}
                if not self._vpcs_of(client) <= zone_vpcs:
                    self.problems.append(
                        f"{client.name}: private zone {zone} is not associated with its VPC"
                    )
                owners = [node for key, node in instances.items() if key[0] == zone_stack]
                if len(owners) != 1:
                    self.problems.append(f"{host}: {len(owners)} instance groups in {zone_stack}")
                for node in owners:
                    self.pairs.append(Pair(client, node, port, "MLflow tracking"))
                return
        self.problems.append(f"{client.name}: MLflow host {host!r} resolves to nothing in the app")

    def _vpcs_of(self, node: Node) -> set[Key]:
        return {
            self.net.ref(s[0], self.net.resource(s)["Properties"]["VpcId"]) for s in node.subnets
        }

    def _dns(self) -> None:
        """Private DNS (endpoints, private zones) needs the VPC's DNS support and host names."""
        for key, props in self.net.resources("AWS::EC2::VPC"):
            for setting in ("EnableDnsSupport", "EnableDnsHostnames"):
                if props.get(setting) is not True:
                    self.problems.append(f"VPC {key[1]}: {setting} is not true")
        for key, props in self.net.resources("AWS::EC2::VPCEndpoint"):
            if props.get("VpcEndpointType") == "Interface" and not props.get("PrivateDnsEnabled"):
                self.problems.append(
                    f"endpoint {key[1]}: PrivateDnsEnabled is off, clients would miss it"
                )

    def _egress_pairs(self) -> None:
        """Every VPC client's way to each AWS service it calls: an interface endpoint of the
        service in its VPC, else a default route to a NAT; S3 through the gateway endpoint."""
        net = self.net
        endpoints: dict[str, list[tuple[Key, Node]]] = {}
        gateway_tables: set[Key] = set()
        for (stack, logical_id), props in net.resources("AWS::EC2::VPCEndpoint"):
            if props.get("VpcEndpointType") == "Interface":
                service = endpoint_service(flatten(props["ServiceName"]))
                node = self._node(
                    f"endpoint {logical_id}", stack, props["SecurityGroupIds"], props["SubnetIds"]
                )
                endpoints.setdefault(service, []).append((net.ref(stack, props["VpcId"]), node))
            elif "".join(p for p in flatten(props["ServiceName"]) if isinstance(p, str)).endswith(
                ".s3"
            ):
                gateway_tables |= {net.ref(stack, t) for t in props.get("RouteTableIds", [])}
        used: set[str] = set()
        for client in self.vpc_clients:
            vpcs = self._vpcs_of(client)
            nat_everywhere = all(
                net.default_route(net.route_table_of(subnet)) is not None
                for subnet in client.subnets
            )
            for service, actions in sorted(self.calls.get(client.name, {}).items()):
                if service == S3:
                    continue  # the gateway endpoint, checked on the route tables below
                reachable = [node for vpc, node in endpoints.get(service, []) if vpc in vpcs]
                for endpoint in reachable:
                    self.pairs.append(
                        Pair(client, endpoint, HTTPS, "AWS API via interface endpoint")
                    )
                if reachable:
                    used.add(service)
                elif not nat_everywhere:
                    self.problems.append(
                        f"{client.name} calls {service} ({', '.join(sorted(actions)[:3])}) but "
                        "its VPC has no interface endpoint for it and its subnets no NAT route"
                    )
            for subnet in client.subnets:
                table = net.route_table_of(subnet)
                if table not in gateway_tables:
                    self.problems.append(
                        f"{client.name}: route table {table[1]} of {subnet[1]} lacks the S3 "
                        "gateway endpoint"
                    )
            self._nat_pairs(client, bool(endpoints))
        self.unused_endpoints = sorted(
            node.name for service, found in endpoints.items() if service not in used
            for _, node in found
        )  # fmt: skip

    def _nat_pairs(self, client: Node, has_endpoints: bool) -> None:
        net = self.net
        for subnet in client.subnets:
            route = net.default_route(net.route_table_of(subnet))
            if route is None:
                if not has_endpoints:
                    self.problems.append(
                        f"{client.name}: subnet {subnet[1]} has neither a default route nor "
                        "interface endpoints"
                    )
                continue
            stack = subnet[0]
            self.pairs.append(Pair(client, INTERNET, HTTPS, "AWS APIs through the NAT"))
            if "NatGatewayId" in route:
                nat_subnet = net.resource(net.ref(stack, route["NatGatewayId"]))["Properties"][
                    "SubnetId"
                ]
                self._public_route(client, net.ref(stack, nat_subnet))
            elif "InstanceId" in route:
                key = net.ref(stack, route["InstanceId"])
                props = net.resource(key)["Properties"]
                nat = self._node(
                    f"NAT instance {key[1]}", stack, props["SecurityGroupIds"], [props["SubnetId"]]
                )
                if props.get("SourceDestCheck") is not False:
                    self.problems.append(f"{nat.name}: SourceDestCheck must be false to route")
                self.pairs.append(Pair(client, nat, HTTPS, "private subnet's default route"))
                self.pairs.append(Pair(nat, INTERNET, HTTPS, "NAT instance's way out"))
                self._public_route(client, net.ref(stack, props["SubnetId"]))
            else:
                self.problems.append(
                    f"{client.name}: default route of {subnet[1]} goes to neither NAT: {route}"
                )

    def _public_route(self, client: Node, public_subnet: Key) -> None:
        route = self.net.default_route(self.net.route_table_of(public_subnet))
        if route is None or "GatewayId" not in route:
            self.problems.append(
                f"{client.name}: the NAT's subnet {public_subnet[1]} has no route to an internet gateway"
            )

    # --- results -------------------------------------------------------------------------------

    def failures(self) -> list[str]:
        found = list(self.problems)
        for pair in dict.fromkeys(self.pairs):
            found.extend(self.net.failures(pair))
        return found
