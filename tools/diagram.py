"""Architecture diagram (Mermaid) generated from the synthesized app, one section per environment.

Stacks are subgraphs; their main resources are nodes; arrows are read from the templates:
solid arrows are cross-stack references (``Fn::GetStackOutput`` / ``Fn::ImportValue`` resolved
to the producing stack's output and the resource behind it), dotted arrows are references
between main resources of one stack. The stack dependencies come from the cloud assembly
manifest. `make diagram` rewrites docs/architecture.md; a test fails when it is stale.

    .venv/bin/python -m tools.diagram           # print
    .venv/bin/python -m tools.diagram --write   # update docs/architecture.md
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from tools import generated_doc
from tools.cdk_json import ENVIRONMENTS
from tools.synthesis import (
    ROOT,
    StackTemplate,
    default_mode,
    local_refs,
    synthesize,
)

ARCHITECTURE_MD = ROOT / "docs" / "architecture.md"

# Resource types drawn as nodes, with their label. Everything else is folded into the main
# resource whose construct path (logical id prefix) contains it, or into its stack.
MAIN_TYPES = {
    "AWS::EC2::VPC": "VPC",
    "AWS::EC2::NatGateway": "NAT gateway",
    "AWS::EC2::Instance": "EC2 instance",
    "AWS::EC2::VPCEndpoint": "VPC endpoints",
    "AWS::KMS::Key": "KMS key",
    "AWS::S3::Bucket": "S3 bucket",
    "AWS::SageMaker::MlflowApp": "SageMaker MLflow App",
    "AWS::SageMaker::MlflowTrackingServer": "SageMaker MLflow tracking server",
    "AWS::ElasticLoadBalancingV2::LoadBalancer": "Application Load Balancer",
    "AWS::ECS::Service": "ECS Fargate service",
    "AWS::RDS::DBCluster": "Aurora Serverless v2",
    "AWS::RDS::DBInstance": "RDS instance",
    "AWS::AutoScaling::AutoScalingGroup": "EC2 Auto Scaling group",
    "AWS::Route53::HostedZone": "Route 53 private zone",
    "AWS::SecretsManager::Secret": "Secrets Manager secret",
    "AWS::SageMaker::Domain": "SageMaker Studio domain",
    "AWS::SageMaker::UserProfile": "Studio user profile",
    "AWS::SageMaker::Pipeline": "SageMaker pipeline",
    "AWS::Scheduler::Schedule": "EventBridge schedule",
    "AWS::Events::Rule": "EventBridge rule",
    "AWS::SNS::Topic": "SNS topic",
    "AWS::SQS::Queue": "SQS queue",
    "AWS::Lambda::Function": "Lambda function",
}
_HASH = re.compile(r"[0-9A-F]{8}([0-9a-f]{32})?$")


def _short(logical_id: str, stack_name: str = "") -> str:
    """A logical id without CDK's hash (and stack-name prefix): roughly the construct path."""
    short = _HASH.sub("", logical_id)
    prefix = re.sub(r"[^A-Za-z0-9]", "", stack_name)
    return short.removeprefix(prefix) if prefix and short != prefix else short


def _is_main(logical_id: str, resource: Mapping[str, Any]) -> bool:
    kind = resource["Type"]
    if kind not in MAIN_TYPES or logical_id.startswith(("Custom", "AWS")):
        return False  # CDK's own providers (custom resources) are plumbing
    props = resource.get("Properties", {})
    return not (kind == "AWS::RDS::DBInstance" and "DBClusterIdentifier" in props)


