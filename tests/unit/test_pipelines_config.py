"""Pipelines settings: defaults, and one clear line for every bad value (in-process, fast)."""

from __future__ import annotations

import pytest

from mlops_cdk.settings import ConfigError, Settings
from tools import cdk_json


def settings(env: str = "dev", **overrides: str) -> Settings:
    return Settings.from_context({**cdk_json.context(), "env": env, **overrides}, environ={})


def test_defaults_follow_the_spec() -> None:
    pipelines = settings().pipelines
    assert pipelines.training.instance_type == "ml.m5.large"
    assert pipelines.training.max_runtime_minutes == 30
    assert pipelines.inference.max_runtime_minutes == 20
    assert pipelines.schedules.training.cron == "cron(0 2 ? * SUN *)"
    assert pipelines.schedules.inference.cron == "cron(0 6 * * ? *)"
    assert pipelines.schedules.training.time_zone == "UTC"
    assert pipelines.launcher == "pipeline"


@pytest.mark.parametrize("env, enabled", [("dev", False), ("staging", True), ("prod", True)])
def test_cdk_json_enables_schedules_outside_dev(env: str, enabled: bool) -> None:
    schedules = settings(env).pipelines.schedules
    assert schedules.training.enabled is enabled
    assert schedules.inference.enabled is enabled


def test_jobs_run_in_the_vpc_when_mlflow_is_self_hosted() -> None:
    assert settings("prod").jobs_in_vpc is True  # fargate
    assert settings("dev").jobs_in_vpc is False
    assert settings("dev", **{"pipelines.vpc": "true"}).needs_network is True


def test_valid_cron_and_time_zone_are_accepted() -> None:
    schedules = settings(
        **{
            "pipelines.schedules.training.cron": "cron(15 3 ? * MON-FRI *)",
            "pipelines.schedules.inference.cron": "cron(0/30 8-17 1,15 * ? 2025-2030)",
            "pipelines.schedules.inference.time_zone": "America/New_York",
        }
    ).pipelines.schedules
    assert schedules.training.cron == "cron(15 3 ? * MON-FRI *)"
    assert schedules.inference.time_zone == "America/New_York"


BAD = {
    "cron with 5 fields": (
        {"pipelines.schedules.training.cron": "cron(0 2 * * SUN)"},
        "pipelines.schedules.training.cron='cron(0 2 * * SUN)': must be cron(minutes hours",
    ),
    "cron without the wrapper": (
        {"pipelines.schedules.inference.cron": "0 6 * * ? *"},
        "pipelines.schedules.inference.cron='0 6 * * ? *': must be cron(",
    ),
    "cron without ?": (
        {"pipelines.schedules.training.cron": "cron(0 2 * * SUN *)"},
        "exactly one of day-of-month and day-of-week must be ?",
    ),
    "cron hour out of range": (
        {"pipelines.schedules.training.cron": "cron(0 24 ? * SUN *)"},
        "hours field '24' is outside 0-23",
    ),
    "unknown time zone": (
        {"pipelines.schedules.inference.time_zone": "CEST"},
        "pipelines.schedules.inference.time_zone='CEST': must be an IANA time zone name",
    ),
    "network isolation": (
        {"pipelines.training.network_isolation": "true"},
        "pipelines.training.network_isolation='true': network isolation is not supported: "
        "an isolated job cannot reach MLflow",
    ),
    "inference network isolation": (
        {"pipelines.inference.network_isolation": "true"},
        "pipelines.inference.network_isolation='true': network isolation is not supported",
    ),
    "launcher": (
        {"pipelines.launcher": "stepfunctions"},
        "pipelines.launcher='stepfunctions': input should be 'pipeline' or 'lambda'",
    ),
    "instance type": (
        {"pipelines.training.instance_type": "m5.large"},
        "pipelines.training.instance_type='m5.large': string should match pattern",
    ),
    "e-mail": (
        {"pipelines.alarm_email": "ml-team"},
        "pipelines.alarm_email='ml-team': must be an e-mail address",
    ),
    "vpc without network": (
        {"pipelines.vpc": "true", "network.enabled": "false"},
        "pipelines.vpc=true runs jobs in the private subnets but network.enabled=false",
    ),
    "no vpc with self-hosted mlflow": (
        {"pipelines.vpc": "false", "tracking.mode": "ec2"},
        "pipelines.vpc=false cannot reach the private MLflow of tracking.mode='ec2'",
    ),
    "max wait without spot": (
        {"pipelines.training.max_wait_minutes": "60"},
        "pipelines.training.max_wait_minutes applies to spot training only",
    ),
    "max wait below runtime": (
        {"pipelines.training.spot": "true", "pipelines.training.max_wait_minutes": "10"},
        "pipelines.training.max_wait_minutes=10 is below max_runtime_minutes=30",
    ),
    "min_accuracy as a hyperparameter": (
        {"pipelines.training.hyperparameters": '{"min_accuracy": 0.9}'},
        "use pipelines.training.min_accuracy",
    ),
    "reserved environment variable": (
        {"pipelines.training.environment": '{"MLFLOW_TRACKING_URI": "http://x"}'},
        "MLFLOW_TRACKING_URI is set by the pipeline",
    ),
    "reserved credentials variable": (
        {"pipelines.inference.environment": '{"MLFLOW_CREDENTIALS_SECRET_ARN": "arn:x"}'},
        "MLFLOW_CREDENTIALS_SECRET_ARN is set by the pipeline",
    ),
    "plain-text credentials": (
        {"pipelines.training.environment": '{"MLFLOW_TRACKING_PASSWORD": "hunter2"}'},
        "MLFLOW_TRACKING_PASSWORD would be stored in plain text in the template",
    ),
    "duplicate channel": (
        {"pipelines.training.extra_channels": '[{"name": "train", "prefix": "iris/x/"}]'},
        "extra_channels name 'train' is used twice",
    ),
    "runtime": (
        {"pipelines.lambda_launcher.runtime": "python3.9"},
        "pipelines.lambda_launcher.runtime='python3.9': input should be",
    ),
    "job name prefix too long": (
        {"pipelines.lambda_launcher.job_name_prefix": "a" * 49 + "-b"},
        "pipelines.lambda_launcher.job_name_prefix=",
    ),
    "unknown pipelines key": (
        {"pipelines.schedule.training.enabled": "true"},
        "unknown setting 'pipelines.schedule'",
    ),
}


@pytest.mark.parametrize("overrides, expected", BAD.values(), ids=BAD.keys())
def test_bad_setting_is_one_clear_line(overrides: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError) as raised:
        settings(**overrides)
    message = str(raised.value)
    assert "\n" not in message
    assert expected in message, message
