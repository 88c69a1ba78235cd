"""Every runtime call of every actor is allowed by identity AND resource policies.

For each deployed-form variant (every env x tracking mode, and the egress variants), the
expected calls (tests/iam/expected.py) are evaluated with ``@cloud-copilot/iam-simulate``
against the role's identity policies and the policy of the resource (key, bucket, topic,
queue, secret; a role's trust policy for sts:AssumeRole), all resolved from the synthesized
templates (tests/iam/policies.py). One batch per variant, through one Node process.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest

from tests.conftest import of_each_app
from tests.iam.expected import CODE_CALLS, Call, expected_calls
from tests.iam.policies import ACCOUNT, Resolver
from tests.iam.simulator import Decision, Request, simulate
from tests.matrix import VARIANTS, Variant

# Every deployed-form variant of the matrix, plus one with the optional pipeline features
# switched on (Lambda launcher and its schedule, jobs in the VPC, spot with checkpoints, an
# extra input channel), so their actors and calls are simulated too.
OPTIONS_VARIANT = Variant(
    "staging",
    "serverless",
    "deployed",
    (
        ("pipelines.launcher", "lambda"),
        ("pipelines.vpc", "true"),
        ("pipelines.training.spot", "true"),
        ("pipelines.training.max_wait_minutes", "60"),
        ("pipelines.training.extra_channels", '[{"name": "extra", "prefix": "iris/extra/"}]'),
    ),
)
DEPLOYED = (*(v for v in VARIANTS if v.form == "deployed"), OPTIONS_VARIANT)


def _params() -> list[object]:
    ids = {OPTIONS_VARIANT: "staging-serverless-options-deployed"}
    return [pytest.param(v, id=ids.get(v, v.id)) for v in DEPLOYED]


def _request(call: Call, resolver: Resolver) -> Request:
    role = resolver.roles.get(call.principal)
    resource_policy: dict[str, Any] | None
    if call.action == "sts:AssumeRole":
        resource_policy = resolver.roles[call.resource].trust_policy
    else:
        resource_policy = resolver.resource_policy_for(call.resource)
    return Request(
        principal=call.principal,
        action=call.action,
        resource=call.resource,
        account=ACCOUNT,
        identity_policies=role.identity_policies if role is not None else (),
        resource_policy=resource_policy,
        context=call.context,
    )


def evaluate(variant: Variant) -> list[tuple[Call, Decision]]:
    resolver = Resolver(variant.app())
    calls, _ = expected_calls(variant.app(), resolver)
    decisions = simulate([_request(c, resolver) for c in calls])
    return list(zip(calls, decisions, strict=True))


SIMULATED = "iam-simulated"  # per variant: the (actor, action) pairs simulated for it


def _simulated(calls: list[Call]) -> list[tuple[str, str]]:
    return sorted({(c.actor, c.action) for c in calls})  # stored as JSON: lists of two


@pytest.mark.parametrize("variant", _params())
def test_every_runtime_call_is_allowed(variant: Variant) -> None:
    evaluated = evaluate(variant)
    of_each_app(SIMULATED, variant.key, lambda: _simulated([call for call, _ in evaluated]))
    denied = [
        f"{call.id}: {decision.reason}" for call, decision in evaluated if not decision.allowed
    ]
    assert not denied, f"{len(denied)} runtime calls denied:\n" + "\n".join(denied)


def _simulated_in(variant: Variant) -> list[tuple[str, str]]:
    calls, _ = expected_calls(variant.app(), Resolver(variant.app()))
    return _simulated(calls)


@pytest.mark.after_groups  # reads each variant's pairs, stored by the test above
def test_every_recorded_code_call_is_simulated_somewhere() -> None:
    """Each call an actor's code may make (CODE_CALLS, enforced by the recording plugin) is
    simulated in at least one variant (some are made only in some variants: the basic-auth
    secret, the home-EFS teardown); the test above checks each variant's are allowed."""
    simulated: set[tuple[str, str]] = set()
    for variant in DEPLOYED:
        pairs = of_each_app(SIMULATED, variant.key, partial(_simulated_in, variant))
        simulated |= {(actor, action) for actor, action in pairs}
    missing = [
        f"{actor}: {action}"
        for actor, actions in CODE_CALLS.items()
        for action in sorted(actions)
        if (actor, action) not in simulated
    ]
    assert not missing, "calls the code makes that no variant simulates:\n" + "\n".join(missing)


@pytest.mark.parametrize("variant", _params())
def test_every_alarm_notifies_a_topic(variant: Variant) -> None:
    """An alarm without an action notifies no one; its publish call is simulated above."""
    resolver = Resolver(variant.app())
    topics = {resolver.ref(s, lid) for s, lid, _ in resolver.resources("AWS::SNS::Topic")}
    silent = [
        f"{stack}/{logical_id}"
        for stack, logical_id, alarm in resolver.resources("AWS::CloudWatch::Alarm")
        if not set(resolver.resolve(stack, alarm["Properties"].get("AlarmActions", []))) & topics
    ]
    assert not silent, f"alarms that notify no topic: {silent}"
