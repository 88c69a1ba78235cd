"""Day one: a scheduled run with nothing to do is a recorded skip, not a failure.

Every pipeline in every variant decides before it starts a job: a preflight processing step
writes a decision file, and a condition step on it runs the job(s) only when ready.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import boto3
import launcher  # lambda/launcher: resolve_defaults, as the launcher reads a definition
import pytest
from aws_cdk import Aws
from iris_inference import preflight_contract as container_contract
from iris_inference.preflight import main as preflight_main
from iris_inference.preflight import parser as preflight_parser
from moto import mock_aws

from mlops_cdk.constructs.pipeline_definition import (
    JOB_STEP_TYPES,
    ConditionStep,
    PipelineDefinition,
    PropertyFile,
    Step,
    equals,
    json_get,
)
from mlops_cdk.constructs.preflight import CONTRACT, PREFLIGHT_STEP, READY_STEP
from mlops_cdk.stacks.pipelines import PipelinesStack
from tests.conftest import synthesized, with_app
from tests.matrix import Variant, variant_params
from tests.synth import SynthesizedApp
from tests.unit.test_pipelines import FULL_OPTIONS, _statements
from tools.synthesis import default_mode

JOB_TYPES = JOB_STEP_TYPES  # a tuning step starts jobs too
TOKEN = re.compile(r"\$\{Token\[[^\]]+\]\}")
BUCKET = "data-bucket"
REGION = "eu-west-1"


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


# --- one contract: what the preflight writes is what the condition reads -------------------------


def _stack(app: SynthesizedApp) -> PipelinesStack:
    assert app.platform.pipelines is not None
    return app.platform.pipelines


def _resolve_tokens(value: Any) -> Any:
    """CDK tokens (bucket name, region, ...) as the values a deployed stack would hold."""
    if isinstance(value, str):
        value = value.replace(Aws.REGION, REGION) if Aws.REGION in value else value
        return TOKEN.sub(BUCKET, value)
    if isinstance(value, list):
        return [_resolve_tokens(v) for v in value]
    if isinstance(value, dict):
        return {k: _resolve_tokens(v) for k, v in value.items()}
    return value


def _gate(body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    preflight, condition = body["Steps"]
    return preflight, condition


def test_the_app_and_the_container_read_one_contract() -> None:
    assert CONTRACT.__file__ is not None and container_contract.__file__ is not None
    assert Path(CONTRACT.__file__).resolve() == Path(container_contract.__file__).resolve()
    names = [n for n in dir(container_contract) if n.isupper()]
    assert names and all(getattr(CONTRACT, n) == getattr(container_contract, n) for n in names)


@pytest.mark.parametrize("pipeline", ["training", "inference"])
def test_the_condition_reads_the_file_and_key_the_preflight_writes(
    staging: SynthesizedApp, pipeline: str
) -> None:
    built = getattr(_stack(staging), pipeline)
    preflight, condition = _gate(built.definition.to_dict())
    assert preflight["Name"] == PREFLIGHT_STEP and preflight["Type"] == "Processing"
    assert condition["Name"] == READY_STEP and condition["Type"] == "Condition"
    (property_file,) = preflight["PropertyFiles"]
    assert property_file == {
        "PropertyFileName": container_contract.PROPERTY_FILE,
        "OutputName": container_contract.OUTPUT_NAME,
        "FilePath": container_contract.FILE_NAME,
    }
    arguments = preflight["Arguments"]
    (output,) = arguments["ProcessingOutputConfig"]["Outputs"]
    assert output["OutputName"] == property_file["OutputName"]
    assert output["S3Output"]["LocalPath"] == container_contract.LOCAL_DIR
    (ready,) = condition["Arguments"]["Conditions"]
    assert ready == {
        "Type": "Equals",
        "LeftValue": {
            "Std:JsonGet": {
                "PropertyFile": {
                    "Get": f"Steps.{PREFLIGHT_STEP}.PropertyFiles.{container_contract.PROPERTY_FILE}"
                },
                "Path": container_contract.READY,
            }
        },
        "RightValue": True,
    }
    # The container is started as the contract says, and its parser takes the arguments.
    app = arguments["AppSpecification"]
    assert app["ContainerEntrypoint"] == list(container_contract.ENTRYPOINT)
    assert app["ImageUri"] == _stack(staging).inference_image.image_uri
    defaults = {p.name: p.default for p in built.definition.parameters}
    args = preflight_parser().parse_args(
        _resolve_tokens(launcher.resolve_defaults(app["ContainerArguments"], defaults))
    )
    assert args.output_dir == container_contract.LOCAL_DIR
    assert args.region == REGION
    if pipeline == "training":
        assert args.require_objects == [f"s3://{BUCKET}/iris/training/"]
        assert args.require_alias is False
    else:
        assert args.require_objects == [f"s3://{BUCKET}/iris/inference-input/"]
        assert args.require_alias is True


def test_the_preflight_checks_every_training_channel() -> None:
    full = synthesized("staging", **FULL_OPTIONS)  # the app tests/unit/test_pipelines.py shares
    preflight, _ = _gate(_stack(full).training.definition.to_dict())
    arguments = preflight["Arguments"]["AppSpecification"]["ContainerArguments"]
    checked = [arguments[i + 1] for i, a in enumerate(arguments) if a == "--require-objects"]
    assert checked[0] == {"Get": "Parameters.TrainingDataUri"}  # follows an overridden URI
    assert [_resolve_tokens(c) for c in checked[1:]] == [f"s3://{BUCKET}/iris/extra/"]


def test_the_inference_preflight_runs_as_the_scoring_job_does(prod: SynthesizedApp) -> None:
    inference = _stack(prod).inference
    preflight, condition = _gate(inference.definition.to_dict())
    (score,) = condition["Arguments"]["IfSteps"]
    job, check = score["Arguments"], preflight["Arguments"]
    assert check["RoleArn"] == job["RoleArn"]
    assert check["NetworkConfig"] == job["NetworkConfig"]  # the VPC and MLflow port it reaches
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_CREDENTIALS_SECRET_ARN", "MODEL_NAME",
                 "MODEL_ALIAS"):  # fmt: skip
        assert check["Environment"][name] == job["Environment"][name], name
    # An unreachable MLflow fails the step in minutes, well inside its maximum runtime.
    assert check["Environment"]["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "3"
    assert (
        int(check["Environment"]["MLFLOW_HTTP_REQUEST_TIMEOUT"]) * 4
        < (check["StoppingCondition"]["MaxRuntimeInSeconds"])
    )
    cluster = check["ProcessingResources"]["ClusterConfig"]
    assert cluster["InstanceType"] == "ml.t3.medium"  # pipelines.preflight_instance_type
    assert cluster["InstanceCount"] == 1


def test_the_preflight_writes_what_the_condition_evaluates(
    staging: SynthesizedApp, tmp_path: Path
) -> None:
    # The training pipeline's preflight, run for real (moto S3) with the definition's arguments;
    # then the condition evaluated as SageMaker would: JsonGet on the uploaded property file.
    preflight, condition = _gate(_stack(staging).training.definition.to_dict())
    (property_file,) = preflight["PropertyFiles"]
    (ready,) = condition["Arguments"]["Conditions"]
    path = ready["LeftValue"]["Std:JsonGet"]["Path"]
    defaults = {p.name: p.default for p in _stack(staging).training.definition.parameters}
    args = _resolve_tokens(
        launcher.resolve_defaults(
            preflight["Arguments"]["AppSpecification"]["ContainerArguments"], defaults
        )
    )
    local = tmp_path / container_contract.LOCAL_DIR.lstrip("/")
    args[args.index(container_contract.OUTPUT_FLAG) + 1] = str(local)

    def outcome(s3: Any) -> bool:
        assert preflight_main(args, {}, s3=s3) == 0
        decision = json.loads((local / property_file["FilePath"]).read_text())
        return bool(decision[path] == ready["RightValue"])

    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        assert outcome(s3) is False  # day one: no training data -> ElseSteps (none): skipped
        s3.put_object(Bucket=BUCKET, Key="iris/training/iris.csv", Body=b"x")
        assert outcome(s3) is True  # data -> IfSteps: Train


def test_the_roles_may_write_and_read_the_decision(dev: SynthesizedApp) -> None:
    orchestration = json.dumps(_statements(dev, "RolesOrchestration"))
    assert '"s3:GetObject"' in orchestration and "/iris/pipeline-runs/*" in orchestration
    assert '"kms:Decrypt"' in orchestration  # the decision is encrypted with the storage key
    writes = [
        s for s in _statements(dev, "RolesExecution") if "s3:PutObject" in json.dumps(s["Action"])
    ]
    assert "/iris/pipeline-runs/*" in json.dumps([s["Resource"] for s in writes])


def test_the_builder_rejects_a_condition_on_an_unknown_property_file() -> None:
    decision = PropertyFile("Decision", "decision", "decision.json")
    job = Step("Job", "Training", {})
    ready = ConditionStep("Ready", (equals(json_get("Nowhere", decision, "ready"), True),), (job,))
    with pytest.raises(ValueError, match=r"unknown 'Steps\.Nowhere\.PropertyFiles\.Decision'"):
        PipelineDefinition(parameters=(), steps=(ready,))
    with pytest.raises(ValueError, match="reads output 'decision'"):
        Step("Check", "Processing", {}, property_files=(decision,))


# --- the failure alarm does not fire on a skip ------------------------------------------------

# Event shape: "Pipeline execution state change" / "Pipeline step state change" in
# https://docs.aws.amazon.com/sagemaker/latest/dg/automating-sagemaker-with-eventbridge.html
ACCOUNT = "111122223333"


def _join(value: Any, refs: dict[str, str]) -> Any:
    """Fn::Join / Ref of the deployed form's pattern, resolved as CloudFormation would."""
    if isinstance(value, dict) and "Fn::Join" in value:
        on, parts = value["Fn::Join"]
        return on.join(str(_join(p, refs)) for p in parts)
    if isinstance(value, dict) and "Ref" in value:
        return refs[value["Ref"]]
    if isinstance(value, list):
        return [_join(v, refs) for v in value]
    if isinstance(value, dict):
        return {k: _join(v, refs) for k, v in value.items()}
    return value


