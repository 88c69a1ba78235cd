"""The pipelines' constructs in a bare stack: JobRoles, TrainingPipeline (plain and tuning, so
tuning_requests), InferencePipeline (one instance and sharded, so shard_requests),
PipelineSchedules and TrainingLauncher."""

from __future__ import annotations

import json
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Match, Template
from pydantic import BaseModel, ValidationError

from mlops_cdk import nag
from mlops_cdk.constructs.data_stores import ObjectStore
from mlops_cdk.constructs.inference_pipeline import COMMIT_STEP, SCORE_STEP, InferencePipeline
from mlops_cdk.constructs.job_requests import JobContext
from mlops_cdk.constructs.job_roles import PIPELINE_JOB_PREFIX, JobRoles
from mlops_cdk.constructs.mlflow_app import MlflowApp
from mlops_cdk.constructs.pipeline_definition import all_steps
from mlops_cdk.constructs.pipeline_schedule import PipelineSchedules
from mlops_cdk.constructs.training_launcher import TrainingLauncher
from mlops_cdk.constructs.training_pipeline import (
    REGISTER_BEST_STEP,
    TRAIN_STEP,
    TUNING_STEP,
    TrainingPipeline,
)
from mlops_cdk.contracts import SHARD, TUNING
from mlops_cdk.settings import (
    LambdaLauncherSettings,
    PipelinesSettings,
    SchedulesSettings,
    TrackingSettings,
    describe,
)
from tests.constructs.bare import actions_of, bare_stack, only, resources, vpc

ARN = "arn:aws:sagemaker:eu-west-1:111122223333"
ROLE_ARN = "arn:aws:iam::111122223333:role/jobs"
KEY_ARN = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
CONTEXT = JobContext(
    image_uri="111122223333.dkr.ecr.eu-west-1.amazonaws.com/iris:1",
    role_arn=ROLE_ARN,
    key_arn=KEY_ARN,
    tracking_environment={"MLFLOW_TRACKING_URI": f"{ARN}:mlflow-app/app-x"},
    model_name="iris-model",
    network=None,
)


def _role(stack: cdk.Stack) -> iam.Role:
    return iam.Role(
        stack, "PipelineRole", assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com")
    )


def _training_pipeline(stack: cdk.Stack, **settings: Any) -> TrainingPipeline:
    return TrainingPipeline(
        stack,
        "Training",
        name="mlops-dev-training",
        settings=PipelinesSettings.model_validate(settings),
        context=CONTEXT,
        preflight_context=CONTEXT,
        runs_uri="s3://data/pipeline-runs/",
        training_uri="s3://data/iris/training/",
        model_uri="s3://data/iris/models/",
        checkpoint_uri=None,
        extra_channel_uris={},
        role=_role(stack),
    )


def _training(**settings: Any) -> tuple[cdk.Stack, TrainingPipeline, dict[str, Any]]:
    stack = bare_stack()
    pipeline = _training_pipeline(stack, **settings)
    return stack, pipeline, _definition(stack)


def _inference(**settings: Any) -> tuple[cdk.Stack, InferencePipeline, dict[str, Any]]:
    stack = bare_stack()
    pipeline = InferencePipeline(
        stack,
        "Inference",
        name="mlops-dev-inference",
        settings=PipelinesSettings.model_validate(settings),
        context=CONTEXT,
        runs_uri="s3://data/pipeline-runs/",
        input_uri="s3://data/iris/inference-input/",
        output_uri="s3://data/iris/inference-output/",
        role=_role(stack),
    )
    return stack, pipeline, _definition(stack)


def _definition(stack: cdk.Stack) -> dict[str, Any]:
    """The one pipeline's definition, parsed: plain JSON when every input is a literal."""
    body = only(Template.from_stack(stack), "AWS::SageMaker::Pipeline")["PipelineDefinition"]
    definition: dict[str, Any] = json.loads(body["PipelineDefinitionBody"])
    return definition


def _steps(definition: dict[str, Any]) -> dict[str, Any]:
    return {step["Name"]: step for step in all_steps(definition["Steps"])}


def _parameters(definition: dict[str, Any]) -> dict[str, Any]:
    return {p["Name"]: p.get("DefaultValue") for p in definition["Parameters"]}


# --- training --------------------------------------------------------------------------------


