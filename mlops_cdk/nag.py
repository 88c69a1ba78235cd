"""cdk-nag: the AwsSolutions pack on the whole app, and every acknowledgement with its reason.

cdk-nag 3 runs as a policy-validation plugin: an unacknowledged finding fails synthesis.
Acknowledgements are made on the narrowest construct that produces the finding.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_cdk import Acknowledgment, App, Validations
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct

if TYPE_CHECKING:
    from mlops_cdk.platform import Platform


def add_nag_checks(app: App) -> None:
    """Run the AwsSolutions pack over every stack of ``app`` at synthesis."""
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))


def _ack(scope: IConstruct, rule: str, reason: str) -> None:
    Validations.of(scope).acknowledge(Acknowledgment(id=rule, reason=reason))


def acknowledge(platform: Platform) -> None:
    """Acknowledge, with reasons, the findings that are deliberate in this design."""
    storage = platform.storage
    _ack(
        storage.access_logs,
        "AwsSolutions-S1",
        "This is the server-access-log destination; logging it into itself would loop.",
    )
    if platform.network is not None:
        for nat in platform.network.nat_instances:
            _ack(
                nat,
                "AwsSolutions-EC26",
                "The NAT instance's root volume holds only the stock AMI, no data, and "
                "NatProvider.instanceV2 offers no block-device setting.",
            )
            _ack(
                nat,
                "AwsSolutions-EC28",
                "A NAT instance is chosen to save cost; 5-minute basic monitoring is enough for it.",
            )
            _ack(
                nat,
                "AwsSolutions-EC29",
                "The NAT instance is stateless and replaced by redeploying; termination "
                "protection would only block that.",
            )
