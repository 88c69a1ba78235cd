"""Bad settings stop synthesis with one line on stderr, a non-zero exit and nothing written."""

from __future__ import annotations

import datetime as dt
import gc
import json
import os
import runpy
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aws_cdk as cdk
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from mlops_cdk.settings import ConfigError, Settings
from mlops_cdk.settings.loader import cli_context
from tests.synth import ROOT
from tools import cdk_json
from tools.cdk_json import ENVIRONMENTS


def run_as_the_cli(
    args: list[str], context: dict[str, Any], tmp_path: Path, **extra_env: str
) -> subprocess.CompletedProcess[str]:
    """``python args`` from the repository root as the CDK CLI starts app.py: the context in
    CDK_CONTEXT_JSON, the output directory in CDK_OUTDIR, ``extra_env``, nothing else of this
    environment."""
    env = {
        **extra_env,
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/tmp"),
        "CDK_CONTEXT_JSON": json.dumps(context),
        "CDK_OUTDIR": str(tmp_path / "cdk.out"),
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
    }
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def run_app(tmp_path: Path, **overrides: str) -> subprocess.CompletedProcess[str]:
    """Run app.py as the CDK CLI does, with cdk.json's context and ``overrides`` (``-c``)."""
    return run_as_the_cli([str(ROOT / "app.py")], {**cdk_json.context(), **overrides}, tmp_path)


CASES = {
    "unknown environment": (
        {"env": "qa"},
        "config error: env='qa' is not one of dev, prod, staging",
    ),
    "unknown key (typo)": (
        {"env": "dev", "storage.versionning": "true"},
        "config error: unknown setting 'storage.versionning'; allowed here: create_bucket, ",
    ),
    "unknown section": (
        {"env": "dev", "storge.create_bucket": "false"},
        "config error: unknown setting 'storge.create_bucket' (-c); top-level settings are: ",
    ),
    "wrong type": (
        {"env": "dev", "network.max_azs": "two"},
        "config error: network.max_azs='two': input should be a valid integer",
    ),
    "out of range": (
        {"env": "dev", "storage.noncurrent_version_days": "0"},
        "config error: storage.noncurrent_version_days='0': input should be greater than or equal to 1",
    ),
    "not an allowed value": (
        {"env": "staging", "network.egress": "vpn"},
        "config error: network.egress='vpn': input should be 'endpoints', 'nat_gateway' or 'nat_instance'",
    ),
    "malformed value": (
        {"env": "dev", "network.cidr": "10.0.0/16"},
        "config error: network.cidr='10.0.0/16': must be an IPv4 network such as 10.0.0.0/16",
    ),
    "inconsistent settings": (
        {"env": "dev", "storage.create_bucket": "false"},
        "config error: storage.create_bucket=false needs storage.artifact_store_uri",
    ),
}


@pytest.mark.parametrize("overrides, expected", CASES.values(), ids=CASES.keys())
def test_bad_setting_prints_one_line_and_writes_nothing(
    tmp_path: Path, overrides: dict[str, str], expected: str
) -> None:
    result = run_app(tmp_path, **overrides)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(expected)
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "cdk.out").exists() or not any((tmp_path / "cdk.out").iterdir())


def test_a_bad_setting_stops_app_py_before_node_starts(tmp_path: Path) -> None:
    """app.py checks the settings before it imports aws_cdk, whose import starts jsii's Node
    process and loads aws-cdk-lib (about half a second): a typo is answered at once."""
    context = {**cdk_json.context(), "env": "dev", "network.max_azs": "two"}
    script = (
        "import runpy, sys\n"
        "try:\n"
        "    runpy.run_path('app.py', run_name='__main__')\n"
        "except SystemExit as stop:\n"
        "    print(stop.code)\n"
        "print('aws_cdk loaded' if 'aws_cdk' in sys.modules else 'aws_cdk not loaded')\n"
    )
    result = run_as_the_cli(["-c", script], context, tmp_path)
    lines = result.stdout.splitlines()
    assert len(lines) == 2, result.stdout + result.stderr
    assert lines[0].startswith(
        "config error: network.max_azs='two': input should be a valid integer"
    )
    assert lines[1] == "aws_cdk not loaded"


