"""Every client -> server pair the platform needs is allowed on both sides, in every variant.

The model and how it derives the pairs from the templates: tests/reachability.py.
"""

from __future__ import annotations

import pytest

from tests.matrix import Variant, variant_params
from tests.reachability import Platform


def _platform(variant: Variant) -> Platform:
    app = variant.app()
    return Platform.of({stack.stack_name: stack.template for stack in app.assembly.stacks})


@pytest.mark.parametrize("variant", variant_params())
def test_every_client_reaches_its_servers_on_both_sides(variant: Variant) -> None:
    platform = _platform(variant)
    failures = platform.failures()
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("variant", variant_params())
def test_the_pairs_cover_what_the_platform_runs(variant: Variant) -> None:
    """Guards the check against passing on nothing: the pairs it derives name every party."""
    app = variant.app()
    platform = _platform(variant)
    reasons = {pair.why for pair in platform.pairs}
    settings = app.settings
    self_hosted = settings.tracking.mode in ("fargate", "ec2")
    if self_hosted:
        clients = {
            pair.client.name.split(" ")[0]
            for pair in platform.pairs
            if pair.why == "MLflow tracking"
        }
        assert "job" in clients
        if app.has_stack("studio"):
            assert "Studio" in clients
        assert "MLflow's backend store" in reasons
    if settings.tracking.mode == "fargate":
        assert "listener forwards to the tasks" in reasons
    if app.has_stack("network"):
        egress = settings.network.egress
        if egress == "endpoints":
            assert "AWS API via interface endpoint" in reasons
        else:
            assert "AWS APIs through the NAT" in reasons
        if egress == "nat_instance":
            assert "private subnet's default route" in reasons
