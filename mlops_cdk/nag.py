"""cdk-nag: the AwsSolutions pack's registration and the helpers constructs acknowledge with.

cdk-nag 3 runs as a policy-validation plugin: an unacknowledged finding fails synthesis.
Each construct acknowledges its own findings beside the resource that produces them (cdk-nag's
README: suppress on the narrowest construct), by the finding's own id (cdk-nag 3 has no prefix
matching) and with its reason. This module imports no construct: it registers the pack
(:func:`register`), offers the helpers, and records every acknowledgement per app
(:func:`acknowledgements`), from which ``tools/nag_report.py`` writes docs/nag.md.
"""

from __future__ import annotations

import itertools
import json
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import jsii
from aws_cdk import (
    Acknowledgment,
    IPolicyValidationContext,
    IPolicyValidationPlugin,
    PolicyValidationPluginReport,
    Stack,
    Validations,
)
from aws_cdk import aws_iam as iam
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct

# The action wildcards CDK's grant_* methods write, and why each is acceptable.
GRANT_ACTION_WILDCARDS = {
    "s3:GetObject*": "CDK's grant_read: GetObject plus its Acl/Tagging/Version variants on objects only",
    "s3:GetBucket*": "CDK's grant_read: bucket location/versioning metadata an S3 client reads first",
    "s3:List*": "CDK's grant_read: listing the bucket, limited to the bucket's own ARN",
    "s3:DeleteObject*": "CDK's grant_write: delete object and object version, limited to one prefix",
    "s3:Abort*": "CDK's grant_write: abort this grantee's multipart uploads under its prefix",
    "kms:GenerateDataKey*": "CDK's key grant: data keys for SSE-KMS on this one key",
    "kms:ReEncrypt*": "CDK's key grant: re-encryption under this one key, needed by SSE-KMS",
}


@dataclass(frozen=True)
class Acknowledgement:
    """One acknowledged finding: the construct it is made on, the rule id and the reason."""

    path: str
    rule: str
    reason: str


@dataclass
class _Record:
    """What one app's constructs acknowledged, and the wildcards resolved only at synthesis."""

    # (construct, rule, reason): a construct's path is read only when a tool or a test asks
    # (:func:`acknowledgements`), not on each of the app's ~100 acknowledgements at synthesis
    # (each jsii property read is a round trip to Node).
    made: list[tuple[IConstruct, str, str]] = field(default_factory=list)
    deferred: list[tuple[IConstruct, str, str]] = field(default_factory=list)
    registered: bool = False


# Keyed by the app (the root construct): constructs find their app's record through
# ``node.root``, so nothing has to be passed down to them.
_RECORDS: weakref.WeakKeyDictionary[IConstruct, _Record] = weakref.WeakKeyDictionary()


def _record(scope: IConstruct) -> _Record:
    root = scope.node.root
    if root not in _RECORDS:
        _RECORDS[root] = _Record()
    return _RECORDS[root]


def register(app: IConstruct) -> None:
    """Run the AwsSolutions pack over every stack of ``app`` at synthesis.

    The plugin that makes the deferred acknowledgements (:func:`ack_resource`) goes first,
    so its acknowledgements are in place when the pack runs. Call once per app, at any time
    before ``app.synth()``.
    """
    record = _record(app)
    if record.registered:
        return
    record.registered = True
    Validations.of(app).add_plugins(DeferredAcknowledgments(record))
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))


def add_nag_checks(app: IConstruct) -> None:
    """Same as :func:`register` (the name app_setup and the tests used first)."""
    register(app)


def ack(scope: IConstruct, rule: str, reason: str) -> None:
    """Acknowledge one finding on ``scope`` (and what it contains)."""
    _acknowledge(scope, [(rule, reason)], _record(scope))


def _acknowledge(scope: IConstruct, findings: list[tuple[str, str]], record: _Record) -> None:
    """Acknowledge ``findings`` (rule, reason) on ``scope`` in one call: each jsii call is a
    round trip to Node, and a grant's findings all fall on one grantee."""
    if findings:
        Validations.of(scope).acknowledge(
            *(Acknowledgment(id=r, reason=why) for r, why in findings)
        )
        record.made.extend((scope, rule, reason) for rule, reason in findings)


def ack_all(scopes: Iterable[IConstruct | None], rule: str, reason: str) -> None:
    """:func:`ack` on each of ``scopes`` that exists (None: not created in this variant)."""
    for scope in scopes:
        if scope is not None:
            ack(scope, rule, reason)


