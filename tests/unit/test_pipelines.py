"""Fine-grained assertions on the pipelines stack, and every job request against botocore's shapes."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

import botocore.session
import pytest
from botocore.validate import ParamValidator

from mlops_cdk.constructs.pipeline_definition import Parameter, PipelineDefinition, Step
from mlops_cdk.stacks.pipelines import PipelinesStack
from tests.conftest import app_key, synthesized, with_app
from tests.synth import SynthesizedApp
from tools.cdk_json import ENVIRONMENTS

SAGEMAKER = botocore.session.get_session().get_service_model("sagemaker")
OPERATION = {
    "Training": "CreateTrainingJob",
    "Processing": "CreateProcessingJob",
    "Tuning": "CreateHyperParameterTuningJob",
}
JOB_NAME = {
    "Training": "TrainingJobName",
    "Processing": "ProcessingJobName",
    "Tuning": "HyperParameterTuningJobName",
}
PARAMETER_SHAPE_TYPES = {
    "String": {"string"},
    "Integer": {"integer", "long"},
    "Float": {"float", "double"},
    "Boolean": {"boolean"},
}
PLACEHOLDER = {"string": "placeholder", "integer": 1, "long": 1, "float": 0.5, "double": 0.5,
               "boolean": True}  # fmt: skip
TOKEN = re.compile(r"\$\{Token\[[^\]]+\]\}")


# A launcher-enabled environment with most options switched on, synthesized once.
FULL_OPTIONS = {
    "pipelines.launcher": "lambda",
    "pipelines.vpc": "true",
    "pipelines.alarm_email": "ml-team@example.com",
    "pipelines.training.spot": "true",
    "pipelines.training.max_wait_minutes": "60",
    "pipelines.training.profiler.enabled": "true",
    "pipelines.training.debugger.enabled": "true",
    "pipelines.training.debugger.collections": '["metrics"]',
    "pipelines.training.hyperparameters": '{"n_estimators": 200, "max_features": "log2"}',
    "pipelines.training.environment": '{"LOG_LEVEL": "debug"}',
    "pipelines.training.extra_channels": '[{"name": "extra", "prefix": "iris/extra/"}]',
    "pipelines.schedules.training.enabled": "true",
    "pipelines.schedules.training.time_zone": "Europe/Berlin",
    "pipelines.schedules.inference.enabled": "true",
}


@pytest.fixture(scope="module")
def full() -> SynthesizedApp:
    return synthesized("staging", **FULL_OPTIONS)


def _stack(app: SynthesizedApp) -> PipelinesStack:
    assert app.platform.pipelines is not None
    return app.platform.pipelines


def _resources(app: SynthesizedApp, resource_type: str) -> dict[str, Any]:
    return dict(app.template("pipelines").find_resources(resource_type))


def _statements(app: SynthesizedApp, role_prefix: str) -> list[dict[str, Any]]:
    template = app.template_json("pipelines")["Resources"]
    (role_id,) = [
        k
        for k, v in template.items()
        if v["Type"] == "AWS::IAM::Role" and k.startswith(role_prefix)
    ]
    return [
        statement
        for resource in template.values()
        if resource["Type"] == "AWS::IAM::Policy"
        and {"Ref": role_id} in resource["Properties"]["Roles"]
        for statement in resource["Properties"]["PolicyDocument"]["Statement"]
    ]


# --- botocore shapes -----------------------------------------------------------------------------


def _is_reference(value: Any) -> bool:
    return isinstance(value, Mapping) and set(value) in ({"Get"}, {"Std:Join"})


def _substitute(value: Any, shape: Any, parameters: Mapping[str, Parameter], path: str) -> Any:
    """Pipeline references -> placeholders of the shape's type (checking the parameter's type)."""
    if _is_reference(value):
        assert shape.type_name in PLACEHOLDER, f"{path}: reference where a {shape.type_name} goes"
        if "Get" in value and value["Get"].startswith("Parameters."):
            parameter = parameters[value["Get"].removeprefix("Parameters.")]
            assert shape.type_name in PARAMETER_SHAPE_TYPES[parameter.type], (
                f"{path}: parameter {parameter.name} is {parameter.type}, "
                f"the API wants {shape.type_name}"
            )
        if "Std:Join" in value:
            assert shape.type_name == "string", f"{path}: Std:Join yields a string"
        return PLACEHOLDER[shape.type_name]
    if shape.type_name == "structure" and isinstance(value, Mapping):
        return {
            k: _substitute(v, shape.members[k], parameters, f"{path}.{k}")
            if k in shape.members
            else v
            for k, v in value.items()
        }
    if shape.type_name == "list" and isinstance(value, list):
        return [
            _substitute(v, shape.member, parameters, f"{path}[{i}]") for i, v in enumerate(value)
        ]
    if shape.type_name == "map" and isinstance(value, Mapping):
        return {k: _substitute(v, shape.value, parameters, f"{path}.{k}") for k, v in value.items()}
    return value


def _strict_problems(value: Any, shape: Any, path: str = "") -> Iterator[str]:  # noqa: PLR0912
    """What ParamValidator leaves out: maximum lengths/values and string patterns."""
    meta = shape.metadata
    if shape.type_name == "structure" and isinstance(value, Mapping):
        for k, v in value.items():
            if k in shape.members:  # unknown keys are ParamValidator's finding
                yield from _strict_problems(v, shape.members[k], f"{path}.{k}")
    elif shape.type_name == "list" and isinstance(value, list):
        if "max" in meta and len(value) > meta["max"]:
            yield f"{path}: {len(value)} items > {meta['max']}"
        for i, v in enumerate(value):
            yield from _strict_problems(v, shape.member, f"{path}[{i}]")
    elif shape.type_name == "map" and isinstance(value, Mapping):
        if "max" in meta and len(value) > meta["max"]:
            yield f"{path}: {len(value)} entries > {meta['max']}"
        for k, v in value.items():
            yield from _strict_problems(k, shape.key, f"{path} key")
            yield from _strict_problems(v, shape.value, f"{path}.{k}")
    elif shape.type_name == "string" and isinstance(value, str):
        if TOKEN.search(value) or value == PLACEHOLDER["string"]:
            return  # deploy-time values: their type is checked, their text is AWS's own
        if "max" in meta and len(value) > meta["max"]:
            yield f"{path}: {len(value)} characters > {meta['max']}"
        if "pattern" in meta and not re.fullmatch(meta["pattern"], value, re.DOTALL):
            yield f"{path}: {value!r} does not match {meta['pattern']}"
        if shape.enum and value not in shape.enum:
            yield f"{path}: {value!r} is not one of {shape.enum}"
    elif (
        shape.type_name in {"integer", "long"}
        and isinstance(value, int)
        and value > meta.get("max", value)
    ):
        yield f"{path}: {value} > {meta['max']}"


def _validate(step_type: str, arguments: Mapping[str, Any], parameters: tuple[Parameter, ...]):  # type: ignore[no-untyped-def]
    shape = SAGEMAKER.operation_model(OPERATION[step_type]).input_shape
    request = {JOB_NAME[step_type]: "placeholder-job", **arguments}
    request = _substitute(request, shape, {p.name: p for p in parameters}, "")
    report = ParamValidator().validate(request, shape)
    strict = list(_strict_problems(request, shape))
    return report.generate_report(), strict


def _launcher_request(app: SynthesizedApp) -> dict[str, Any]:
    """What the Lambda launcher submits: the deployed training step at its defaults."""
    import launcher  # noqa: PLC0415 -- lambda/launcher is on the test path

    definition = json.loads(json.dumps(_stack(app).training.definition.to_dict()))
    return launcher.training_request(definition, "Train")


def _definitions(app: SynthesizedApp) -> list[PipelineDefinition]:
    stack = _stack(app)
    return [stack.training.definition, stack.inference.definition]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_step_validates_against_the_sagemaker_api(env: str) -> None:
    for definition in _definitions(synthesized(env)):
        for step in definition.job_steps():
            report, strict = _validate(step.type, step.arguments, definition.parameters)
            assert report == "", f"{env} {step.name}: {report}"
            assert strict == [], f"{env} {step.name}"


def test_every_option_still_validates_against_the_sagemaker_api(full: SynthesizedApp) -> None:
    for definition in _definitions(full):
        for step in definition.job_steps():
            report, strict = _validate(step.type, step.arguments, definition.parameters)
            assert report == "", f"{step.name}: {report}"
            assert strict == [], step.name
    report, strict = _validate("Training", _launcher_request(full), ())
    assert (report, strict) == ("", [])


# Tuning and sharded inference, with the options a tuning job's definition carries (spot with
# checkpoints, VPC, an extra channel, a hand-written range), synthesized once.
SCALED_OPTIONS = {
    "pipelines.vpc": "true",
    "pipelines.training.strategy": "tuning",
    "pipelines.training.spot": "true",
    "pipelines.training.max_wait_minutes": "60",
    "pipelines.training.tuning.strategy": "Random",
    "pipelines.training.tuning.ranges": '{"n_estimators": {"min": 10, "max": 50}, '
    '"criterion": ["gini", "log_loss"]}',
    "pipelines.training.environment": '{"LOG_LEVEL": "debug"}',
    "pipelines.training.extra_channels": '[{"name": "extra", "prefix": "iris/extra/"}]',
    "pipelines.inference.instance_count": "3",
}


@pytest.fixture(scope="module")
def scaled() -> SynthesizedApp:
    return synthesized("staging", **SCALED_OPTIONS)


def test_tuning_and_sharded_steps_validate_against_the_sagemaker_api(
    scaled: SynthesizedApp,
) -> None:
    types = []
    for definition in _definitions(scaled):
        for step in definition.job_steps():
            types.append((step.name, step.type))
            report, strict = _validate(step.type, step.arguments, definition.parameters)
            assert report == "", f"{step.name}: {report}"
            assert strict == [], step.name
    assert ("Tuning", "Tuning") in types and ("RegisterBest", "Processing") in types
    assert ("Score", "Processing") in types and ("Commit", "Processing") in types


def test_the_shape_check_catches_a_wrong_tuning_argument(scaled: SynthesizedApp) -> None:
    # A tuning job's training job definition has no ProfilerConfig (CreateTrainingJob has), and
    # its ranges' bounds are strings: both must fail the check above.
    arguments = json.loads(json.dumps(_stack(scaled).training.arguments))
    arguments["TrainingJobDefinition"]["ProfilerConfig"] = {"DisableProfiler": True}
    ranges = arguments["HyperParameterTuningJobConfig"]["ParameterRanges"]
    ranges["IntegerParameterRanges"][0]["MinValue"] = 10
    report, _ = _validate("Tuning", arguments, _stack(scaled).training.definition.parameters)
    assert "Unknown parameter in TrainingJobDefinition" in report and "ProfilerConfig" in report
    assert "MinValue" in report


def test_the_shape_check_catches_a_wrong_argument() -> None:
    # The check above must be able to fail: a parameter of the wrong type and an unknown key.
    count = Parameter("Count", "String", "1")
    arguments = {"ResourceConfig": {"InstanceCount": count.ref, "VolumeSizeInGB": 1}}
    with pytest.raises(AssertionError, match="parameter Count is String"):
        _validate("Training", arguments, (count,))
    report, _ = _validate("Training", {"NoSuchArgument": 1}, ())
    assert "Unknown parameter" in report and "NoSuchArgument" in report
    _, strict = _validate("Training", {"RoleArn": "not-an-arn"}, ())
    assert any("RoleArn" in problem for problem in strict)


def test_definition_body_is_json_with_every_parameter_declared(staging: SynthesizedApp) -> None:
    for definition in _definitions(staging):
        body = definition.to_dict()
        assert body["Version"] == "2020-12-01"
        json.dumps(body)  # plain JSON (tokens are strings until CloudFormation renders them)
        declared = {p["Name"] for p in body["Parameters"]}
        used = set(re.findall(r'"Parameters\.(\w+)"', json.dumps(body["Steps"])))
        assert used <= declared and used


def test_builder_rejects_unknown_references_and_duplicates() -> None:
    step = Step("S", "Training", {"RoleArn": {"Get": "Parameters.Missing"}})
    with pytest.raises(ValueError, match=r"unknown 'Parameters\.Missing'"):
        PipelineDefinition(parameters=(), steps=(step,))
    with pytest.raises(ValueError, match="duplicate pipeline parameter"):
        PipelineDefinition(
            parameters=(Parameter("A", "String", "x"), Parameter("A", "String", "y")), steps=()
        )
    with pytest.raises(TypeError, match="is not Integer"):
        Parameter("N", "Integer", "1")


# --- what the pipelines run -----------------------------------------------------------------------


def test_training_step_runs_the_spec(dev: SynthesizedApp) -> None:
    stack = _stack(dev)
    parameters = {p.name: p for p in stack.training.definition.parameters}
    arguments = stack.training.arguments
    assert parameters["TrainingInstanceType"].default == "ml.m5.large"
    assert arguments["ResourceConfig"]["InstanceType"] == {"Get": "Parameters.TrainingInstanceType"}
    assert arguments["StoppingCondition"] == {"MaxRuntimeInSeconds": 30 * 60}
    assert str(parameters["TrainingDataUri"].default).endswith("/iris/training/")
    assert str(parameters["ModelOutputUri"].default).endswith("/iris/models/")
    (channel,) = arguments["InputDataConfig"]
    assert channel["ChannelName"] == "train"  # iris_training reads the train channel
    assert channel["DataSource"]["S3DataSource"]["S3Uri"] == {"Get": "Parameters.TrainingDataUri"}
    environment = arguments["Environment"]
    assert environment["MLFLOW_TRACKING_URI"] == dev.platform.tracking.backend.tracking_uri
    assert environment["PIPELINE_EXECUTION_ID"] == {"Get": "Execution.PipelineExecutionId"}
    assert arguments["HyperParameters"]["min_accuracy"] == {
        "Std:Join": {"On": "", "Values": [{"Get": "Parameters.MinAccuracy"}]}
    }
    assert arguments["EnableNetworkIsolation"] is False
    assert arguments["ProfilerConfig"] == {"DisableProfiler": True}


def test_inference_step_runs_the_spec(dev: SynthesizedApp) -> None:
    stack = _stack(dev)
    parameters = {p.name: p for p in stack.inference.definition.parameters}
    arguments = stack.inference.arguments
    assert arguments["StoppingCondition"] == {"MaxRuntimeInSeconds": 20 * 60}
    assert str(parameters["InputDataUri"].default).endswith("/iris/inference-input/")
    assert str(parameters["OutputDataUri"].default).endswith("/iris/inference-output/")
    (source,) = arguments["ProcessingInputs"]
    assert source["S3Input"]["LocalPath"] == "/opt/ml/processing/input"
    # One instance publishes the partition itself, manifest last: no end-of-job upload.
    assert "ProcessingOutputConfig" not in arguments
    assert arguments["Environment"]["OUTPUT_URI"] == {"Get": "Parameters.OutputDataUri"}
    assert arguments["Environment"]["MODEL_ALIAS"] == {"Get": "Parameters.ModelAlias"}
    assert parameters["ModelAlias"].default == "production"


def test_job_settings_match_what_the_containers_read(full: SynthesizedApp) -> None:
    from iris_inference.settings import OPTIONS  # noqa: PLC0415
    from iris_training.hyperparameters import parse_hyperparameters  # noqa: PLC0415
    from iris_training.settings import ENVIRONMENT  # noqa: PLC0415

    stack = _stack(full)
    request = _launcher_request(full)
    parsed = parse_hyperparameters(request["HyperParameters"])  # raises on an unknown name
    assert parsed.n_estimators == 200 and parsed.min_accuracy == 0.85
    ours = set(stack.training.arguments["Environment"]) - {"LOG_LEVEL"}
    assert ours <= set(ENVIRONMENT)
    inference_env = set(stack.inference.arguments["Environment"]) - {"MLFLOW_TRACKING_URI"}
    assert inference_env <= {option.env for option in OPTIONS.values()}


def test_pipelines_are_named_for_users_and_run_as_their_own_role(dev: SynthesizedApp) -> None:
    pipelines = _resources(dev, "AWS::SageMaker::Pipeline")
    names = sorted(p["Properties"]["PipelineName"] for p in pipelines.values())
    assert names == ["mlops-dev-inference", "mlops-dev-training"]
    for pipeline in pipelines.values():
        assert pipeline["Properties"]["RoleArn"]["Fn::GetAtt"][0].startswith("RolesOrchestration")


def test_pipeline_role_starts_only_pipeline_jobs_and_passes_only_the_job_role(
    dev: SynthesizedApp,
) -> None:
    statements = _statements(dev, "RolesOrchestration")
    passes = [s for s in statements if s["Action"] == "iam:PassRole"]
    assert passes == [
        {
            "Action": "iam:PassRole",
            "Condition": {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
            "Effect": "Allow",
            "Resource": {"Fn::GetAtt": [passes[0]["Resource"]["Fn::GetAtt"][0], "Arn"]},
        }
    ]
    assert passes[0]["Resource"]["Fn::GetAtt"][0].startswith("RolesExecution")
    (jobs,) = [s for s in statements if "sagemaker:CreateTrainingJob" in s["Action"]]
    rendered = json.dumps(jobs["Resource"])
    assert "training-job/pipelines-*" in rendered and "processing-job/pipelines-*" in rendered


def test_job_role_reaches_only_its_data_prefixes(dev: SynthesizedApp) -> None:
    rendered = json.dumps(_statements(dev, "RolesExecution"))
    for prefix in ("iris/training/*", "iris/models/*", "iris/inference-input/*",
                   "iris/inference-output/*", "mlflow/*"):  # fmt: skip
        assert f"/{prefix}" in rendered
    # dev tracks with an MLflow App: the plugin signs its calls as sagemaker:CallMlflowAppApi
    # (grant_use of the tracking backend); sagemaker-mlflow:* is the tracking server's.
    assert "sagemaker:CallMlflowAppApi" in rendered
    assert "sagemaker-mlflow:*" not in rendered
    assert "ecr:BatchGetImage" in rendered
    assert "s3:PutObject" in rendered  # models and inference output are written
    writes = [
        s for s in _statements(dev, "RolesExecution") if "s3:PutObject" in json.dumps(s["Action"])
    ]
    written = json.dumps([s["Resource"] for s in writes])
    assert "iris/training/" not in written and "iris/inference-input/" not in written


# --- schedules --------------------------------------------------------------------------------


def test_dev_has_no_schedules(dev: SynthesizedApp) -> None:
    assert _resources(dev, "AWS::Scheduler::Schedule") == {}
    assert _resources(dev, "AWS::SQS::Queue") == {}


@pytest.mark.parametrize("env", ["staging", "prod"])
def test_staging_and_prod_schedule_both_pipelines(env: str) -> None:
    app = synthesized(env)
    schedules = {
        s["Properties"]["ScheduleExpression"]: s["Properties"]
        for s in _resources(app, "AWS::Scheduler::Schedule").values()
    }
    assert set(schedules) == {"cron(0 2 ? * SUN *)", "cron(0 6 * * ? *)"}
    for name, cron in (("training", "cron(0 2 ? * SUN *)"), ("inference", "cron(0 6 * * ? *)")):
        schedule = schedules[cron]
        assert schedule["ScheduleExpressionTimezone"] == "UTC"
        assert schedule["State"] == "ENABLED"
        assert schedule["Target"]["RetryPolicy"] == {
            "MaximumEventAgeInSeconds": 3600,
            "MaximumRetryAttempts": 3,
        }
        assert "DeadLetterConfig" in schedule["Target"]
        target = json.dumps(schedule["Target"]["Arn"])
        assert ":pipeline/" in target and name.capitalize() in target
    (queue,) = _resources(app, "AWS::SQS::Queue").values()
    # Encrypted with the environment's key (storage stack), which the scheduler role may use.
    assert "Fn::ImportValue" in queue["Properties"]["KmsMasterKeyId"]
    (policy,) = _resources(app, "AWS::SQS::QueuePolicy").values()
    assert '"aws:SecureTransport": "false"' in json.dumps(policy)


def test_scheduler_role_may_start_exactly_these_pipelines(staging: SynthesizedApp) -> None:
    statements = _statements(staging, "SchedulesRole")
    actions = sorted(
        a
        for s in statements
        for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    )
    # The queue's own grant_send_messages: sqs:SendMessage, the attributes a sender reads, and
    # the queue's key (the scheduler targets' grant gives sqs:SendMessage only).
    assert actions == [
        "kms:Decrypt",
        "kms:Encrypt",
        "kms:GenerateDataKey*",
        "kms:ReEncrypt*",
        "sagemaker:StartPipelineExecution",
        "sqs:GetQueueAttributes",
        "sqs:GetQueueUrl",
        "sqs:SendMessage",
    ]
    (start,) = [s for s in statements if s["Action"] == "sagemaker:StartPipelineExecution"]
    pipelines = sorted(
        part["Ref"]
        for arn in start["Resource"]
        for part in arn["Fn::Join"][1]
        if isinstance(part, dict) and not part.get("Ref", "AWS::").startswith("AWS::")
    )
    assert len(pipelines) == 2
    assert pipelines[0].startswith("InferencePipeline")
    assert pipelines[1].startswith("TrainingPipeline")
    (role,) = [
        r for k, r in _resources(staging, "AWS::IAM::Role").items() if k.startswith("SchedulesRole")
    ]
    trust = role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}


def test_schedule_time_zone_comes_from_config(full: SynthesizedApp) -> None:
    zones = {
        s["Properties"]["ScheduleExpression"]: s["Properties"]["ScheduleExpressionTimezone"]
        for s in _resources(full, "AWS::Scheduler::Schedule").values()
    }
    assert zones == {"cron(0 2 ? * SUN *)": "Europe/Berlin", "cron(0 6 * * ? *)": "UTC"}


# --- the Lambda launcher ----------------------------------------------------------------------


def test_launcher_schedule_invokes_the_function_with_the_scheduled_time(
    full: SynthesizedApp,
) -> None:
    (function_id,) = _resources(full, "AWS::Lambda::Function")
    (training,) = [
        s["Properties"]
        for s in _resources(full, "AWS::Scheduler::Schedule").values()
        if s["Properties"]["ScheduleExpression"] == "cron(0 2 ? * SUN *)"
    ]
    assert training["Target"]["Arn"] == {"Fn::GetAtt": [function_id, "Arn"]}
    assert json.loads(training["Target"]["Input"])["scheduled_time"] == (
        "<aws.scheduler.scheduled-time>"
    )


def test_launcher_function_settings_and_log_group(full: SynthesizedApp) -> None:
    (function,) = _resources(full, "AWS::Lambda::Function").values()
    props = function["Properties"]
    assert props["Runtime"] == "python3.14"
    assert props["Handler"] == "launcher.handler"
    assert props["Timeout"] == 30
    variables = props["Environment"]["Variables"]
    assert variables["JOB_NAME_PREFIX"] == "mlops-staging-train"
    assert variables["PIPELINE_NAME"]["Ref"].startswith("TrainingPipeline")
    assert variables["STEP_NAME"] == "Train"
    (log_group_id, log_group), *_ = [
        (k, r)
        for k, r in _resources(full, "AWS::Logs::LogGroup").items()
        if k.startswith("LauncherLogGroup")
    ]
    assert log_group["Properties"]["RetentionInDays"] == 30
    assert props["LoggingConfig"]["LogGroup"] == {"Ref": log_group_id}


def test_launcher_role_starts_only_its_named_jobs(full: SynthesizedApp) -> None:
    statements = _statements(full, "LauncherRole")
    (jobs,) = [s for s in statements if "sagemaker:CreateTrainingJob" in s["Action"]]
    assert "training-job/mlops-staging-train-*" in json.dumps(jobs["Resource"])
    assert "sagemaker:CreateProcessingJob" not in jobs["Action"]
    (describe,) = [s for s in statements if s["Action"] == "sagemaker:DescribePipeline"]
    assert ":pipeline/" in json.dumps(describe["Resource"])


def test_launcher_job_is_the_pipeline_step_at_its_defaults(full: SynthesizedApp) -> None:
    request = _launcher_request(full)
    assert request["ResourceConfig"]["InstanceType"] == "ml.m5.large"
    assert request["HyperParameters"]["min_accuracy"] == "0.85"
    assert "PIPELINE_EXECUTION_ID" not in request["Environment"]
    assert request["EnableManagedSpotTraining"] is True
    assert request["StoppingCondition"] == {
        "MaxRuntimeInSeconds": 1800,
        "MaxWaitTimeInSeconds": 3600,
    }
    assert request["CheckpointConfig"]["S3Uri"].endswith("/iris/checkpoints/")
    assert {c["ChannelName"] for c in request["InputDataConfig"]} == {"train", "extra"}
    assert set(request["VpcConfig"]) == {"SecurityGroupIds", "Subnets"}


# --- operations -------------------------------------------------------------------------------


def test_failed_or_stopped_executions_notify_the_encrypted_topic(dev: SynthesizedApp) -> None:
    (rule,) = _resources(dev, "AWS::Events::Rule").values()
    pattern = rule["Properties"]["EventPattern"]
    assert pattern["detail-type"] == ["SageMaker Model Building Pipeline Execution Status Change"]
    assert pattern["detail"]["currentPipelineExecutionStatus"] == ["Failed", "Stopped"]
    assert len(pattern["detail"]["pipelineArn"]) == 2
    ((topic_id, topic),) = _resources(dev, "AWS::SNS::Topic").items()
    assert rule["Properties"]["Targets"][0]["Arn"] == {"Ref": topic_id}
    assert topic["Properties"]["KmsMasterKeyId"]["Fn::GetAtt"][0].startswith("AlarmsKey")
    (key,) = _resources(dev, "AWS::KMS::Key").values()
    principals = json.dumps(key["Properties"]["KeyPolicy"])
    assert "events.amazonaws.com" in principals and "cloudwatch.amazonaws.com" in principals


def test_dead_letters_and_launcher_errors_raise_alarms(full: SynthesizedApp) -> None:
    alarms = _resources(full, "AWS::CloudWatch::Alarm")
    metrics = sorted(a["Properties"]["MetricName"] for a in alarms.values())
    # The schedules' DLQ, the launcher's DLQ (failed asynchronous invocations), its errors, and
    # the DLQs of CDK's own custom-resource handlers in the storage and network stacks.
    assert metrics == ["ApproximateNumberOfMessagesVisible"] * 4 + ["Errors"]
    assert {"AlarmsStorageCdkHandlersDeadLetters", "AlarmsNetworkCdkHandlersDeadLetters"} <= {
        logical_id[: -len("0123ABCD")] for logical_id in alarms
    }
    for alarm in alarms.values():
        assert alarm["Properties"]["AlarmActions"][0]["Ref"].startswith("AlarmsTopic")
    (subscription,) = _resources(full, "AWS::SNS::Subscription").values()
    assert subscription["Properties"]["Endpoint"] == "ml-team@example.com"
    rules = _resources(full, "AWS::Events::Rule").values()
    job_rules = [r for r in rules if "TrainingJobName" in json.dumps(r)]
    (job_rule,) = job_rules
    assert job_rule["Properties"]["EventPattern"]["detail"]["TrainingJobName"] == [
        {"prefix": "mlops-staging-train-"}
    ]


def test_outputs_name_pipelines_roles_schedules_and_launcher(full: SynthesizedApp) -> None:
    outputs = set(full.template_json("pipelines")["Outputs"])
    expected = {
        "TrainingPipelineName", "TrainingPipelineArn", "InferencePipelineName",
        "InferencePipelineArn", "ExecutionRoleArn", "PipelineRoleArn", "SchedulerRoleArn",
        "TrainingScheduleArn", "InferenceScheduleArn", "LauncherFunctionArn", "LauncherRoleArn",
        "AlarmTopicArn",
    }  # fmt: skip
    assert expected <= outputs


# --- network ----------------------------------------------------------------------------------


def test_jobs_run_in_the_private_subnets_and_reach_a_self_hosted_mlflow(
    prod: SynthesizedApp,
) -> None:
    stack = _stack(prod)
    assert stack.job_security_group is not None
    vpc_config = stack.training.arguments["VpcConfig"]
    assert len(vpc_config["Subnets"]) == 2
    assert stack.inference.arguments["NetworkConfig"]["VpcConfig"] == vpc_config
    ingress = [
        r["Properties"]
        for r in _resources(prod, "AWS::EC2::SecurityGroupIngress").values()
        if "tracking" in json.dumps(r["Properties"]["GroupId"])
    ]
    (rule,) = ingress  # into the MLflow load balancer, from the job security group
    assert rule["SourceSecurityGroupId"]["Fn::GetAtt"][0].startswith("JobSecurityGroup")


def test_jobs_outside_a_vpc_have_no_vpc_config(dev: SynthesizedApp) -> None:
    stack = _stack(dev)
    assert stack.job_security_group is None
    assert "VpcConfig" not in stack.training.arguments
    assert "VpcConfig" not in stack.inference.arguments["NetworkConfig"]


# --- MLflow credentials -----------------------------------------------------------------------

# Each tracking mode in an environment whose synth other tests share (tests/test_tracking_modes).
MODE_APPS = {
    "serverless": ("dev", {}),
    "managed": ("staging", {"tracking.mode": "managed"}),
    "fargate": ("prod", {}),
    "ec2": ("prod", {"tracking.mode": "ec2"}),
}


@pytest.mark.parametrize(
    "mode",
    [pytest.param(mode, marks=with_app(app_key(env, **o))) for mode, (env, o) in MODE_APPS.items()],
)
def test_jobs_get_the_mlflow_credentials_secret_only_from_a_self_hosted_server(mode: str) -> None:
    # Both images read it with the one shared module (containers/shared/mlops_runtime).
    from mlops_runtime.mlflow_auth import SECRET_ARN_ENV  # noqa: PLC0415

    env, overrides = MODE_APPS[mode]
    app = synthesized(env, **overrides)
    stack = _stack(app)
    assert app.settings.tracking.mode == mode
    environments = {
        "training": stack.training.arguments["Environment"],
        "inference": stack.inference.arguments["Environment"],
        "launcher": _launcher_request(app)["Environment"],
    }
    reads_secret = [
        s
        for s in _statements(app, "RolesExecution")
        if "secretsmanager:GetSecretValue" in s["Action"]
    ]
    if mode in ("serverless", "managed"):  # SigV4: no secret anywhere
        assert all(SECRET_ARN_ENV not in e for e in environments.values())
        assert reads_secret == []
        return
    assert SECRET_ARN_ENV == "MLFLOW_CREDENTIALS_SECRET_ARN"
    secret = stack.resolve(environments["training"][SECRET_ARN_ENV])
    assert "ClientSecret" in json.dumps(secret)  # the tracking stack's client user, by reference
    assert stack.resolve(environments["inference"][SECRET_ARN_ENV]) == secret
    assert stack.resolve(environments["launcher"][SECRET_ARN_ENV]) == secret
    (statement,) = reads_secret  # the job role may read exactly that secret
    assert statement["Resource"] == secret


def test_tuning_step_runs_the_contract_and_only_register_best_registers(
    scaled: SynthesizedApp,
) -> None:
    from mlops_cdk.contracts import TUNING  # noqa: PLC0415

    training = _stack(scaled).training
    config = training.arguments["HyperParameterTuningJobConfig"]
    assert config["Strategy"] == "Random"
    assert config["HyperParameterTuningJobObjective"] == {
        "Type": TUNING.OBJECTIVE_TYPE,
        "MetricName": TUNING.OBJECTIVE_METRIC,
    }
    assert config["ResourceLimits"] == {"MaxNumberOfTrainingJobs": 8, "MaxParallelTrainingJobs": 2}
    ranges = config["ParameterRanges"]
    assert ranges["IntegerParameterRanges"] == [
        {"Name": "n_estimators", "MinValue": "10", "MaxValue": "50", "ScalingType": "Auto"}
    ]
    assert ranges["CategoricalParameterRanges"] == [
        {"Name": "criterion", "Values": ["gini", "log_loss"]}
    ]
    definition = training.arguments["TrainingJobDefinition"]
    assert definition["AlgorithmSpecification"]["MetricDefinitions"] == [
        {"Name": TUNING.OBJECTIVE_METRIC, "Regex": TUNING.OBJECTIVE_REGEX}
    ]
    assert definition["StaticHyperParameters"] == {TUNING.REGISTER_HYPERPARAMETER: "false"}
    assert definition["ResourceConfig"]["InstanceCount"] == 1
    assert "VpcConfig" in definition and definition["EnableManagedSpotTraining"] is True
    # The container's own regex finds the value in the line it prints.
    found = re.search(TUNING.OBJECTIVE_REGEX, f"{TUNING.OBJECTIVE_METRIC}=0.9667")
    assert found is not None and found.group(1) == "0.9667"
    register = training.register_arguments
    app = register["AppSpecification"]
    assert app["ContainerEntrypoint"] == list(TUNING.REGISTER_BEST_ENTRYPOINT)
    assert app["ContainerArguments"] == [
        "--training-job-name",
        {"Get": "Steps.Tuning.BestTrainingJob.TrainingJobName"},
        "--min-accuracy",
        {"Std:Join": {"On": "", "Values": [{"Get": "Parameters.MinAccuracy"}]}},
    ]
    (data,) = register["ProcessingInputs"]
    assert data["S3Input"]["LocalPath"] == TUNING.REGISTER_DATA_DIR
    assert data["S3Input"]["S3Uri"] == {"Get": "Parameters.TrainingDataUri"}
    assert (
        register["Environment"]["MLFLOW_TRACKING_URI"]
        == (definition["Environment"]["MLFLOW_TRACKING_URI"])
    )
    assert register["NetworkConfig"]["VpcConfig"] == definition["VpcConfig"]
    names = {p.name for p in training.definition.parameters}
    assert "TrainingInstanceCount" not in names  # each tuning job trains on one instance


def test_sharded_score_and_commit_follow_the_shard_contract(scaled: SynthesizedApp) -> None:
    from mlops_cdk.contracts import SHARD  # noqa: PLC0415

    inference = _stack(scaled).inference
    score, commit = inference.arguments, inference.commit_arguments
    assert score["ProcessingResources"]["ClusterConfig"]["InstanceCount"] == 3
    (data,) = score["ProcessingInputs"]
    assert data["S3Input"]["S3DataDistributionType"] == "ShardedByS3Key"
    assert score["Environment"][SHARD.SHARDED_ENV] == "1"
    staging = {
        "Std:Join": {
            "On": "",
            "Values": [
                {"Get": "Parameters.OutputDataUri"},
                f"{SHARD.STAGING_PREFIX}/",
                {"Get": "Execution.PipelineExecutionId"},
                "/",
            ],
        }
    }
    (shard,) = score["ProcessingOutputConfig"]["Outputs"]
    assert shard["S3Output"]["LocalPath"] == SHARD.STAGING_DIR
    assert shard["S3Output"]["S3Uri"] == staging
    assert commit["ProcessingResources"]["ClusterConfig"]["InstanceCount"] == 1
    assert commit["AppSpecification"]["ContainerEntrypoint"] == list(SHARD.COMMIT_ENTRYPOINT)
    assert commit["AppSpecification"]["ContainerArguments"] == [
        "--expected-shards",
        "3",
        "--output-uri",
        {"Get": "Parameters.OutputDataUri"},
    ]
    (staged,) = commit["ProcessingInputs"]
    assert staged["S3Input"]["LocalPath"] == SHARD.COMMIT_INPUT_DIR
    assert staged["S3Input"]["S3Uri"] == staging
    assert SHARD.SHARDED_ENV not in commit["Environment"]
    steps = {s.name: s for s in inference.definition.job_steps()}
    assert steps["Commit"].depends_on == ("Score",)


def test_one_inference_instance_keeps_the_single_writer(dev: SynthesizedApp) -> None:
    inference = _stack(dev).inference
    assert [s.name for s in inference.definition.job_steps()] == ["Preflight", "Score"]
    (data,) = inference.arguments["ProcessingInputs"]
    assert data["S3Input"]["S3DataDistributionType"] == "FullyReplicated"
    assert inference.arguments["ProcessingResources"]["ClusterConfig"]["InstanceCount"] == 1


def _container_knows_register() -> bool:
    from iris_training.errors import UserError  # noqa: PLC0415
    from iris_training.hyperparameters import parse_hyperparameters  # noqa: PLC0415

    from mlops_cdk.contracts import TUNING  # noqa: PLC0415

    try:
        parse_hyperparameters({TUNING.REGISTER_HYPERPARAMETER: "false"})
    except UserError:
        return False
    return True


@pytest.mark.skipif(
    not _container_knows_register(),
    reason="the training container does not read the contract's register hyperparameter yet "
    "(helper training, issue 15)",
)
def test_every_tuning_job_gets_hyperparameters_the_container_accepts(
    scaled: SynthesizedApp,
) -> None:
    from iris_training.hyperparameters import parse_hyperparameters  # noqa: PLC0415

    config = _stack(scaled).training.arguments
    static = config["TrainingJobDefinition"]["StaticHyperParameters"]
    ranges = config["HyperParameterTuningJobConfig"]["ParameterRanges"]
    tried = [
        {r["Name"]: r[bound] for r in ranges["IntegerParameterRanges"]}
        for bound in ("MinValue", "MaxValue")
    ] + [{r["Name"]: value} for r in ranges["CategoricalParameterRanges"] for value in r["Values"]]
    for values in tried:
        parse_hyperparameters({**static, **values})  # raises on a name or value it refuses