def test_the_training_pipeline_is_named_runs_as_its_role_and_trains_after_the_preflight() -> None:
    stack, pipeline, definition = _training()
    template = Template.from_stack(stack)
    resource = next(iter(resources(template, "AWS::SageMaker::Pipeline").values()))
    assert resource["Properties"]["PipelineName"] == "mlops-dev-training"
    assert resource["Properties"]["RoleArn"]["Fn::GetAtt"][0].startswith("PipelineRole")
    assert any(d.startswith("PipelineRole") for d in resource["DependsOn"])
    assert _parameters(definition) == {
        "TrainingDataUri": "s3://data/iris/training/",
        "ModelOutputUri": "s3://data/iris/models/",
        "TrainingInstanceType": "ml.m5.large",
        "TrainingInstanceCount": 1,
        "MinAccuracy": 0.85,
    }
    steps = _steps(definition)
    assert definition["Steps"][0]["Name"] == "Preflight"
    train = steps[TRAIN_STEP]
    assert train["Type"] == "Training"
    arguments = train["Arguments"]
    assert arguments["RoleArn"] == ROLE_ARN
    assert arguments["AlgorithmSpecification"]["TrainingImage"] == CONTEXT.image_uri
    assert arguments["OutputDataConfig"]["S3OutputPath"] == {"Get": "Parameters.ModelOutputUri"}
    assert arguments["ResourceConfig"]["InstanceCount"] == {
        "Get": "Parameters.TrainingInstanceCount"
    }
    assert arguments["ResourceConfig"]["VolumeKmsKeyId"] == KEY_ARN
    # The ARN schedules and alarms use names the pipeline by a Ref: its users wait for it.
    pipeline_id = stack.get_logical_id(pipeline.resource)
    assert stack.resolve(pipeline.pipeline.pipeline_arn) == {
        "Fn::Join": ["", [f"{ARN}:pipeline/", {"Ref": pipeline_id}]]
    }


def test_tuning_strategy_tunes_on_one_instance_and_registers_only_the_best_job() -> None:
    _, _, definition = _training(training={"strategy": "tuning"})
    assert "TrainingInstanceCount" not in _parameters(definition)
    steps = _steps(definition)
    assert TRAIN_STEP not in steps
    tuning = steps[TUNING_STEP]["Arguments"]
    job = tuning["TrainingJobDefinition"]
    assert job["ResourceConfig"]["InstanceCount"] == 1
    assert job["StaticHyperParameters"][TUNING.REGISTER_HYPERPARAMETER] == "false"
    assert "min_accuracy" not in job["StaticHyperParameters"]
    assert job["AlgorithmSpecification"]["MetricDefinitions"] == [
        {"Name": TUNING.OBJECTIVE_METRIC, "Regex": TUNING.OBJECTIVE_REGEX}
    ]
    config = tuning["HyperParameterTuningJobConfig"]
    assert config["ResourceLimits"] == {"MaxNumberOfTrainingJobs": 8, "MaxParallelTrainingJobs": 2}
    assert {r["Name"] for r in config["ParameterRanges"]["IntegerParameterRanges"]} >= {
        "n_estimators",
        "max_depth",
    }
    register = steps[REGISTER_BEST_STEP]
    assert register["Type"] == "Processing"
    assert {"Get": f"Steps.{TUNING_STEP}.BestTrainingJob.TrainingJobName"} in register["Arguments"][
        "AppSpecification"
    ]["ContainerArguments"]


# --- inference -------------------------------------------------------------------------------


def test_one_inference_instance_publishes_the_partition_itself() -> None:
    _, _, definition = _inference()
    assert _parameters(definition)["ModelAlias"] == "production"
    steps = _steps(definition)
    assert COMMIT_STEP not in steps
    score = steps[SCORE_STEP]["Arguments"]
    assert score["Environment"][SHARD.OUTPUT_URI_ENV] == {"Get": "Parameters.OutputDataUri"}
    assert "ProcessingOutputConfig" not in score  # no end-of-job upload
    assert score["ProcessingInputs"][0]["S3Input"]["S3DataDistributionType"] == "FullyReplicated"