def test_an_unreadable_cli_context_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CDK_CONTEXT_JSON", '{"env": "dev",')
    with pytest.raises(SystemExit) as stop:
        runpy.run_path(str(ROOT / "app.py"), run_name="__main__")
    # app.py runs with automatic garbage collection off; stopping early, it turns it back on
    # for this (the caller's) process.
    assert gc.isenabled()
    message = str(stop.value.code)
    assert message.startswith("config error: cannot read the context the CDK CLI passed: ")
    assert "\n" not in message


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_settings_from_the_clis_context_are_the_apps(env: str) -> None:
    """What app.py checks before jsii starts (the context as the CLI hands it) is what set_up
    then reads from CDK's App, nulls included."""
    raw = cdk_json.context()
    raw["environments"]["staging"]["studio"]["cleanup_reserved_concurrency"] = None
    raw["env"] = env
    environ = {"CDK_CONTEXT_JSON": json.dumps(raw)}
    from_app = Settings.from_context(cdk.App(context=raw).node.get_all_context(), environ)
    assert Settings.from_context(cli_context(environ), environ) == from_app


# --- issue 13: settings that CDK, CloudFormation or every scheduled run would reject ----------
# In-process (Settings.from_context, what app.py calls) for speed; the subprocess cases above
# and below prove the same errors reach the user as one line.


def _settings(env: str = "dev", **overrides: str) -> Settings:
    return Settings.from_context({**cdk_json.context(), "env": env, **overrides}, environ={})


def _error(env: str = "dev", **overrides: str) -> str:
    with pytest.raises(ConfigError) as caught:
        _settings(env, **overrides)
    message = str(caught.value)
    assert "\n" not in message
    return message


ZONES = {"region": "eu-west-1", "network.enabled": "true"}
FARGATE_TO_ZERO = {"tracking.fargate.scale_to_zero": "true"}  # prod: fargate, schedules on

