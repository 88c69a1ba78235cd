"""Day one: a scheduled run with nothing to do is a recorded skip, not a failure.

Every pipeline in every variant decides before it starts a job: a preflight processing step
writes a decision file, and a condition step on it runs the job(s) only when ready.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.matrix import Variant, variant_params

JOB_TYPES = {"Training", "Processing"}


def _definitions(variant: Variant) -> dict[str, dict[str, Any]]:
    stack = variant.app().platform.pipelines
    assert stack is not None
    return {
        "training": stack.training.definition.to_dict(),
        "inference": stack.inference.definition.to_dict(),
    }


@pytest.mark.parametrize("variant", variant_params())
def test_every_pipeline_decides_before_it_starts_a_job(variant: Variant) -> None:
    for label, body in _definitions(variant).items():
        steps = body["Steps"]
        jobs = [s["Name"] for s in steps if s["Type"] in JOB_TYPES]
        conditions = [s for s in steps if s["Type"] == "Condition"]
        assert conditions, f"{label} pipeline starts {jobs} with no decision before them"
        (preflight,) = [s for s in steps if s.get("PropertyFiles")]
        assert jobs == [preflight["Name"]], f"{label}: only the preflight runs unconditionally"
        (condition,) = conditions
        gated = [s["Name"] for s in condition["Arguments"]["IfSteps"]]
        assert gated, f"{label}: the ready branch runs no job"
        assert condition["Arguments"]["ElseSteps"] == [], f"{label}: a skip starts nothing"
