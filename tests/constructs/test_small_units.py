"""The small units in a bare stack: encrypted secrets, log-group encryption, dead-letter
queues, failure alarms and the RDS monitoring acknowledgement."""

from __future__ import annotations

import json

import aws_cdk as cdk
import pytest
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_rds as rds
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk import aws_sqs as sqs
from aws_cdk.assertions import Match, Template

from mlops_cdk import nag
from mlops_cdk.constructs.database_monitoring import (
    MONITORING_INTERVAL,
    POLICY,
    ack_monitoring_role,
)
from mlops_cdk.constructs.dead_letter import (
    KEY_WILDCARDS,
    RETENTION,
    ack_sender_key_wildcards,
    encrypted_dead_letter_queue,
)
from mlops_cdk.constructs.encrypted_log_group import encrypt_log_groups
from mlops_cdk.constructs.encrypted_secret import KeyEncryptedSecret, secrets_key
from mlops_cdk.constructs.failure_alarms import FAILED_STATES, FailureAlarms
from mlops_cdk.constructs.pipeline_ref import SageMakerPipelineRef
from tests.constructs.bare import (
    actions_of,
    bare_stack,
    client_role,
    only,
    policy_statements,
    resources,
    vpc,
)

ACCOUNT_REGION = "eu-west-1:111122223333"


def _rules_of(app: cdk.App) -> list[tuple[str, str]]:
    return [(a.path, a.rule) for a in nag.acknowledgements(app)]


# --- encrypted secrets -----------------------------------------------------------------------


def test_a_key_encrypted_secret_grants_decrypt_through_secrets_manager_not_in_the_key_policy() -> (
    None
):
    stack = bare_stack()
    key = secrets_key(stack, "SecretsKey", purpose="test secrets", removal=cdk.RemovalPolicy.RETAIN)
    secret = KeyEncryptedSecret(stack, "Secret", key=key)
    client, role = client_role(stack)
    grant = secret.grant_read(role)
    assert isinstance(grant, iam.Grant) and grant.success

    template = Template.from_stack(stack)
    template.has_resource(
        "AWS::KMS::Key",
        {
            "Properties": Match.object_like(
                {"EnableKeyRotation": True, "Description": "Encrypts test secrets"}
            ),
            "DeletionPolicy": "Retain",
        },
    )
    assert only(template, "AWS::SecretsManager::Secret")["KmsKeyId"] == stack.resolve(key.key_arn)
    assert "ClientStack" not in json.dumps(template.find_resources("AWS::KMS::Key"))

    statements = policy_statements(client)
    assert {"secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"} <= actions_of(
        statements
    )
    (decrypt,) = [s for s in statements if "kms:Decrypt" in actions_of([s])]
    assert decrypt["Condition"] == {
        "StringEquals": {"kms:ViaService": "secretsmanager.eu-west-1.amazonaws.com"}
    }
    assert "Fn::ImportValue" in decrypt["Resource"]


def test_grant_key_through_secrets_manager_returns_the_conditioned_grant() -> None:
    stack = bare_stack()
    key = kms.Key(stack, "Key")
    secret = KeyEncryptedSecret(stack, "Secret", key=key)
    role = iam.Role(stack, "Writer", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    grant = secret.grant_key_through_secrets_manager(role, ["kms:GenerateDataKey"])
    (statement,) = grant.principal_statements
    assert statement.actions == ["kms:GenerateDataKey"]
    assert stack.resolve(statement.to_statement_json())["Condition"] == {
        "StringEquals": {"kms:ViaService": "secretsmanager.eu-west-1.amazonaws.com"}
    }


# --- log-group encryption --------------------------------------------------------------------


def test_every_log_group_without_a_key_gets_the_key_and_the_logs_service_may_use_it() -> None:
    stack = bare_stack()
    key = kms.Key(stack, "Key")
    other_key = kms.Key(stack, "OtherKey")
    logs.LogGroup(stack, "Plain")
    logs.LogGroup(stack, "Own", encryption_key=other_key)
    encrypt_log_groups(stack, key)
    logs.LogGroup(stack, "AddedLater")  # aspects run at synthesis: covered too
    template = Template.from_stack(stack)
    keys = {
        name: group["Properties"]["KmsKeyId"]
        for name, group in resources(template, "AWS::Logs::LogGroup").items()
    }
    ours, theirs = stack.resolve(key.key_arn), stack.resolve(other_key.key_arn)
    assert sorted(v == ours for v in keys.values()) == [False, True, True]
    assert theirs in keys.values()  # an explicit key is kept
    template.has_resource_properties(
        "AWS::KMS::Key",
        {
            "KeyPolicy": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Sid": "CloudWatchLogsOfThisAccountAndRegion",
                                "Principal": {"Service": "logs.eu-west-1.amazonaws.com"},
                                "Condition": {
                                    "ArnLike": {
                                        "kms:EncryptionContext:aws:logs:arn": (
                                            f"arn:aws:logs:{ACCOUNT_REGION}:log-group:*"
                                        )
                                    }
                                },
                            }
                        )
                    ]
                )
            }
        },
    )