def _execution_event(arn: str, status: str, detail_type: str, **detail: str) -> dict[str, Any]:
    return {
        "Source": "aws.sagemaker",
        "DetailType": detail_type,
        "Resources": [arn],
        "Detail": json.dumps(
            {
                "pipelineArn": arn,
                "pipelineExecutionArn": f"{arn}/execution/abc123",
                "currentPipelineExecutionStatus": status,
                "previousPipelineExecutionStatus": "Executing",
                **detail,
            }
        ),
    }


STAGING_DEPLOYED = Variant("staging", default_mode("staging"), "deployed")


@with_app(STAGING_DEPLOYED.key)
def test_a_skipped_run_raises_no_alarm_and_a_failed_one_does() -> None:
    app = STAGING_DEPLOYED.app()
    template = app.template_json("pipelines")
    refs = {"AWS::Partition": "aws", "AWS::Region": REGION, "AWS::AccountId": ACCOUNT}
    refs |= {
        k: v["Properties"]["PipelineName"]
        for k, v in template["Resources"].items()
        if v["Type"] == "AWS::SageMaker::Pipeline"
    }
    (rule,) = [
        r
        for r in template["Resources"].values()
        if r["Type"] == "AWS::Events::Rule" and "Pipeline" in json.dumps(r)
    ]
    pattern = _join(rule["Properties"]["EventPattern"], refs)
    arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:pipeline/mlops-staging-inference"
    assert arn in pattern["detail"]["pipelineArn"]
    execution = "SageMaker Model Building Pipeline Execution Status Change"
    step = "SageMaker Model Building Pipeline Execution Step Status Change"
    skip = [  # what a skipped run emits: the preflight and the condition succeed, then the run
        _execution_event(arn, "Succeeded", step, stepName=PREFLIGHT_STEP),
        _execution_event(arn, "Succeeded", step, stepName=READY_STEP),
        _execution_event(arn, "Succeeded", execution),
    ]
    with mock_aws():
        events = boto3.client("events", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        queue = sqs.create_queue(QueueName="alarms")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        events.put_rule(Name="PipelineFailed", EventPattern=json.dumps(pattern))
        events.put_targets(Rule="PipelineFailed", Targets=[{"Id": "alarm", "Arn": queue_arn}])

        def alarms(entries: list[dict[str, Any]]) -> int:
            events.put_events(Entries=entries)
            received = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)
            return len(received.get("Messages", []))

        assert alarms(skip) == 0
        # The check can fail: a preflight that could not check fails the execution.
        assert alarms([_execution_event(arn, "Failed", execution)]) == 1