def ack_resource(grantee: IConstruct, resource: str, reason: str) -> None:
    """Acknowledge the IAM5 finding for wildcard ``resource`` (an ARN, tokens allowed) in
    ``grantee``'s policy.

    The finding names the resource as the template will hold it, and a reference to another
    stack takes that form only during synthesis: the app's :class:`DeferredAcknowledgments`
    resolves it then. In an app without :func:`register` (a construct test in a bare stack)
    the acknowledgement is recorded and nothing else.
    """
    _record(grantee).deferred.append((grantee, resource, reason))


def ack_grant(
    grantee: IConstruct, grant: iam.Grant, *, resources: str, actions: str | None = None
) -> None:
    """Acknowledge the IAM5 wildcards ``grant`` wrote into ``grantee``'s policy, one by one.

    CDK's own grant wildcards get their reasons from :data:`GRANT_ACTION_WILDCARDS`; any other
    action wildcard (e.g. ``sagemaker-mlflow:*``) is explained by ``actions``; each resource
    with a wildcard (an object prefix) by ``resources``.
    """
    record = _record(grantee)
    findings = []
    for statement in grant.principal_statements:
        for action in statement.actions:
            if "*" not in action:
                continue
            reason = GRANT_ACTION_WILDCARDS.get(action, actions)
            if reason is None:
                raise ValueError(f"ack_grant: {action!r} needs a reason (actions=...)")
            findings.append((f"AwsSolutions-IAM5[Action::{action}]", reason))
        wildcards = [resource for resource in statement.resources if "*" in resource]
        record.deferred.extend((grantee, resource, resources) for resource in wildcards)
    _acknowledge(grantee, findings, record)


def acknowledgements(app: IConstruct) -> list[Acknowledgement]:
    """Every acknowledgement made in ``app`` so far, deferred ones included once resolved
    (after ``app.synth()`` with :func:`register`), in the order they were made."""
    made = _record(app).made
    # A path read is two round trips to Node, and one scope carries several findings (a
    # grant's wildcards): read each scope's path once.
    path_of: dict[int, str] = {}
    for scope, _, _ in made:
        if id(scope) not in path_of:
            path_of[id(scope)] = scope.node.path
    return [Acknowledgement(path_of[id(scope)], rule, reason) for scope, rule, reason in made]


@jsii.implements(IPolicyValidationPlugin)
class DeferredAcknowledgments:
    """Acknowledges resource wildcards once cross-stack references have their final form.

    A finding names the resource as the template will hold it, and a reference to another
    stack only takes that form (``Fn::GetStackOutput``) during synthesis. Registered before the
    AwsSolutions pack, this plugin runs first and adds the acknowledgements then.
    """

    def __init__(self, record: _Record) -> None:
        self._record = record

    @property
    def name(self) -> str:
        return "mlops-cdk-deferred-acknowledgments"

    @property
    def version(self) -> str | None:
        return None

    @property
    def rule_ids(self) -> list[str] | None:
        return None

    def validate(self, context: IPolicyValidationContext) -> PolicyValidationPluginReport:
        pending, self._record.deferred = self._record.deferred, []
        # Consecutive findings on one grantee (one grant's resources) in one call, in order.
        for grantee, group in itertools.groupby(pending, key=lambda item: item[0]):
            stack = Stack.of(grantee)
            findings = [
                (
                    f"AwsSolutions-IAM5[Resource::{_flatten_cfn_reference(stack.resolve(resource))}]",
                    reason,
                )
                for _, resource, reason in group
            ]
            _acknowledge(grantee, findings, self._record)
        return PolicyValidationPluginReport(success=True, violations=[])


def _flatten_cfn_reference(node: Any) -> str:
    """The string cdk-nag uses to name a resource finding (port of its flattenCfnReference)."""
    if node is None:
        return ""
    if isinstance(node, str):
        return node.replace("${", "<").replace("}", ">")
    if isinstance(node, dict) and len(node) == 1:
        ((function, args),) = node.items()
        if function == "Fn::Join":
            delimiter, items = args
            return str(delimiter).join(_flatten_cfn_reference(item) for item in items)
        if function == "Fn::Sub":
            return _flatten_cfn_reference(args)
        if function == "Fn::GetAtt":
            resource, attribute = args
            return f"<{_flatten_cfn_reference(resource)}.{_flatten_cfn_reference(attribute)}>"
        if function == "Fn::ImportValue":
            return _flatten_cfn_reference(args)
        if function == "Ref":
            return f"<{_flatten_cfn_reference(args)}>"
    return json.dumps(node, separators=(",", ":"))