# --- dead-letter queues ----------------------------------------------------------------------


def test_a_dead_letter_queue_is_kms_encrypted_tls_only_kept_14_days_and_acknowledged() -> None:
    app_stack = bare_stack()
    key = kms.Key(app_stack, "Key")
    queue = encrypted_dead_letter_queue(
        app_stack, "Dlq", key=key, removal=cdk.RemovalPolicy.DESTROY, purpose="the tests"
    )
    sender = iam.Role(
        app_stack, "Sender", assumed_by=iam.ServicePrincipal("scheduler.amazonaws.com")
    )
    queue.grant_send_messages(sender)
    ack_sender_key_wildcards(sender)
    template = Template.from_stack(app_stack)
    properties = only(template, "AWS::SQS::Queue")
    assert properties["KmsMasterKeyId"] == app_stack.resolve(key.key_arn)
    assert properties["KmsDataKeyReusePeriodSeconds"] == 3600
    assert properties["MessageRetentionPeriod"] == RETENTION.to_seconds() == 14 * 24 * 3600
    (policy,) = resources(template, "AWS::SQS::QueuePolicy").values()
    (tls_only,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert tls_only["Effect"] == "Deny" and tls_only["Action"] == "sqs:*"
    assert tls_only["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    app = app_stack.node.root
    assert isinstance(app, cdk.App)
    rules = _rules_of(app)
    assert ("Bare/Dlq", "AwsSolutions-SQS3") in rules
    assert {("Bare/Sender", f"AwsSolutions-IAM5[Action::{a}]") for a in KEY_WILDCARDS} <= set(rules)
    # What the sender got is exactly the wildcards acknowledged: send plus the queue's key.
    statements = policy_statements(app_stack)
    assert {"sqs:SendMessage", *KEY_WILDCARDS} <= actions_of(statements)


# --- failure alarms --------------------------------------------------------------------------


def _alarms(email: str | None = "ml-team@example.com") -> tuple[cdk.Stack, FailureAlarms]:
    stack = bare_stack()
    return stack, FailureAlarms(stack, "Alarms", removal=cdk.RemovalPolicy.DESTROY, email=email)


def test_the_failure_topic_is_encrypted_tls_only_and_open_to_this_stacks_alarms_only() -> None:
    stack, alarms = _alarms()
    template = Template.from_stack(stack)
    topic = only(template, "AWS::SNS::Topic")
    assert topic["KmsMasterKeyId"] == stack.resolve(alarms.key.key_arn)
    template.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})
    from_alarms = {
        "StringEquals": {"aws:SourceAccount": "111122223333"},
        "ArnLike": {"aws:SourceArn": f"arn:aws:cloudwatch:{ACCOUNT_REGION}:alarm:Bare-*"},
    }
    (policy,) = resources(template, "AWS::SNS::TopicPolicy").values()
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    (publish,) = [s for s in statements if s.get("Sid") == "CloudWatchAlarmsPublish"]
    assert publish["Condition"] == from_alarms
    assert publish["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert any(s["Effect"] == "Deny" and "aws:SecureTransport" in repr(s) for s in statements)
    key_policy = only(template, "AWS::KMS::Key")["KeyPolicy"]["Statement"]
    (key_statement,) = [s for s in key_policy if s.get("Sid") == "Publish from cloudwatch"]
    assert key_statement["Condition"] == from_alarms
    template.has_resource_properties(
        "AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": "ml-team@example.com"}
    )


def test_no_email_no_subscription() -> None:
    stack, _ = _alarms(email=None)
    Template.from_stack(stack).resource_count_is("AWS::SNS::Subscription", 0)