def test_sharded_inference_scores_shards_into_staging_then_commits() -> None:
    _, _, definition = _inference(inference={"instance_count": 3})
    steps = _steps(definition)
    score = steps[SCORE_STEP]["Arguments"]
    assert score["ProcessingResources"]["ClusterConfig"]["InstanceCount"] == 3
    assert score["ProcessingInputs"][0]["S3Input"]["S3DataDistributionType"] == "ShardedByS3Key"
    assert score["Environment"][SHARD.SHARDED_ENV] == "1"
    (shard,) = score["ProcessingOutputConfig"]["Outputs"]
    staging = shard["S3Output"]["S3Uri"]["Std:Join"]["Values"]
    assert staging[:3] == [
        {"Get": "Parameters.OutputDataUri"},
        f"{SHARD.STAGING_PREFIX}/",
        {"Get": "Execution.PipelineExecutionId"},
    ]
    commit = steps[COMMIT_STEP]
    assert commit["DependsOn"] == [SCORE_STEP]
    arguments = commit["Arguments"]
    assert arguments["ProcessingResources"]["ClusterConfig"]["InstanceCount"] == 1
    assert arguments["AppSpecification"]["ContainerArguments"][:2] == ["--expected-shards", "3"]
    assert SHARD.SHARDED_ENV not in arguments["Environment"]
    assert arguments["ProcessingInputs"][0]["S3Input"]["S3Uri"]["Std:Join"]["Values"] == staging


# --- job roles -------------------------------------------------------------------------------


def _job_roles(with_vpc: bool) -> tuple[cdk.Stack, JobRoles, ObjectStore]:
    stack = bare_stack()
    key = kms.Key(stack, "Key")
    data = ObjectStore(bucket=s3.Bucket(stack, "Data"), key=key)
    roles = JobRoles(stack, "Roles", key=key, vpc=vpc(stack) if with_vpc else None)
    return stack, roles, data


def _statements_of(template: Template, role: iam.Role, stack: cdk.Stack) -> list[dict[str, Any]]:
    role_ref = stack.resolve(role.role_name)
    return [
        s
        for p in resources(template, "AWS::IAM::Policy").values()
        if role_ref in p["Properties"]["Roles"]
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]


