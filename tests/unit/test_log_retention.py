"""Each log retention the settings allow is the CDK member of that many days."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import assertions
from aws_cdk import aws_logs as logs

from mlops_cdk.settings import LOG_RETENTION_DAYS, retention_days


def test_every_allowed_retention_is_that_many_days_in_the_template() -> None:
    stack = cdk.Stack(cdk.App())
    for days in LOG_RETENTION_DAYS:
        logs.LogGroup(stack, f"Keep{days}", retention=retention_days(days))
    groups = assertions.Template.from_stack(stack).find_resources("AWS::Logs::LogGroup")
    assert sorted(g["Properties"]["RetentionInDays"] for g in groups.values()) == sorted(
        LOG_RETENTION_DAYS
    )