REFUSED: dict[str, tuple[str, dict[str, str], str]] = {
    # -c values arrive as strings
    "JSON syntax error in an object": (
        "dev",
        {"tracking": '{"mode": managed}'},
        "-c tracking='{\"mode\": managed}' is not valid JSON: Expecting value at line 1 column 10",
    ),
    "JSON syntax error in a list": (
        "dev",
        {"studio.user_profiles": '["alice", ]'},
        "-c studio.user_profiles='[\"alice\", ]' is not valid JSON: ",
    ),
    "JSON trailing comma in hyperparameters": (
        "dev",
        {"pipelines.training.hyperparameters": '{"n_estimators": 5,}'},
        "-c pipelines.training.hyperparameters='{\"n_estimators\": 5,}' is not valid JSON: ",
    ),
    "integer choice not in the list": (
        "prod",
        {"tracking.fargate.cpu": "2000"},
        "tracking.fargate.cpu=2000: input should be 256, 512, 1024, 2048 or 4096",
    ),
    "section that is not an object beside a dotted key": (
        "dev",
        {"tracking.size": "Large", "tracking": "managed"},
        "-c tracking='managed' must be a JSON object: -c tracking.size sets a key inside it",
    ),
    # values CDK or CloudFormation reject at synth or deploy
    "CIDR too small for the subnets": (
        "prod",
        {"network.cidr": "10.0.0.0/20"},
        "network.cidr='10.0.0.0/20' is too small for 2 private /20 subnets (one per zone): "
        "use a /19 or larger",
    ),
    "CIDR too small with NAT public subnets": (
        "staging",
        {"network.cidr": "10.0.0.0/19", "network.egress": "nat_gateway"},
        "network.cidr='10.0.0.0/19' is too small for 2 private /20 and 2 public /24 subnets",
    ),
    "bucket name with adjacent dots": (
        "dev",
        {"storage.create_bucket": "false", "storage.artifact_store_uri": "s3://my..bucket/mlflow"},
        "storage.artifact_store_uri='s3://my..bucket/mlflow': bucket name 'my..bucket' is not a valid",
    ),
    "bucket name shaped like an IP address": (
        "dev",
        {"storage.create_bucket": "false", "storage.artifact_store_uri": "s3://192.168.10.1"},
        "bucket name '192.168.10.1' is not a valid S3 bucket name",
    ),
    "bucket name with a reserved prefix": (
        "dev",
        {"storage.create_bucket": "false", "storage.artifact_store_uri": "s3://xn--bucket"},
        "bucket name 'xn--bucket' is not a valid S3 bucket name",
    ),
    "Aurora capacity not in 0.5 steps": (
        "prod",
        {"tracking.fargate.db_min_capacity": "0.3"},
        "tracking.fargate.db_min_capacity='0.3': must be a multiple of 0.5 ACU",
    ),
    "Aurora max capacity not in 0.5 steps": (
        "prod",
        {"tracking.fargate.db_max_capacity": "2.25"},
        "tracking.fargate.db_max_capacity='2.25': must be a multiple of 0.5 ACU",
    ),
    "duplicated interface endpoint": (
        "staging",
        {"network.interface_endpoints": '["sts", "logs", "sts"]'},
        "network.interface_endpoints lists sts more than once",
    ),
    "reserved Lambda environment name": (
        "dev",
        {"pipelines.lambda_launcher.environment": '{"AWS_REGION": "eu-west-1"}'},
        "pipelines.lambda_launcher.environment: AWS_REGION is reserved by AWS Lambda",
    ),
    "Lambda environment the construct sets": (
        "dev",
        {"pipelines.lambda_launcher.environment": '{"PIPELINE_NAME": "x"}'},
        "pipelines.lambda_launcher.environment: PIPELINE_NAME is set by the launcher construct",
    ),
    "tag key starting with aws:": (
        "dev",
        {"tags": '{"aws:owner": "me"}'},
        "tags: key 'aws:owner' starts with aws:, which AWS reserves",
    ),
    "empty tag key": ("dev", {"tags": '{"": "me"}'}, "tags: key '' is empty"),
    "tag value too long": (
        "dev",
        {"tags": json.dumps({"team": "x" * 257})},
        "tags: value of 'team' is longer than 256 characters",
    ),
    # settings that would fail every scheduled run
    "hyperparameter the training container refuses": (
        "dev",
        {"pipelines.training.hyperparameters": '{"n_estimators": 0}'},
        "pipelines.training.hyperparameters: hyperparameter n_estimators='0' is not an integer "
        "between 1 and 2000",
    ),
    "unknown hyperparameter name": (
        "dev",
        {"pipelines.training.hyperparameters.n_estimator": "5"},
        "pipelines.training.hyperparameters: hyperparameter n_estimator='5' is not a known "
        "hyperparameter",
    ),
    "hyperparameter choice": (
        "dev",
        {"pipelines.training.hyperparameters.criterion": "gain"},
        "hyperparameter criterion='gain' is not one of gini, entropy, log_loss",
    ),
    "inference environment value the container refuses": (
        "dev",
        {"pipelines.inference.environment": '{"CHUNK_ROWS": "lots"}'},
        "pipelines.inference.environment: setting --chunk-rows/CHUNK_ROWS='lots' is not an integer",
    ),
    "inference drift threshold out of range": (
        "dev",
        {"pipelines.inference.environment.DRIFT_THRESHOLD": "0"},
        "setting --drift-threshold/DRIFT_THRESHOLD='0' is not a number greater than 0",
    ),
    "generated rows in a job": (
        "dev",
        {"pipelines.inference.environment.GENERATE_ROWS": "1000"},
        "pipelines.inference.environment: GENERATE_ROWS is not read by the inference container",
    ),
    "cron with #6": (
        "dev",
        {"pipelines.schedules.training.cron": "cron(0 2 ? * MON#6 *)"},
        "day-of-week field 'MON#6'",
    ),
    "training instance type that does not exist": (
        "dev",
        {"pipelines.training.instance_type": "ml.m5.huge"},
        "pipelines.training.instance_type='ml.m5.huge': is not a SageMaker training instance type",
    ),
    "processing instance type that does not exist": (
        "dev",
        {"pipelines.inference.instance_type": "ml.p9.xlarge"},
        "pipelines.inference.instance_type='ml.p9.xlarge': is not a SageMaker processing "
        "instance type",
    ),
    "EC2 tracking instance type that does not exist": (
        "staging",
        {"tracking.mode": "ec2", "tracking.ec2.instance_type": "t3.enormous"},
        "tracking.ec2.instance_type='t3.enormous' is not an EC2 instance type",
    ),
    "NAT instance type that does not exist": (
        "staging",
        {"network.egress": "nat_instance", "network.nat_instance_type": "t4g.nanoo"},
        "network.nat_instance_type='t4g.nanoo' is not an EC2 instance type",
    ),
    "two identical availability zones": (
        "staging",
        {**ZONES, "network.availability_zones": '["eu-west-1a", "eu-west-1a"]'},
        "network.availability_zones lists eu-west-1a more than once",
    ),
    "MLflow scaled to zero during the weekly training": (
        "prod",
        FARGATE_TO_ZERO,
        "pipelines.schedules.training.cron='cron(0 2 ? * SUN *)' (UTC) starts runs while "
        "tracking.fargate.scale_to_zero stops MLflow (working hours MON-FRI 7-19 UTC), e.g. "
        "Sun 02:00 UTC",
    ),
    "MLflow scaled to zero during the daily inference in another zone": (
        "prod",
        {
            **FARGATE_TO_ZERO,
            "pipelines.schedules.training.cron": "cron(0 9 ? * MON *)",
            "pipelines.schedules.inference.cron": "cron(0 6 ? * MON-FRI *)",
            "pipelines.schedules.inference.time_zone": "America/New_York",
            "tracking.fargate.working_hours_end": "10",
        },
        "pipelines.schedules.inference.cron='cron(0 6 ? * MON-FRI *)' (America/New_York) starts "
        "runs while tracking.fargate.scale_to_zero stops MLflow",
    ),
    "MLflow scaled to zero for a summer-time run only": (
        "prod",
        {
            **FARGATE_TO_ZERO,
            "pipelines.schedules.training.cron": "cron(0 9 ? * MON *)",
            "pipelines.schedules.inference.cron": "cron(30 7 ? * MON-FRI *)",
            "pipelines.schedules.inference.time_zone": "Europe/London",
        },
        "e.g. Mon 06:30 UTC",  # 07:30 BST; in winter 07:30 GMT would be inside the hours
    ),
    "no interface endpoints for VpcOnly Studio": (
        "staging",
        {"network.egress": "endpoints", "network.interface_endpoints": "[]"},
        "network.interface_endpoints lacks logs (Studio apps: their execution role writes "
        "logs), sagemaker_api (Studio apps (VpcOnly): SageMaker API; MLflow clients: describe "
        "the SageMaker MLflow server or App),",
    ),
    "no interface endpoints for VPC jobs": (
        "dev",
        {"pipelines.vpc": "true", "network.interface_endpoints": '["sts"]'},
        "network.interface_endpoints lacks ecr_api (SageMaker jobs in the VPC: image from ECR), "
        "ecr_docker (SageMaker jobs in the VPC: image layers from ECR), logs (SageMaker jobs "
        "in the VPC: container logs), sagemaker_api (MLflow clients: describe the SageMaker "
        "MLflow server or App), sagemaker_experiments (MLflow clients: the SageMaker MLflow "
        "tracking API); add them, leave the setting null (derived from the features) or use "
        "NAT egress",
    ),
    "endpoints in more zones than the VPC has": (
        "prod",
        {"network.endpoint_zones": "3"},
        "network.endpoint_zones=3 is more than the 2 zones of the VPC",
    ),
}


