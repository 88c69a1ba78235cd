"""checkov: acknowledge one finding beside the resource that has it, with the reason.

checkov reads a CloudFormation resource's ``Metadata.checkov.skip`` list (each entry an ``id``
and a ``comment``) and reports the check as SKIPPED with that comment (checkov docs,
"Suppressing and Skipping Policies"; checkov/cloudformation/context_parser.py
``collect_skip_comments``). tests/test_checkov.py fails on any finding without one, and
docs/checkov.md lists every acknowledgement (``make checkov-docs``).
"""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnResource
from constructs import IConstruct


def skip(resource: IConstruct, check_id: str, reason: str) -> None:
    """Acknowledge checkov's ``check_id`` on ``resource`` (an L1, or an L2 with a default child)."""
    cfn = resource if isinstance(resource, CfnResource) else resource.node.default_child
    if not isinstance(cfn, CfnResource):
        raise TypeError(f"{resource.node.path} is not a CloudFormation resource")
    existing: dict[str, Any] = cfn.get_metadata("checkov") or {}
    skips = [s for s in existing.get("skip", []) if s["id"] != check_id]
    cfn.add_metadata("checkov", {**existing, "skip": [*skips, {"id": check_id, "comment": reason}]})


def skip_all(resource: IConstruct, reasons: dict[str, str]) -> None:
    """Acknowledge each check of ``reasons`` (check id -> reason) on ``resource``."""
    for check_id, reason in reasons.items():
        skip(resource, check_id, reason)


# Why a function that calls only AWS APIs stays outside the VPC.
NOT_IN_VPC = (
    "Calls only AWS APIs (no resource inside the VPC); in the VPC it would need interface "
    "endpoints or NAT for them and leave network interfaces that slow stack deletion."
)

# A function whose reserved-concurrency setting is null (CKV_AWS_115).
NO_RESERVATION = (
    "Reserved concurrency is off by its setting (null): Lambda keeps 100 of the account's "
    "concurrency unreserved, so an account whose quota is below 100 + N cannot reserve any "
    "(Lambda developer guide, configuration-concurrency); set it where the quota allows."
)
