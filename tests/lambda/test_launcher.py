"""The training launcher: one idempotent training job per scheduled time (moto mocks SageMaker)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import boto3
import launcher
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from moto import mock_aws

ROLE = "arn:aws:iam::123456789012:role/job"
ARGUMENTS: dict[str, Any] = {
    "AlgorithmSpecification": {
        "TrainingImage": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/repo:tag",
        "TrainingInputMode": "File",
    },
    "RoleArn": ROLE,
    "OutputDataConfig": {"S3OutputPath": {"Get": "Parameters.ModelOutputUri"}},
    "ResourceConfig": {
        "InstanceType": {"Get": "Parameters.TrainingInstanceType"},
        "InstanceCount": {"Get": "Parameters.TrainingInstanceCount"},
        "VolumeSizeInGB": 30,
    },
    "StoppingCondition": {"MaxRuntimeInSeconds": 1800},
    "HyperParameters": {
        "min_accuracy": {"Std:Join": {"On": "", "Values": [{"Get": "Parameters.MinAccuracy"}]}}
    },
    "Environment": {
        "MLFLOW_TRACKING_URI": "arn:aws:sagemaker:eu-west-1:123456789012:mlflow-app/x",
        "PIPELINE_EXECUTION_ID": {"Get": "Execution.PipelineExecutionId"},
    },
}
DEFINITION: dict[str, Any] = {
    "Version": "2020-12-01",
    "Parameters": [
        {"Name": "ModelOutputUri", "Type": "String", "DefaultValue": "s3://data/iris/models/"},
        {"Name": "TrainingInstanceType", "Type": "String", "DefaultValue": "ml.m5.large"},
        {"Name": "TrainingInstanceCount", "Type": "Integer", "DefaultValue": 1},
        {"Name": "MinAccuracy", "Type": "Float", "DefaultValue": 0.85},
    ],
    "Steps": [{"Name": "Train", "Type": "Training", "Arguments": ARGUMENTS}],
}
ENVIRON = {"JOB_NAME_PREFIX": "mlops-dev-train", "PIPELINE_NAME": "mlops-dev-training",
           "STEP_NAME": "Train"}  # fmt: skip
EVENT = {"scheduled_time": "2025-01-05T02:00:00Z", "schedule_arn": "arn:aws:scheduler:::x"}


@pytest.fixture
def sagemaker() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("sagemaker", region_name="eu-west-1")
        client.create_pipeline(
            PipelineName="mlops-dev-training",
            PipelineDefinition=json.dumps(DEFINITION),
            RoleArn="arn:aws:iam::123456789012:role/pipeline",
        )
        yield client


def _stubbed(error_code: str) -> tuple[Any, Stubber]:
    client = boto3.client("sagemaker", region_name="eu-west-1")
    stub = Stubber(client)
    stub.add_response(
        "describe_pipeline",
        {"PipelineDefinition": json.dumps(DEFINITION)},
        {"PipelineName": "mlops-dev-training"},
    )
    stub.add_client_error("create_training_job", service_error_code=error_code)
    return client, stub


def test_starts_a_job_named_after_the_scheduled_time(sagemaker: Any) -> None:
    result = launcher.launch(EVENT, environ=ENVIRON, client=sagemaker)
    assert result["created"] is True
    assert result["training_job_name"] == "mlops-dev-train-202501050200"
    job = sagemaker.describe_training_job(TrainingJobName="mlops-dev-train-202501050200")
    assert job["RoleArn"] == ROLE
    # The pipeline step at its parameter defaults; no pipeline execution id.
    assert job["HyperParameters"] == {"min_accuracy": "0.85"}
    assert job["ResourceConfig"]["InstanceType"] == "ml.m5.large"
    assert job["ResourceConfig"]["InstanceCount"] == 1
    assert job["OutputDataConfig"]["S3OutputPath"] == "s3://data/iris/models/"
    environment = launcher.training_request(DEFINITION, "Train")["Environment"]
    assert environment == {
        "MLFLOW_TRACKING_URI": "arn:aws:sagemaker:eu-west-1:123456789012:mlflow-app/x"
    }


def test_a_retry_for_the_same_time_names_the_same_job(sagemaker: Any) -> None:
    # moto accepts a duplicate name silently; SageMaker answers ResourceInUse (tested below).
    first = launcher.launch(EVENT, environ=ENVIRON, client=sagemaker)
    again = launcher.launch(EVENT, environ=ENVIRON, client=sagemaker)
    assert again["training_job_name"] == first["training_job_name"]
    assert len(sagemaker.list_training_jobs()["TrainingJobSummaries"]) == 1


def test_another_scheduled_time_starts_another_job(sagemaker: Any) -> None:
    launcher.launch(EVENT, environ=ENVIRON, client=sagemaker)
    launcher.launch({"scheduled_time": "2025-01-12T02:00:00Z"}, environ=ENVIRON, client=sagemaker)
    names = {j["TrainingJobName"] for j in sagemaker.list_training_jobs()["TrainingJobSummaries"]}
    assert names == {"mlops-dev-train-202501050200", "mlops-dev-train-202501120200"}


def test_resource_in_use_from_sagemaker_counts_as_success() -> None:
    # What the real API answers for a duplicate name, whatever the mock does.
    client, stub = _stubbed("ResourceInUse")
    with stub:
        result = launcher.launch(EVENT, environ=ENVIRON, client=client)
    assert result == {"training_job_name": "mlops-dev-train-202501050200", "created": False}


def test_other_errors_propagate_so_the_invocation_fails() -> None:
    client, stub = _stubbed("ResourceLimitExceeded")
    with stub, pytest.raises(ClientError, match="ResourceLimitExceeded"):
        launcher.launch(EVENT, environ=ENVIRON, client=client)


def test_a_pipeline_without_the_step_is_reported(sagemaker: Any) -> None:
    with pytest.raises(launcher.LauncherError, match="no training step named 'Fit'"):
        launcher.launch(EVENT, environ={**ENVIRON, "STEP_NAME": "Fit"}, client=sagemaker)


def test_scheduled_time_in_another_offset_is_named_in_utc() -> None:
    when = launcher.scheduled_time({"scheduled_time": "2025-01-05T03:00:00+01:00"})
    assert launcher.job_name("p", when) == "p-202501050200"


def test_manual_invocation_without_a_time_uses_now() -> None:
    now = dt.datetime(2025, 3, 1, 12, 34, 56, tzinfo=dt.UTC)
    assert launcher.job_name("p", launcher.scheduled_time({}, now=now)) == "p-202503011234"


@pytest.mark.parametrize(
    "event, environ, message",
    [
        ({"scheduled_time": "yesterday"}, ENVIRON, "is not an ISO 8601 time"),
        (EVENT, {**ENVIRON, "JOB_NAME_PREFIX": ""}, "JOB_NAME_PREFIX is not set"),
        (EVENT, {**ENVIRON, "PIPELINE_NAME": ""}, "PIPELINE_NAME is not set"),
        (EVENT, {**ENVIRON, "JOB_NAME_PREFIX": "x" * 60}, "longer than 63"),
    ],
)
def test_unusable_input_fails_with_a_clear_message(
    event: dict[str, Any], environ: dict[str, str], message: str
) -> None:
    with pytest.raises(launcher.LauncherError, match=message):
        launcher.launch(event, environ=environ, client=None)


def test_the_request_is_tagged_with_the_scheduled_time() -> None:
    when = dt.datetime(2025, 1, 5, 2, 0, tzinfo=dt.UTC)
    template = launcher.training_request(DEFINITION, "Train")
    request = launcher.build_request(template, "n", when)
    assert request["TrainingJobName"] == "n"
    assert request["Tags"] == [{"Key": "ScheduledTime", "Value": "2025-01-05T02:00Z"}]
    assert "TrainingJobName" not in template  # the template is not modified


# --- malformed events and definitions end in one LauncherError (issue 13) --------------------


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (None, "the event is not a JSON object: None"),
        ([], "the event is not a JSON object: []"),
        ("2025-01-05T02:00:00Z", "the event is not a JSON object: '2025-01-05T02:00:00Z'"),
        (42, "the event is not a JSON object: 42"),
        ({"scheduled_time": 1736042400}, "scheduled_time=1736042400 is not an ISO 8601 string"),
        ({"scheduled_time": ["2025-01-05"]}, "is not an ISO 8601 string"),
        ({"scheduled_time": "2025-13-05T02:00:00Z"}, "is not an ISO 8601 time"),
        ({"scheduled_time": "9999-12-31T23:59:59-23:59"}, "is not a time a job can be named after"),
    ],
)
def test_a_malformed_event_is_one_launcher_error(event: Any, message: str) -> None:
    with pytest.raises(launcher.LauncherError) as caught:
        launcher.launch(event, environ=ENVIRON, client=None)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def _with_definition(definition: Any) -> tuple[Any, Stubber]:
    client = boto3.client("sagemaker", region_name="eu-west-1")
    stub = Stubber(client)
    text = definition if isinstance(definition, str) else json.dumps(definition)
    stub.add_response(
        "describe_pipeline", {"PipelineDefinition": text}, {"PipelineName": "mlops-dev-training"}
    )
    return client, stub


def _step(arguments: Any) -> dict[str, Any]:
    return {**DEFINITION, "Steps": [{"Name": "Train", "Type": "Training", "Arguments": arguments}]}


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        ("[]", "pipeline mlops-dev-training has no readable definition: not a JSON object"),
        ({"Steps": "Train"}, "pipeline mlops-dev-training definition: Steps is not a list"),
        ({"Steps": ["Train"]}, "no training step named 'Train'"),
        (
            {**DEFINITION, "Parameters": [{"Type": "String"}]},
            "pipeline mlops-dev-training definition: a parameter has no Name",
        ),
        (
            {**DEFINITION, "Parameters": "none"},
            "pipeline mlops-dev-training definition: Parameters is not a list",
        ),
        (
            _step("none"),
            "pipeline mlops-dev-training definition: step Train has no Arguments object",
        ),
        (
            _step({**ARGUMENTS, "HyperParameters": {"x": {"Std:Join": {"Values": ["a"]}}}}),
            "pipeline mlops-dev-training definition: Std:Join needs On and a list of Values",
        ),
        (
            _step({**ARGUMENTS, "Environment": ["A=1"]}),
            "pipeline mlops-dev-training definition: step Train Environment is not an object",
        ),
    ],
)
def test_a_malformed_definition_is_one_launcher_error(definition: Any, message: str) -> None:
    client, stub = _with_definition(definition)
    with stub, pytest.raises(launcher.LauncherError) as caught:
        launcher.launch(EVENT, environ=ENVIRON, client=client)
    assert message in str(caught.value)


def test_the_handler_logs_one_line_and_raises_for_a_malformed_event(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in ENVIRON.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(boto3, "client", lambda *_a, **_k: None)
    with pytest.raises(launcher.LauncherError):
        launcher.handler(["not", "an", "event"], None)
    assert [r.getMessage() for r in caplog.records] == [
        "error: the event is not a JSON object: ['not', 'an', 'event']"
    ]