def _imports(value: Any) -> Iterable[tuple[str | None, str]]:
    """(producer stack or None, output name or export name) for each cross-stack reference."""
    if isinstance(value, dict):
        output = value.get("Fn::GetStackOutput")
        if isinstance(output, dict):
            yield output.get("StackName"), output["OutputName"]
        export = value.get("Fn::ImportValue")
        if isinstance(export, str):
            yield None, export
        for inner in value.values():
            yield from _imports(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _imports(inner)


class _Graph:
    def __init__(self, env: str, stacks: Sequence[StackTemplate]) -> None:
        self.env = env
        self.stacks = {s.name: s for s in stacks}
        self.order = [s.name for s in stacks]
        self.nodes: dict[str, dict[str, str]] = {}  # stack -> node id -> label
        self.owner: dict[tuple[str, str], str] = {}  # (stack, logical id) -> node id
        for stack in stacks:
            self._add_nodes(stack)

    def stack_id(self, stack: str) -> str:
        return re.sub(r"[^A-Za-z0-9]", "_", stack)

    def _add_nodes(self, stack: StackTemplate) -> None:
        nodes: dict[str, str] = {}
        mains = {
            lid: r
            for lid, r in stack.resources.items()
            if _is_main(lid, r) and r["Type"] != "AWS::EC2::VPCEndpoint"
        }
        for logical_id, resource in mains.items():
            short = _short(logical_id, stack.name)
            node = f"{self.stack_id(stack.name)}__{short}"
            nodes[node] = f"{MAIN_TYPES[resource['Type']]}<br/><small>{short}</small>"
            self.owner[(stack.name, logical_id)] = node
        endpoints = [r for r in stack.resources.values() if r["Type"] == "AWS::EC2::VPCEndpoint"]
        if endpoints:
            node = f"{self.stack_id(stack.name)}__Endpoints"
            interface = sum(
                1 for r in endpoints if r["Properties"].get("VpcEndpointType") == "Interface"
            )
            gateway = len(endpoints) - interface
            nodes[node] = (
                f"VPC endpoints<br/><small>{interface} interface, {gateway} gateway</small>"
            )
            for logical_id, resource in stack.resources.items():
                if resource["Type"] == "AWS::EC2::VPCEndpoint":
                    self.owner[(stack.name, logical_id)] = node
        # Fold every other resource into the main resource whose short id prefixes its own.
        prefixes = sorted(
            ((_short(lid, stack.name), self.owner[(stack.name, lid)]) for lid in mains),
            key=lambda p: -len(p[0]),
        )
        for logical_id in stack.resources:
            if (stack.name, logical_id) in self.owner:
                continue
            short = _short(logical_id, stack.name)
            self.owner[(stack.name, logical_id)] = next(
                (node for prefix, node in prefixes if short.startswith(prefix)),
                self.stack_id(stack.name),
            )
        self.nodes[stack.name] = nodes

    def _producer(self, consumer: str, stack_name: str | None, name: str) -> set[str]:
        """Nodes behind a stack output (by name) or an export (by export name)."""
        for producer in self.order:
            if producer == consumer or (stack_name is not None and producer != stack_name):
                continue
            outputs = self.stacks[producer].template.get("Outputs", {})
            for output_name, output in outputs.items():
                exported = output.get("Export", {}).get("Name")
                if (stack_name is not None and output_name == name) or exported == name:
                    return {self.owner[(producer, ref)] for ref in local_refs(output["Value"])}
        return set()

    def edges(self) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """(cross-stack edges, in-stack edges), each sorted and without duplicates."""
        cross: set[tuple[str, str]] = set()
        local: set[tuple[str, str]] = set()
        for name in self.order:
            for logical_id, resource in self.stacks[name].resources.items():
                source = self.owner[(name, logical_id)]
                for producer, output in _imports(resource.get("Properties", {})):
                    cross |= {(source, target) for target in self._producer(name, producer, output)}
                if not _is_main(logical_id, resource):
                    continue
                for ref in local_refs(resource.get("Properties", {})):
                    target = self.owner.get((name, ref))
                    if target is not None and target != source and "__" in target:
                        local.add((source, target))
        # A stack-level arrow only where none of the stack's main resources draws the same one.
        covered = {(a.split("__")[0], b) for a, b in cross if "__" in a}
        cross = {(a, b) for a, b in cross if "__" in a or (a, b) not in covered}
        return sorted(cross), sorted(local - cross)

    def mermaid(self) -> str:
        lines = ["flowchart LR"]
        for name in self.order:
            lines.append(f'  subgraph {self.stack_id(name)}["{name}"]')
            for node, label in sorted(self.nodes[name].items()):
                lines.append(f'    {node}["{label}"]')
            lines.append("  end")
        cross, local = self.edges()
        lines += [f"  {a} --> {b}" for a, b in cross]
        lines += [f"  {a} -.-> {b}" for a, b in local]
        return "\n".join(lines)


def render_env(env: str, stacks: Sequence[StackTemplate], mode: str) -> str:
    graph = _Graph(env, stacks)
    deps = [
        f"- `{s.name}` depends on {', '.join(f'`{d}`' for d in sorted(s.depends_on)) or 'nothing'}"
        for s in stacks
    ]
    return "\n".join(
        [
            f"## {env} (tracking.mode={mode})",
            "",
            "```mermaid",
            graph.mermaid(),
            "```",
            "",
            "Stack dependencies (cloud assembly manifest):",
            "",
            *deps,
            "",
        ]
    )


HEADER = """# Architecture

<!-- Generated by `make diagram` (tools/diagram.py) from the synthesized app; do not edit.
     tests/test_diagram.py fails when this file is stale. -->

One section per environment, as configured in cdk.json. Boxes are stacks, nodes their main
resources. A solid arrow is a cross-stack reference (`Fn::GetStackOutput`/`Fn::ImportValue` in
the consuming template, pointing at the resource behind the producing stack's output); a dotted
arrow is a reference between main resources of one stack. An arrow from a stack's box means a
resource folded into the stack (an IAM policy, a security group) holds the reference.
"""


def render(sections: Mapping[str, tuple[str, Sequence[StackTemplate]]]) -> str:
    """The whole document from ``{env: (mode, stacks)}``."""
    return HEADER + "".join(
        "\n" + render_env(env, stacks, mode) for env, (mode, stacks) in sections.items()
    )


def generate() -> str:
    return render({env: (default_mode(env), synthesize(env)) for env in ENVIRONMENTS})


def main(argv: Sequence[str] | None = None) -> int:
    return generated_doc.main(
        argv,
        prog="python -m tools.diagram",
        description=__doc__,
        path=ARCHITECTURE_MD,
        generate=generate,
    )


if __name__ == "__main__":
    raise SystemExit(main())