@pytest.mark.parametrize(("env", "overrides", "expected"), REFUSED.values(), ids=REFUSED.keys())
def test_bad_setting_is_refused_at_synth_in_one_line(
    env: str, overrides: dict[str, str], expected: str
) -> None:
    assert expected in _error(env, **overrides)


ACCEPTED: dict[str, tuple[str, dict[str, str], Callable[[Settings], object], object]] = {
    "integer choice from -c": (
        "prod",
        {"tracking.fargate.cpu": "2048", "tracking.fargate.memory_mib": "4096"},
        lambda s: s.tracking.fargate.cpu,
        2048,
    ),
    "profiler interval from -c": (
        "dev",
        {"pipelines.training.profiler.interval_ms": "1000"},
        lambda s: s.pipelines.training.profiler.interval_ms,
        1000,
    ),
    "a dotted key survives a later whole section": (
        "dev",
        {"tracking.size": "Large", "tracking": '{"mode": "managed"}'},
        lambda s: (s.tracking.mode, s.tracking.size),
        ("managed", "Large"),
    ),
    "a dotted key wins over an earlier whole section": (
        "dev",
        {"tracking": '{"mode": "managed", "size": "Medium"}', "tracking.size": "Large"},
        lambda s: (s.tracking.mode, s.tracking.size),
        ("managed", "Large"),
    ),
    "a whole section merges into cdk.json": (
        "prod",
        {"tracking": '{"fargate": {"max_tasks": 6}}'},
        lambda s: (s.tracking.mode, s.tracking.fargate.min_tasks, s.tracking.fargate.max_tasks),
        ("fargate", 2, 6),
    ),
    "hyperparameters the container accepts": (
        "dev",
        {"pipelines.training.hyperparameters": '{"n_estimators": 50, "max_depth": "none"}'},
        lambda s: s.pipelines.training.hyperparameters["n_estimators"],
        50,
    ),
    "a CIDR that fits": (
        "prod",
        {"network.cidr": "10.0.0.0/19"},
        lambda s: s.network.cidr,
        "10.0.0.0/19",
    ),
    "Aurora capacity in 0.5 steps": (
        "prod",
        {"tracking.fargate.db_max_capacity": "2.5"},
        lambda s: s.tracking.fargate.db_max_capacity,
        2.5,
    ),
    "scale to zero with runs inside the working hours": (
        "prod",
        {
            **FARGATE_TO_ZERO,
            "pipelines.schedules.training.cron": "cron(0 9 ? * MON *)",
            # 08:30 in London is 08:30 UTC in winter and 07:30 UTC in summer: both inside.
            "pipelines.schedules.inference.cron": "cron(30 8 ? * MON-FRI *)",
            "pipelines.schedules.inference.time_zone": "Europe/London",
        },
        lambda s: s.tracking.fargate.scale_to_zero,
        True,
    ),
    "scale to zero with a weekly run on a day whose name holds W or L": (
        "prod",
        {
            **FARGATE_TO_ZERO,
            # WED and JUL are names, not the W (nearest weekday) or L (last) day marks.
            "pipelines.schedules.training.cron": "cron(0 10 ? JUN-JUL WED *)",
            "pipelines.schedules.inference.cron": "cron(0 9 ? * MON-FRI *)",
        },
        lambda s: s.pipelines.schedules.training.cron,
        "cron(0 10 ? JUN-JUL WED *)",
    ),
    "an instance type SageMaker has": (
        "dev",
        {"pipelines.training.instance_type": "ml.c5.xlarge"},
        lambda s: s.pipelines.training.instance_type,
        "ml.c5.xlarge",
    ),
    "a valid dotted bucket name": (
        "dev",
        {"storage.create_bucket": "false", "storage.artifact_store_uri": "s3://my.bucket-1/mlflow"},
        lambda s: s.storage.existing_bucket_name,
        "my.bucket-1",
    ),
}


