"""Which resources an update would replace, and which of those CloudFormation cannot replace.

CloudFormation replaces a resource when one of its create-only properties changes (the
resource provider schemas list them as ``createOnlyProperties``; cfn-lint bundles those
schemas). A replacement creates the new resource first and deletes the old one after, so a
resource whose name is written in the template and stays the same cannot be replaced: the
update fails ("CloudFormation cannot update a stack when a custom-named resource requires
replacing") and the stack rolls back.
https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-properties-name.html
https://docs.aws.amazon.com/cloudformation-cli/latest/userguide/resource-type-schema.html

This module compares two deployments of the same app (two synths, or one synth with some
resources assumed replaced) the way CloudFormation would:

* each value is resolved across stacks: ``Fn::ImportValue`` becomes the producer's export
  value, so a producer change shows up in every consumer that reads it;
* a ``Ref`` / ``Fn::GetAtt`` / ``${...}`` of a resource that is replaced resolves to a new
  value, so replacements propagate to whatever reads them, in the same stack or another;
* a resource whose create-only properties differ is replaced; it fails when its name is set
  in the template and the same before and after (:func:`name_properties`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache, cached_property
from typing import Any

from aws_cdk import cx_api
from cfnlint.schema import PROVIDER_SCHEMA_MANAGER

from tools.synthesis import exports, templates_by_name

Address = tuple[str, str]
"""A resource: (stack name, logical id)."""

SCHEMA_REGION = "us-east-1"
_MISSING = {"<absent>": True}
_SUB_VARIABLE = re.compile(r"\$\{([^!}][^}]*)\}")


@cache
def _schema(type_name: str) -> Mapping[str, Any]:
    if not type_name.startswith("AWS::"):
        return {}  # custom resources have no provider schema
    schema: Mapping[str, Any] = PROVIDER_SCHEMA_MANAGER.get_resource_schema(
        SCHEMA_REGION, type_name
    ).schema
    return schema


@cache
def create_only(type_name: str) -> tuple[str, ...]:
    """The create-only property pointers of ``type_name`` (``/properties/...``)."""
    return tuple(_schema(type_name).get("createOnlyProperties", ()))


@cache
def name_properties(type_name: str) -> tuple[str, ...]:
    """The create-only properties that identify a resource of ``type_name`` by name.

    Its writable primary identifier (``TrackingServerName``, ``PipelineName``, ``RoleName``,
    ``LogGroupName``; ``UserProfileName`` with its ``DomainId``) and, for types identified
    by a generated id or ARN, the create-only top-level ``Name`` or ``<Type>Name`` property
    (``DomainName``, ``Name`` of an MLflow App, ``TopicName``, ``GroupName`` of a security
    group, ...).
    """
    schema = _schema(type_name)
    writable = set(create_only(type_name)) - set(schema.get("readOnlyProperties", ()))
    kind = type_name.rsplit("::", 1)[-1]
    names = [p for p in schema.get("primaryIdentifier", ()) if p in writable]
    for pointer in create_only(type_name):
        leaf = pointer.removeprefix("/properties/")
        if "/" in leaf or pointer in names:
            continue
        if leaf == "Name" or (leaf.endswith("Name") and kind.endswith(leaf[: -len("Name")])):
            names.append(pointer)
    return tuple(names)


def _is_name(pointer: str) -> bool:
    """A property that holds a name (not a reference such as a bucket policy's Bucket)."""
    return pointer.endswith(("Name", "Identifier"))


def fixed_names(type_name: str, before: Any, after: Any) -> dict[str, Any]:
    """The name properties of a resource when its name is written and the same in both.

    Empty when no name is written (CloudFormation generates one) or when a name property
    changes too (the replacement then gets a new name, which CloudFormation can create
    before it deletes the old resource).
    """
    pointers = name_properties(type_name)
    values = {p: pointer_value(after, p) for p in pointers if is_set(pointer_value(after, p))}
    if not any(_is_name(p) for p in values):
        return {}
    if any(canonical(v) != canonical(pointer_value(before, p)) for p, v in values.items()):
        return {}
    return values


def pointer_value(properties: Any, pointer: str) -> Any:
    """The value at ``/properties/A/B`` in a resource's properties (``*`` for every item)."""
    parts = pointer.split("/")[2:]
    return _walk(properties, parts)


def _walk(value: Any, parts: list[str]) -> Any:
    if not parts:
        return value
    head, rest = parts[0], parts[1:]
    if head == "*" and isinstance(value, list):
        return [_walk(item, rest) for item in value]
    if isinstance(value, dict) and head in value:
        return _walk(value[head], rest)
    return _MISSING


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def is_set(value: Any) -> bool:
    return value is not _MISSING and value != _MISSING


@dataclass(frozen=True)
class Deployment:
    """The templates of one synthesized app, by stack name."""

    templates: Mapping[str, Mapping[str, Any]]

    @classmethod
    def of(cls, assembly: cx_api.CloudAssembly) -> Deployment:
        """From a cloud assembly (``app.assembly``)."""
        return cls(templates_by_name(assembly))

    @cached_property
    def exports(self) -> dict[str, tuple[str, Any]]:
        """Export name -> (producer stack, the export's value expression)."""
        return exports(self.templates)

    @cached_property
    def importers(self) -> dict[str, list[str]]:
        """Export name -> the stacks that import it (``Fn::ImportValue`` of a literal name)."""
        found: dict[str, list[str]] = {}
        for stack, template in self.templates.items():
            for name in sorted({n for n in _imports(template) if isinstance(n, str)}):
                found.setdefault(name, []).append(stack)
        return found

    def resources(self) -> Iterator[tuple[Address, Mapping[str, Any]]]:
        for stack, template in self.templates.items():
            for logical_id, resource in template.get("Resources", {}).items():
                yield (stack, logical_id), resource

    def resource(self, address: Address) -> Mapping[str, Any] | None:
        stack, logical_id = address
        found: Mapping[str, Any] | None = (
            self.templates.get(stack, {}).get("Resources", {}).get(logical_id)
        )
        return found

    def resolve(self, stack: str, value: Any, replaced: frozenset[Address] = frozenset()) -> Any:
        """``value`` with imports replaced by the producer's value and replaced resources marked."""
        if isinstance(value, list):
            return [self.resolve(stack, item, replaced) for item in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Fn::ImportValue" and isinstance(arg, str) and arg in self.exports:
                producer, expression = self.exports[arg]
                return {"Export": arg, "Value": self.resolve(producer, expression, replaced)}
            if key == "Ref" and isinstance(arg, str):
                return self._mark(value, stack, [arg], replaced)
            if key == "Fn::GetAtt":
                target = arg[0] if isinstance(arg, list) else str(arg).split(".", 1)[0]
                return self._mark(value, stack, [target], replaced)
            if key == "Fn::Sub":
                text = arg[0] if isinstance(arg, list) else arg
                targets = [m.split(".", 1)[0] for m in _SUB_VARIABLE.findall(str(text))]
                resolved = {key: self.resolve(stack, arg, replaced)}
                return self._mark(resolved, stack, targets, replaced)
        return {key: self.resolve(stack, inner, replaced) for key, inner in value.items()}

    @staticmethod
    def _mark(value: Any, stack: str, targets: list[str], replaced: frozenset[Address]) -> Any:
        new = sorted(t for t in targets if (stack, t) in replaced)
        return {"Replaced": [f"{stack}/{t}" for t in new], "Was": value} if new else value


@dataclass(frozen=True)
class Change:
    """A create-only property whose value differs: the resource is replaced."""

    address: Address
    type: str
    pointer: str
    before: Any
    after: Any
    names: Mapping[str, Any] = field(default_factory=dict)
    """Its name properties when they are set and the same before and after (a fixed name)."""

    @property
    def fixed_name(self) -> bool:
        return bool(self.names)

    def describe(self) -> str:
        stack, logical_id = self.address
        names = ", ".join(f"{p.rsplit('/', 1)[-1]}={canonical(v)}" for p, v in self.names.items())
        before, after = _excerpts(self.before, self.after)
        return (
            f"{stack}/{logical_id} ({self.type}, {names}) would be replaced: create-only "
            f"{self.pointer} changes from {before} to {after}"
        )


def _excerpts(before: Any, after: Any, limit: int = 300) -> tuple[str, str]:
    """Both values as text, from shortly before where they first differ."""
    texts = ["(absent)" if not is_set(v) else canonical(v) for v in (before, after)]
    common = 0
    while common < min(map(len, texts)) and texts[0][common] == texts[1][common]:
        common += 1
    start = max(0, common - 80)
    cut = [("..." if start else "") + t[start : start + limit] for t in texts]
    return tuple(
        c + ("..." if len(t) > start + limit else "") for c, t in zip(cut, texts, strict=True)
    )  # type: ignore[return-value]


def replacements(
    before: Deployment, after: Deployment, assumed: frozenset[Address] = frozenset()
) -> list[Change]:
    """Every resource ``after`` would replace on top of ``before``, with the first change.

    ``assumed`` are resources taken as replaced (an upstream change); what reads them is
    compared with their values marked as new. Resources only in ``after`` are creations,
    not replacements.
    """
    replaced = set(assumed)
    changes: list[Change] = []
    grew = True
    while grew:
        grew = False
        for address, resource in after.resources():
            old = before.resource(address)
            if address in replaced or old is None or old["Type"] != resource["Type"]:
                continue
            stack = address[0]
            type_name = resource["Type"]
            was = before.resolve(stack, old.get("Properties", {}))
            now = after.resolve(stack, resource.get("Properties", {}), frozenset(replaced))
            for pointer in create_only(type_name):
                old_value, new_value = pointer_value(was, pointer), pointer_value(now, pointer)
                if canonical(old_value) == canonical(new_value):
                    continue
                names = fixed_names(type_name, was, now)
                changes.append(Change(address, type_name, pointer, old_value, new_value, names))
                replaced.add(address)
                grew = True
                break
    return changes


def replaceable_exports(deployment: Deployment) -> frozenset[Address]:
    """The resources whose values other stacks import and that an update may replace.

    A resource with a fixed name cannot be replaced at all (see the module docstring), so
    what it exports (a tracking server's name or ARN, a pipeline's name) stays as it is.
    """
    found: set[Address] = set()
    for producer, expression in deployment.exports.values():
        for target in _targets(expression):
            address = (producer, target)
            resource = deployment.resource(address)
            if resource is None:
                continue  # a parameter or pseudo parameter
            properties = resource.get("Properties", {})
            if not fixed_names(resource["Type"], properties, properties):
                found.add(address)
    return frozenset(found)


def _targets(value: Any) -> Iterator[str]:
    """Logical ids a value reads (Ref, Fn::GetAtt, ``${...}`` in Fn::Sub)."""
    if isinstance(value, list):
        for item in value:
            yield from _targets(item)
    elif isinstance(value, dict):
        for key, arg in value.items():
            if key == "Ref" and isinstance(arg, str):
                yield arg
            elif key == "Fn::GetAtt":
                yield arg[0] if isinstance(arg, list) else str(arg).split(".", 1)[0]
            elif key == "Fn::Sub":
                text = arg[0] if isinstance(arg, list) else arg
                yield from (m.split(".", 1)[0] for m in _SUB_VARIABLE.findall(str(text)))
                yield from _targets(arg[1:] if isinstance(arg, list) else [])
            else:
                yield from _targets(arg)


def refused_exports(before: Deployment, after: Deployment) -> list[str]:
    """Why CloudFormation would refuse to deploy ``after`` over ``before`` (empty: it would not).

    ``cdk deploy --all`` updates a producer before its consumers, and CloudFormation refuses
    a producer update that deletes or changes an export another stack still imports (the
    consumers' imports are still those of ``before`` then). A consumer update that imports
    an export its producer's new template lacks fails too.
    https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/using-cfn-stack-exports.html
    """
    problems: list[str] = []
    for name, importers in before.importers.items():
        producer, value = before.exports[name]
        if name not in after.exports:
            problems.append(f"{producer} deletes export {name}, which {importers} import")
        elif canonical(after.exports[name][1]) != canonical(value):
            problems.append(f"{producer} changes export {name}, which {importers} import")
    for name, importers in after.importers.items():
        if name not in after.exports:
            problems.append(f"{importers} import {name}, which no stack exports")
    return problems


def _imports(value: Any) -> Iterator[Any]:
    """The argument of every ``Fn::ImportValue`` inside a template value."""
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "Fn::ImportValue":
                yield inner
            yield from _imports(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _imports(inner)
