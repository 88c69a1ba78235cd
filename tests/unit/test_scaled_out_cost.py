"""`make cost` counts a tuning step's training jobs and a sharded score step's instances."""

from __future__ import annotations

import pytest

from tests.conftest import synthesized
from tools.cost import estimate, load_prices
from tools.synthesis import stacks_of

PRICES = load_prices()
HOURS = PRICES.hours
WEEKLY, DAILY = HOURS / 24 / 7, HOURS / 24


def test_tuning_and_sharding_count_every_instance() -> None:
    # staging: weekly training (30 min max runtime), daily inference (20 min), ml.m5.large.
    app = synthesized(
        "staging",
        **{
            "pipelines.training.strategy": "tuning",
            "pipelines.training.tuning.max_jobs": "6",
            "pipelines.training.tuning.max_parallel_jobs": "3",
            "pipelines.inference.instance_count": "4",
        },
    )
    est = estimate(stacks_of(app.assembly), PRICES)
    training, processing = est.line("Training ml.m5.large"), est.line("Processing ml.m5.large")
    assert training is not None and processing is not None
    # 6 tuning jobs of one instance per run (3 at a time: wall clock, not instance-hours).
    assert training.quantity == pytest.approx(WEEKLY * 6 * 0.5)
    assert "6 tuning jobs (3 at a time)" in training.detail
    # Score on 4 instances + the one-instance Commit, each up to the 20 min max runtime.
    assert processing.quantity == pytest.approx(DAILY * (4 + 1) * 20 / 60)
    assert not [item for item in est.not_priced if "Tuning" in item]