@pytest.mark.parametrize(
    ("env", "overrides", "read", "expected"), ACCEPTED.values(), ids=ACCEPTED.keys()
)
def test_good_setting_is_accepted(
    env: str, overrides: dict[str, str], read: Callable[[Settings], object], expected: object
) -> None:
    assert read(_settings(env, **overrides)) == expected


SUBPROCESS = {
    "JSON syntax error": (
        {"env": "dev", "tracking": '{"mode": managed}'},
        "config error: -c tracking='{\"mode\": managed}' is not valid JSON: Expecting value at "
        "line 1 column 10 (char 9)",
    ),
    "hyperparameter the container refuses": (
        {"env": "dev", "pipelines.training.hyperparameters.max_features": "most"},
        "config error: pipelines.training.hyperparameters: hyperparameter max_features='most' is "
        "not one of sqrt, log2, all",
    ),
    "CIDR too small": (
        {"env": "staging", "network.cidr": "10.0.0.0/24"},
        "config error: network.cidr='10.0.0.0/24' is too small",
    ),
}


@pytest.mark.parametrize("overrides, expected", SUBPROCESS.values(), ids=SUBPROCESS.keys())
def test_issue_13_errors_reach_the_user_as_one_line(
    tmp_path: Path, overrides: dict[str, str], expected: str
) -> None:
    result = run_app(tmp_path, **overrides)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [expected] or result.stderr.strip().startswith(
        expected
    ), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


