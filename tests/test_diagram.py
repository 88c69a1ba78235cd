"""docs/architecture.md is generated from the synthesized app and stays current."""

from __future__ import annotations

from functools import cache

import pytest

from tests.conftest import app_key, synthesized_stacks
from tools.cdk_json import ENVIRONMENTS
from tools.diagram import ARCHITECTURE_MD, render
from tools.synthesis import default_mode

# Last (tests/conftest.py): each environment's stacks as its own group stored them.
pytestmark = pytest.mark.after_groups


@cache
def current() -> str:
    return render(
        {env: (default_mode(env), synthesized_stacks(app_key(env))) for env in ENVIRONMENTS}
    )


def test_architecture_md_is_current() -> None:
    assert ARCHITECTURE_MD.read_text() == current(), "run `make diagram` and commit the docs"


def test_cross_stack_references_become_arrows() -> None:
    text = current()
    # prod: the pipelines reach MLflow through the tracking stack's load balancer,
    # and the tracking service runs in the network stack's VPC.
    assert (
        "mlops_prod_pipelines__TrainingPipeline --> mlops_prod_tracking__FargateLoadBalancer"
        in text
    )
    assert "mlops_prod_tracking__FargateService --> mlops_prod_network__NetworkVpc" in text
    # dev has no network stack, so nothing points at one.
    dev = text.split("## dev", 1)[1].split("## staging", 1)[0]
    assert "network" not in dev
    assert "`mlops-staging-studio` depends on `mlops-staging-network`" in text