def test_the_execution_role_writes_job_logs_and_grants_volume_keys_for_aws_resources_only() -> None:
    stack, roles, data = _job_roles(with_vpc=False)
    roles.grant_data(data, read=["iris/training/"], read_write=["iris/models/"])
    template = Template.from_stack(stack)
    statements = _statements_of(template, roles.execution, stack)
    (log_statement,) = [s for s in statements if "logs:PutLogEvents" in actions_of([s])]
    assert sorted(log_statement["Resource"]) == [
        "arn:aws:logs:eu-west-1:111122223333:log-group:/aws/sagemaker/ProcessingJobs:*",
        "arn:aws:logs:eu-west-1:111122223333:log-group:/aws/sagemaker/TrainingJobs:*",
    ]
    (grant,) = [s for s in statements if "kms:CreateGrant" in actions_of([s])]
    assert grant["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}}
    assert not any(a.startswith("ec2:") for a in actions_of(statements))  # no VPC, no ENIs
    writes = [s for s in statements if "s3:PutObject" in actions_of([s])]
    assert "/iris/models/*" in repr(writes) and "/iris/training/*" not in repr(writes)
    reads = [s for s in statements if "s3:GetObject*" in actions_of([s])]
    assert "/iris/training/*" in repr(reads)


def test_jobs_in_a_vpc_may_make_network_interfaces_in_that_vpc_only() -> None:
    stack, roles, _ = _job_roles(with_vpc=True)
    template = Template.from_stack(stack)
    (eni,) = [
        s
        for s in _statements_of(template, roles.execution, stack)
        if "ec2:CreateNetworkInterface" in actions_of([s])
    ]
    network = cdk.Stack.of(roles).node.find_child("Vpc")
    assert isinstance(network, ec2.Vpc)
    assert eni["Condition"] == {"ArnEquals": {"ec2:Vpc": stack.resolve(network.vpc_arn)}}


def test_starting_jobs_is_limited_to_the_prefix_and_passes_only_the_execution_role() -> None:
    stack, roles, data = _job_roles(with_vpc=False)
    roles.allow_starting_jobs(
        roles.orchestration,
        training_job_prefix=PIPELINE_JOB_PREFIX,
        processing_job_prefix=PIPELINE_JOB_PREFIX,
        tuning_jobs=True,
        naming="tests",
    )
    roles.allow_reading_decisions(data, "pipeline-runs/")
    tracking = MlflowApp(
        stack,
        "Tracking",
        name="app",
        settings=TrackingSettings(),
        artifacts=ObjectStore(bucket=s3.Bucket(stack, "Artifacts"), key=None, root="mlflow"),
    )
    roles.use_tracking(tracking)
    template = Template.from_stack(stack)
    statements = _statements_of(template, roles.orchestration, stack)
    (start,) = [s for s in statements if "sagemaker:CreateTrainingJob" in actions_of([s])]
    assert sorted(start["Resource"]) == [
        f"{ARN}:processing-job/pipelines-*",
        f"{ARN}:training-job/pipelines-*",
    ]
    (tuning,) = [
        s for s in statements if "sagemaker:CreateHyperParameterTuningJob" in actions_of([s])
    ]
    assert tuning["Resource"] == f"{ARN}:hyper-parameter-tuning-job/*"
    (passing,) = [s for s in statements if "iam:PassRole" in actions_of([s])]
    assert passing["Resource"] == stack.resolve(roles.execution.role_arn)
    assert passing["Condition"] == {
        "StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}
    }
    (decisions,) = [s for s in statements if actions_of([s]) == {"s3:GetObject"}]
    assert "/pipeline-runs/*" in repr(decisions["Resource"])
    assert "kms:Decrypt" in actions_of(statements)
    # use_tracking made the jobs MLflow clients of that one app.
    execution = _statements_of(template, roles.execution, stack)
    (api,) = [s for s in execution if "sagemaker:CallMlflowAppApi" in actions_of([s])]
    assert api["Resource"] == stack.resolve(tracking.server_arn)


# --- schedules -------------------------------------------------------------------------------


def test_schedules_start_the_pipeline_with_retries_into_the_dead_letter_queue() -> None:
    stack = bare_stack()
    training = _training_pipeline(stack)
    schedules = PipelineSchedules(
        stack,
        "Schedules",
        settings=SchedulesSettings(),
        removal=cdk.RemovalPolicy.DESTROY,
        key=kms.Key(stack, "Key"),
    )
    created = schedules.start_pipeline(
        "Training",
        pipeline=training.pipeline,
        schedule=SchedulesSettings().training,
        description="Weekly training",
    )
    assert schedules.schedules == {"Training": created}
    template = Template.from_stack(stack)
    schedule = only(template, "AWS::Scheduler::Schedule")
    assert schedule["ScheduleExpression"] == "cron(0 2 ? * SUN *)"
    assert schedule["ScheduleExpressionTimezone"] == "UTC"
    assert schedule["State"] == "ENABLED"
    target = schedule["Target"]
    assert target["Arn"] == stack.resolve(training.pipeline.pipeline_arn)
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": 3, "MaximumEventAgeInSeconds": 3600}
    assert target["DeadLetterConfig"]["Arn"] == stack.resolve(schedules.dead_letter_queue.queue_arn)
    template.has_resource_properties(
        "AWS::IAM::Role",
        {
            "AssumeRolePolicyDocument": {
                "Statement": [
                    Match.object_like(
                        {
                            "Principal": {"Service": "scheduler.amazonaws.com"},
                            "Condition": {"StringEquals": {"aws:SourceAccount": "111122223333"}},
                        }
                    )
                ]
            }
        },
    )
    statements = _statements_of(template, schedules.role, stack)
    (start,) = [s for s in statements if "sagemaker:StartPipelineExecution" in actions_of([s])]
    assert start["Resource"] == stack.resolve(training.pipeline.pipeline_arn)
    assert {"sqs:SendMessage", "kms:GenerateDataKey*"} <= actions_of(statements)


# --- launcher --------------------------------------------------------------------------------


def _launcher(
    stack: cdk.Stack, settings: LambdaLauncherSettings | None = None
) -> tuple[TrainingPipeline, kms.Key, TrainingLauncher]:
    """A training pipeline, a key and the Lambda launcher of the pipeline's training step."""
    training = _training_pipeline(stack)
    key = kms.Key(stack, "Key")
    launcher = TrainingLauncher(
        stack,
        "Launcher",
        settings=settings or LambdaLauncherSettings(),
        job_name_prefix="mlops-dev-train",
        pipeline=training.pipeline,
        step_name=TRAIN_STEP,
        log_retention=logs.RetentionDays.ONE_MONTH,
        removal=cdk.RemovalPolicy.DESTROY,
        key=key,
    )
    return training, key, launcher


def test_the_launcher_function_is_bounded_encrypted_logged_and_dead_lettered() -> None:
    stack = bare_stack()
    training, key, launcher = _launcher(stack)
    template = Template.from_stack(stack)
    function = only(template, "AWS::Lambda::Function")
    assert function["Runtime"] == "python3.14"
    assert function["Handler"] == "launcher.handler"
    assert function["Timeout"] == 30 and function["MemorySize"] == 256
    assert function["ReservedConcurrentExecutions"] == 1
    assert function["KmsKeyArn"] == stack.resolve(key.key_arn)
    assert function["DeadLetterConfig"]["TargetArn"] == stack.resolve(
        launcher.dead_letter_queue.queue_arn
    )
    assert function["LoggingConfig"]["LogGroup"] == stack.resolve(launcher.log_group.log_group_name)
    assert function["Environment"]["Variables"] == {
        "JOB_NAME_PREFIX": "mlops-dev-train",
        "PIPELINE_NAME": stack.resolve(training.pipeline.pipeline_name),
        "STEP_NAME": TRAIN_STEP,
    }
    log_group = next(
        g["Properties"]
        for name, g in resources(template, "AWS::Logs::LogGroup").items()
        if name.startswith("Launcher")
    )
    assert log_group["RetentionInDays"] == 30
    statements = _statements_of(template, launcher.role, stack)
    (describe,) = [s for s in statements if "sagemaker:DescribePipeline" in actions_of([s])]
    assert describe["Resource"] == stack.resolve(training.pipeline.pipeline_arn)
    assert {"sqs:SendMessage", "kms:Decrypt", "logs:PutLogEvents"} <= actions_of(statements)
    # The launcher starts no job by itself: the stack grants that (JobRoles.allow_starting_jobs).
    assert "sagemaker:CreateTrainingJob" not in actions_of(statements)


def test_a_pinned_older_launcher_runtime_is_acknowledged_on_the_function() -> None:
    stack = bare_stack()
    _launcher(stack, LambdaLauncherSettings(runtime="python3.12"))
    app = stack.node.root
    assert isinstance(app, cdk.App)
    rules = [(a.path, a.rule) for a in nag.acknowledgements(app)]
    assert ("Bare/Launcher/Function", "AwsSolutions-L1") in rules


@pytest.mark.parametrize("runtime", ["python3.14"])
def test_the_latest_runtime_needs_no_acknowledgement(runtime: str) -> None:
    stack = bare_stack()
    _launcher(stack, LambdaLauncherSettings(runtime=runtime))
    app = stack.node.root
    assert isinstance(app, cdk.App)
    assert "AwsSolutions-L1" not in [a.rule for a in nag.acknowledgements(app)]


def test_the_launcher_schedule_invokes_the_function_with_the_scheduled_time() -> None:
    stack = bare_stack()
    _, key, launcher = _launcher(stack)
    schedules = PipelineSchedules(
        stack, "Schedules", settings=SchedulesSettings(), removal=cdk.RemovalPolicy.DESTROY, key=key
    )
    schedules.invoke_function(
        "Launcher",
        function=launcher.function,
        schedule=SchedulesSettings().training,
        description="Weekly training job",
    )
    template = Template.from_stack(stack)
    target = only(template, "AWS::Scheduler::Schedule")["Target"]
    assert target["Arn"] == stack.resolve(launcher.function.function_arn)
    assert json.loads(target["Input"]) == {
        "scheduled_time": "<aws.scheduler.scheduled-time>",
        "schedule_arn": "<aws.scheduler.schedule-arn>",
    }
    assert target["DeadLetterConfig"]["Arn"] == stack.resolve(schedules.dead_letter_queue.queue_arn)
    statements = _statements_of(template, schedules.role, stack)
    assert "lambda:InvokeFunction" in actions_of(statements)
    assert "sagemaker:StartPipelineExecution" not in actions_of(statements)


# --- bad input -------------------------------------------------------------------------------

BAD_INPUT: dict[str, tuple[type[BaseModel], dict[str, Any], str]] = {
    # TrainingPipeline would tune on one instance whatever the count: the count is refused.
    "tuning on several instances": (
        PipelinesSettings,
        {"training": {"strategy": "tuning", "instance_count": 2}},
        "pipelines.training.instance_count=2 with strategy=tuning: each tuning job trains on "
        "one instance",
    ),
    "schedule cron": (
        SchedulesSettings,
        {"training": {"cron": "cron(0 2 * * * *)"}},
        "training.cron='cron(0 2 * * * *)': exactly one of day-of-month and day-of-week must be ?",
    ),
    "launcher runtime": (
        LambdaLauncherSettings,
        {"runtime": "python2.7"},
        "runtime='python2.7': input should be 'python3.12', 'python3.13' or 'python3.14'",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_what_the_pipeline_constructs_cannot_build_is_refused_in_one_line(case: str) -> None:
    model, values, expected = BAD_INPUT[case]
    with pytest.raises(ValidationError) as raised:
        model.model_validate(values)
    line = describe(raised.value, model=model)
    assert expected in line
    assert "\n" not in line