# --- property-based: whatever -c holds, the loader answers settings or one ConfigError line ----

PROPERTIES = settings(max_examples=80, deadline=None, database=None)


def _leaf_settings(model: type[BaseModel] = Settings, prefix: str = "") -> list[str]:
    paths = []
    for name, field in model.model_fields.items():
        if name == "env_name":
            continue
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            paths.extend(_leaf_settings(annotation, f"{prefix}{name}."))
        else:
            paths.append(prefix + name)
    return paths


LEAVES = _leaf_settings()
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats() | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
cli_values = st.one_of(
    st.text(max_size=20),
    st.integers(-5, 70000).map(str),
    st.sampled_from(["true", "false", "null", "[]", "{}", "{", "[1,", "0.5", "Large", "fargate"]),
    json_values.map(json.dumps),
)


@PROPERTIES
@given(
    env=st.sampled_from(ENVIRONMENTS),
    overrides=st.dictionaries(st.sampled_from(LEAVES), cli_values, min_size=1, max_size=4),
)
def test_any_cli_values_give_settings_or_one_config_error_line(
    env: str, overrides: dict[str, str]
) -> None:
    try:
        _settings(env, **overrides)
    except ConfigError as err:
        message = str(err)
        assert message and "\n" not in message
        assert "Traceback" not in message


@PROPERTIES
@given(
    size=st.sampled_from(["Small", "Medium", "Large"]),
    section_size=st.sampled_from(["Small", "Medium", "Large"]),
    dotted_first=st.booleans(),
)
def test_the_dotted_key_wins_whatever_the_command_line_order(
    size: str, section_size: str, dotted_first: bool
) -> None:
    section = ("tracking", json.dumps({"mode": "managed", "size": section_size}))
    dotted = ("tracking.size", size)
    pairs = [dotted, section] if dotted_first else [section, dotted]
    loaded = _settings("dev", **dict(pairs)).tracking
    assert (loaded.mode, loaded.size) == ("managed", size)


@PROPERTIES
@given(
    field=st.sampled_from(
        [
            ("tracking.fargate.cpu", (256, 512, 1024, 2048, 4096)),
            ("pipelines.training.profiler.interval_ms", (100, 200, 500, 1000, 5000, 60000)),
        ]
    ),
    value=st.integers(0, 70000),
)
def test_integer_choices_from_the_command_line(
    field: tuple[str, tuple[int, ...]], value: int
) -> None:
    name, choices = field
    extra = {"tracking.fargate.memory_mib": "8192"} if value == 4096 else {}
    if name == "tracking.fargate.cpu" and value in (256, 512):
        extra = {"tracking.fargate.memory_mib": "1024"}
    if name == "tracking.fargate.cpu" and value in (1024, 2048):
        extra = {"tracking.fargate.memory_mib": "4096"}
    if value in choices:
        loaded = _settings("prod", **{name: str(value)}, **extra)
        assert loaded.model_dump(mode="python")[name.split(".")[0]] is not None
        section: Any = loaded
        for part in name.split("."):
            section = getattr(section, part)
        assert section == value
    else:
        assert f"{name}={value}: input should be " in _error("prod", **{name: str(value)})


@PROPERTIES
@given(tags=st.dictionaries(st.text(max_size=140), st.text(max_size=260), max_size=3))
def test_tags_are_accepted_only_when_aws_would_accept_them(tags: dict[str, str]) -> None:
    try:
        loaded = _settings("dev", tags=json.dumps(tags))
    except ConfigError as err:
        assert str(err).startswith("tags: ")
        return
    for key, value in loaded.tags.items():
        assert 1 <= len(key) <= 128 and key.strip() and not key.lower().startswith("aws:")
        assert len(value) <= 256


