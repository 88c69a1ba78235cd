"""The simulator evaluates actions, identity and resource policies as IAM does (one batch)."""

from __future__ import annotations

from typing import Any

from tests.iam.simulator import Request, simulate

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
