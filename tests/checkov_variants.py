"""The variants checkov scans: tests/matrix.py's, plus the optional features that add resources
(the Lambda launcher with its dead-letter queue; HTTPS on the Fargate load balancer)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from tests.matrix import VARIANTS as MATRIX
from tests.matrix import Variant
from tests.synth import DEPLOY_ACCOUNT, DEPLOY_REGION
from tools.cdk_json import ENVIRONMENTS
from tools.synthesis import default_mode, templates_by_name

CERTIFICATE_ARN = (
    f"arn:aws:acm:{DEPLOY_REGION}:{DEPLOY_ACCOUNT}:certificate/0123abcd-4567-89ef-0123-456789abcdef"
)


@dataclass(frozen=True)
class Scanned:
    """A variant under a short name (a file-name-safe id)."""

    id: str
    variant: Variant


VARIANTS: tuple[Scanned, ...] = (
    *(Scanned(v.id, v) for v in MATRIX),
    Scanned(
        "staging-serverless-launcher-deployed",
        Variant("staging", "serverless", "deployed", (("pipelines.launcher", "lambda"),)),
    ),
    Scanned(
        "prod-fargate-https-deployed",
        Variant(
            "prod", "fargate", "deployed", (("tracking.fargate.certificate_arn", CERTIFICATE_ARN),)
        ),
    ),
)


# Each environment as cdk.json configures it (its default tracking mode), synthesized as
# `cdk deploy` does: with the account and region.
DEFAULTS = {env: f"{env}-{default_mode(env)}-deployed" for env in ENVIRONMENTS}


def templates_of(variants: Iterable[Scanned]) -> Iterator[tuple[str, str, Mapping[str, Any]]]:
    """(variant id, stack name, template) of every stack of every variant."""
    from tests.conftest import synthesized_templates  # noqa: PLC0415 (conftest imports matrix)

    for scanned in variants:
        templates = synthesized_templates(scanned.variant.key)
        if templates is None:  # not synthesized in this session yet (or no session: the tool)
            app = scanned.variant.app()
            templates = templates_by_name(app.assembly)
        for stack_name, template in templates.items():
            yield scanned.id, stack_name, template