@PROPERTIES
@given(
    hour=st.integers(0, 23),
    minute=st.integers(0, 59),
    zone=st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo"]),
)
def test_scale_to_zero_refuses_exactly_the_runs_outside_the_working_hours(
    hour: int, minute: int, zone: str
) -> None:
    overrides = {
        **FARGATE_TO_ZERO,
        "pipelines.schedules.training.cron": "cron(0 9 ? * MON *)",
        "pipelines.schedules.inference.cron": f"cron({minute} {hour} ? * MON-FRI *)",
        "pipelines.schedules.inference.time_zone": zone,
    }
    # The daily run in UTC over one year, both sides of each DST change.
    times = [
        dt.datetime(2027, month, day, hour, minute, tzinfo=ZoneInfo(zone)).astimezone(dt.UTC)
        for month in range(1, 13)
        for day in range(1, 29)
        if dt.date(2027, month, day).weekday() < 5
    ]
    inside = all(t.weekday() < 5 and 7 <= t.hour < 19 for t in times)
    if inside:
        assert _settings("prod", **overrides).tracking.fargate.scale_to_zero
    else:
        assert "starts runs while tracking.fargate.scale_to_zero stops MLflow" in _error(
            "prod", **overrides
        )


def test_an_error_says_where_the_bad_value_was_set() -> None:
    assert _error("dev", **{"tracking.size": "Huge"}).endswith("(set in -c)")
    context = cdk_json.context()
    context["environments"]["dev"]["tracking"]["size"] = "Huge"
    with pytest.raises(ConfigError) as caught:
        Settings.from_context({**context, "env": "dev"}, environ={})
    assert str(caught.value) == (
        "tracking.size='Huge': input should be 'Small', 'Medium' or 'Large' "
        "(set in cdk.json environments.dev)"
    )


def test_a_null_written_in_cdk_json_reaches_the_settings(tmp_path: Path) -> None:
    """jsii drops null values from the context app.py reads (app.node.get_all_context()), so
    ``"cleanup_reserved_concurrency": null`` in cdk.json, which the docs give for accounts
    whose Lambda concurrency quota cannot reserve, used to keep the default (1) silently."""
    context = cdk_json.context()
    context["environments"]["staging"]["studio"]["cleanup_reserved_concurrency"] = None
    context["env"] = "staging"
    script = (
        "import os, aws_cdk as cdk\n"
        "from mlops_cdk.settings import Settings\n"
        "app = cdk.App()\n"
        "settings = Settings.from_context(app.node.get_all_context(), os.environ)\n"
        "print(settings.studio.cleanup_reserved_concurrency)\n"
    )
    result = run_as_the_cli(["-c", script], context, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "None"


def test_the_clis_nulls_are_used_only_for_the_same_environments(tmp_path: Path) -> None:
    """In-process, the same rule as above with each source the CLI may use: CDK_CONTEXT_JSON,
    the overflow file it writes for a large context (which wins), and a copy that belongs to
    another app (ignored: its environments differ)."""
    raw = cdk_json.context()
    raw["environments"]["staging"]["studio"]["cleanup_reserved_concurrency"] = None
    # The context as app.py reads it back from CDK, nulls dropped by jsii itself.
    context = {**cdk.App(context=raw).node.get_all_context(), "env": "staging"}
    assert "cleanup_reserved_concurrency" not in context["environments"]["staging"]["studio"]
    from_env = Settings.from_context(context, environ={"CDK_CONTEXT_JSON": json.dumps(raw)})
    assert from_env.studio.cleanup_reserved_concurrency is None
    overflow = tmp_path / "context.json"
    overflow.write_text(json.dumps(raw))
    from_file = Settings.from_context(
        context,
        environ={"CDK_CONTEXT_JSON": "{}", "CONTEXT_OVERFLOW_LOCATION_ENV": str(overflow)},
    )
    assert from_file.studio.cleanup_reserved_concurrency is None
    other = json.loads(json.dumps(raw))
    other["environments"]["staging"]["log_retention_days"] = 7
    unrelated = Settings.from_context(context, environ={"CDK_CONTEXT_JSON": json.dumps(other)})
    assert unrelated.studio.cleanup_reserved_concurrency == 1
    assert unrelated.log_retention_days == 30