def test_failed_pipelines_jobs_dead_letters_and_function_errors_reach_the_topic() -> None:
    stack, alarms = _alarms()
    cfn = sagemaker.CfnPipeline(
        stack,
        "Pipeline",
        pipeline_name="mlops-dev-training",
        role_arn="arn:aws:iam::111122223333:role/x",
        pipeline_definition={"PipelineDefinitionBody": "{}"},
    )
    pipeline = SageMakerPipelineRef(stack, "PipelineRef", pipeline=cfn)
    queue = sqs.Queue(stack, "Queue")
    function = lambda_.Function(
        stack,
        "Function",
        runtime=lambda_.Runtime.PYTHON_3_12,
        handler="index.handler",
        code=lambda_.Code.from_inline("def handler(event, context): pass"),
    )
    pipeline_rule = alarms.on_pipeline_failure([pipeline])
    job_rule = alarms.on_training_job_failure("mlops-dev-train")
    dead_letters = alarms.on_dead_letters(queue)
    errors = alarms.on_function_errors(function)
    template = Template.from_stack(stack)
    topic = stack.resolve(alarms.topic.topic_arn)

    rules = {name: r["Properties"] for name, r in resources(template, "AWS::Events::Rule").items()}
    pipeline_pattern = rules[stack.get_logical_id(pipeline_rule.node.default_child)]  # type: ignore[arg-type]
    assert pipeline_pattern["EventPattern"]["detail"] == {
        "currentPipelineExecutionStatus": FAILED_STATES,
        "pipelineArn": [stack.resolve(pipeline.pipeline_arn)],
    }
    job_pattern = rules[stack.get_logical_id(job_rule.node.default_child)]  # type: ignore[arg-type]
    assert job_pattern["EventPattern"]["detail"] == {
        "TrainingJobStatus": FAILED_STATES,
        "TrainingJobName": [{"prefix": "mlops-dev-train-"}],
    }
    assert all(rule["Targets"][0]["Arn"] == topic for rule in rules.values())

    found = resources(template, "AWS::CloudWatch::Alarm")
    for alarm, metric in ((dead_letters, "ApproximateNumberOfMessagesVisible"), (errors, "Errors")):
        properties = found[stack.get_logical_id(alarm.node.default_child)]["Properties"]  # type: ignore[arg-type]
        assert properties["MetricName"] == metric
        assert properties["Threshold"] == 0
        assert properties["ComparisonOperator"] == "GreaterThanThreshold"
        assert properties["TreatMissingData"] == "notBreaching"
        assert properties["AlarmActions"] == [topic]


# --- RDS enhanced monitoring -----------------------------------------------------------------


def _database(stack: cdk.Stack, monitoring: bool) -> rds.DatabaseInstance:
    return rds.DatabaseInstance(
        stack,
        "Database",
        engine=rds.DatabaseInstanceEngine.mysql(version=rds.MysqlEngineVersion.VER_8_4_7),
        vpc=vpc(stack),
        vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED),
        monitoring_interval=MONITORING_INTERVAL if monitoring else None,
    )


def test_the_monitoring_role_acknowledgement_names_the_managed_policy_it_uses() -> None:
    stack = bare_stack()
    database = _database(stack, monitoring=True)
    ack_monitoring_role(database)
    template = Template.from_stack(stack)
    assert only(template, "AWS::RDS::DBInstance")["MonitoringInterval"] == 60
    (role,) = [
        r["Properties"]
        for r in resources(template, "AWS::IAM::Role").values()
        if "monitoring.rds.amazonaws.com" in json.dumps(r)
    ]
    managed = role["ManagedPolicyArns"][0]["Fn::Join"][1]
    assert "".join(p if isinstance(p, str) else "<AWS::Partition>" for p in managed) == POLICY
    app = stack.node.root
    assert isinstance(app, cdk.App)
    assert ("Bare/Database/MonitoringRole", f"AwsSolutions-IAM4[Policy::{POLICY}]") in _rules_of(
        app
    )


def test_a_database_without_monitoring_has_no_role_to_acknowledge() -> None:
    stack = bare_stack()
    with pytest.raises(RuntimeError, match="MonitoringRole"):
        ack_monitoring_role(_database(stack, monitoring=False))
