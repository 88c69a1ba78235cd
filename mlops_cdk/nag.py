"""cdk-nag: the AwsSolutions pack on the whole app, and every acknowledgement with its reason.

cdk-nag 3 runs as a policy-validation plugin: an unacknowledged finding fails synthesis.
Acknowledgements are made on the narrowest construct that produces the finding, and each
wildcard is acknowledged by its own finding id (cdk-nag 3 has no prefix matching).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import jsii
from aws_cdk import (
    Acknowledgment,
    App,
    IPolicyValidationContext,
    IPolicyValidationPlugin,
    PolicyValidationPluginReport,
    Stack,
    Validations,
)
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct

if TYPE_CHECKING:
    from mlops_cdk.platform import Platform

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


def add_nag_checks(app: App) -> None:
    """Run the AwsSolutions pack over every stack of ``app`` at synthesis."""
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))


def ack(scope: IConstruct, rule: str, reason: str) -> None:
    """Acknowledge one finding on ``scope`` (and what it contains)."""
    Validations.of(scope).acknowledge(Acknowledgment(id=rule, reason=reason))


@jsii.implements(IPolicyValidationPlugin)
class DeferredAcknowledgments:
    """Acknowledges resource wildcards once cross-stack references have their final form.

    A finding names the resource as the template will hold it, and a reference to another
    stack only takes that form (``Fn::GetStackOutput``) during synthesis. Registered before the
    AwsSolutions pack, this plugin runs first and adds the acknowledgements then.
    """

    def __init__(self) -> None:
        self._entries: list[tuple[IConstruct, str, str]] = []

    def add(self, grantee: IConstruct, resource: str, reason: str) -> None:
        self._entries.append((grantee, resource, reason))

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
        for grantee, resource, reason in self._entries:
            finding = _flatten_cfn_reference(Stack.of(grantee).resolve(resource))
            ack(grantee, f"AwsSolutions-IAM5[Resource::{finding}]", reason)
        return PolicyValidationPluginReport(success=True, violations=[])


def ack_grant_wildcards(
    grantee: IConstruct,
    *,
    deferred: DeferredAcknowledgments,
    actions: Iterable[str],
    resources: Iterable[str] = (),
    reason: str,
) -> None:
    """Acknowledge the IAM5 wildcards of CDK grants on ``grantee``'s policy, finding by finding.

    ``actions`` must be wildcards from :data:`GRANT_ACTION_WILDCARDS`; ``resources`` are the
    (token) ARNs with a wildcard, e.g. ``f"{bucket.bucket_arn}/mlflow/*"``, each explained by
    ``reason``.
    """
    for action in actions:
        ack(grantee, f"AwsSolutions-IAM5[Action::{action}]", GRANT_ACTION_WILDCARDS[action])
    for resource in resources:
        deferred.add(grantee, resource, reason)


S3_READ_WRITE = ("s3:GetObject*", "s3:GetBucket*", "s3:List*", "s3:DeleteObject*", "s3:Abort*")
S3_READ = ("s3:GetObject*", "s3:GetBucket*", "s3:List*")
KMS_ENCRYPT_DECRYPT = ("kms:GenerateDataKey*", "kms:ReEncrypt*")


def _flatten_cfn_reference(node: Any) -> str:  # noqa: PLR0911 (one return per intrinsic)
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


def acknowledge(app: App, platform: Platform) -> None:
    """Acknowledge, with reasons, the findings that are deliberate in this design.

    Call before :func:`add_nag_checks`, so the deferred acknowledgements run before the pack.
    """
    deferred = DeferredAcknowledgments()
    _acknowledge_storage(platform)
    _acknowledge_network(platform)
    _acknowledge_tracking(platform, deferred)
    Validations.of(app).add_plugins(deferred)


def _acknowledge_storage(platform: Platform) -> None:
    ack(
        platform.storage.access_logs,
        "AwsSolutions-S1",
        "This is the server-access-log destination; logging it into itself would loop.",
    )


def _acknowledge_network(platform: Platform) -> None:
    if platform.network is None:
        return
    for nat in platform.network.nat_instances:
        ack(
            nat,
            "AwsSolutions-EC26",
            "The NAT instance's root volume holds only the stock AMI, no data, and "
            "NatProvider.instanceV2 offers no block-device setting.",
        )
        ack(
            nat,
            "AwsSolutions-EC28",
            "A NAT instance is chosen to save cost; 5-minute basic monitoring is enough for it.",
        )
        ack(
            nat,
            "AwsSolutions-EC29",
            "The NAT instance is stateless and replaced by redeploying; termination "
            "protection would only block that.",
        )


def _acknowledge_tracking(platform: Platform, deferred: DeferredAcknowledgments) -> None:
    storage = platform.storage
    backend = platform.tracking.backend
    ack_grant_wildcards(
        backend.role,
        deferred=deferred,
        actions=S3_READ_WRITE + (KMS_ENCRYPT_DECRYPT if storage.artifacts_key else ()),
        resources=[f"{storage.artifacts_bucket.bucket_arn}/{storage.artifacts_prefix}/*"],
        reason="MLflow writes run artifacts as objects of any name under its own prefix only.",
    )
