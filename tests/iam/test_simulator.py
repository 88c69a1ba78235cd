"""The simulator evaluates actions, identity and resource policies as IAM does, batch after
batch in one Node process, and says so when that process fails or hangs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.iam import simulator
from tests.iam.simulator import SCRIPT, Request, Simulator, simulate

ACCOUNT = "111122223333"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/job"
APP = f"arn:aws:sagemaker:eu-west-1:{ACCOUNT}:mlflow-app/app-abc"
KEY = f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/1234"
TOPIC = f"arn:aws:sns:eu-west-1:{ACCOUNT}:alarms"


def _allow(actions: list[str], resource: str) -> list[dict[str, Any]]:
    statement = {"Effect": "Allow", "Action": actions, "Resource": resource}
    return [{"name": "p", "policy": {"Version": "2012-10-17", "Statement": [statement]}}]


def test_decisions_come_back_in_order_from_one_batch() -> None:
    root = {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}
    key_policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": root, "Action": "kms:*", "Resource": "*"}],
    }
    topic_policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "events.amazonaws.com"},
                "Action": "sns:Publish",
                "Resource": TOPIC,
            }
        ],
    }
    decisions = simulate(
        [
            # A tracking server's wildcard does not cover an App's action (no substring match).
            Request(
                ROLE,
                "sagemaker:CallMlflowAppApi",
                APP,
                ACCOUNT,
                _allow(["sagemaker-mlflow:*"], APP),
            ),
            Request(
                ROLE,
                "sagemaker:CallMlflowAppApi",
                APP,
                ACCOUNT,
                _allow(["sagemaker:CallMlflowAppApi"], APP),
            ),
            # A key policy that trusts the account lets identity policies grant the key...
            Request(ROLE, "kms:Decrypt", KEY, ACCOUNT, _allow(["kms:Decrypt"], KEY), key_policy),
            # ... one that does not, denies whatever the identity policy says.
            Request(
                ROLE,
                "kms:Decrypt",
                KEY,
                ACCOUNT,
                _allow(["kms:Decrypt"], KEY),
                {"Version": "2012-10-17", "Statement": []},
            ),
            # A service principal needs the resource policy to name it.
            Request("cloudwatch.amazonaws.com", "sns:Publish", TOPIC, ACCOUNT, (), topic_policy),
            Request("events.amazonaws.com", "sns:Publish", TOPIC, ACCOUNT, (), topic_policy),
        ]
    )
    assert [d.allowed for d in decisions] == [False, True, True, False, False, True]
    assert "identity policies: ImplicitlyDenied" in decisions[0].reason


def _one(principal: str, action: str, resource: str, allowed_actions: list[str]) -> str:
    request = Request(principal, action, resource, ACCOUNT, _allow(allowed_actions, resource))
    return json.dumps([request.as_json()])


def test_batches_run_one_after_another_in_one_process() -> None:
    with_script = Simulator(SCRIPT)
    try:
        first = with_script.run(_one(ROLE, "sagemaker:CallMlflowAppApi", APP, ["sagemaker:*"]))
        pid = with_script.pid
        second = with_script.run(_one(ROLE, "sagemaker:DeleteMlflowApp", APP, ["sagemaker:Call*"]))
        assert with_script.pid == pid is not None
    finally:
        with_script.stop()
    assert [r["result"] for r in json.loads(first)] == ["Allowed"]
    assert [r["result"] for r in json.loads(second)] == ["ImplicitlyDenied"]
    assert with_script.pid is None


def test_a_simulator_that_dies_is_one_error_with_its_stderr_then_starts_again(
    tmp_path: Path,
) -> None:
    dies = tmp_path / "dies.mjs"
    dies.write_text(
        "process.stdin.once('data', () => { console.error('no policy engine'); process.exit(3) })\n"
    )
    failing = Simulator(dies)
    for _ in range(2):  # the second batch starts a new process, which fails the same way
        with pytest.raises(RuntimeError, match=r"^dies\.mjs failed: no policy engine$"):
            failing.run("[]")
        assert failing.pid is None


def test_a_simulator_that_never_answers_is_one_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    silent = tmp_path / "silent.mjs"
    silent.write_text("process.stdin.resume()\n")  # reads, never answers
    monkeypatch.setattr(simulator, "ANSWER_TIMEOUT_SECONDS", 0.5)
    never = Simulator(silent)
    with pytest.raises(RuntimeError, match=r"^silent\.mjs gave no answer in 0\.5 s: "):
        never.run("[]")
    assert never.pid is None  # killed, not left running
