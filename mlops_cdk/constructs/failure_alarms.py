"""Failure alarms: failed or stopped runs, undelivered schedule starts and launcher errors
all reach one encrypted SNS topic (optionally with an e-mail subscription).
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import ArnFormat, Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as events_targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

FAILED_STATES = ["Failed", "Stopped"]


def encrypted_alarm_topic(
    scope: Construct, *, purpose: str, display_name: str, removal: RemovalPolicy
) -> tuple[kms.Key, sns.Topic]:
    """A KMS key and a TLS-only topic encrypted with it (``scope``/Key, ``scope``/Topic) that
    CloudWatch alarms of the stack may publish to.

    CloudWatch alarms of the stack (CloudFormation names them <stack name>-<id>-<suffix>)
    publish as cloudwatch.amazonaws.com: the topic policy (which replaces SNS's default
    owner-only policy) and the key policy must both let them, scoped to these alarms
    (CloudWatch user guide, "Amazon SNS topic policies for alarms"; SNS developer guide,
    sns-key-management.html#compatibility-with-aws-services). EventBridge rules get their key
    statement from the SnsTopic target: their KMS requests carry no aws:SourceAccount, so they
    cannot be conditioned like this one.
    """
    stack = Stack.of(scope)
    alarms = stack.format_arn(
        service="cloudwatch",
        resource="alarm",
        resource_name=f"{stack.stack_name}-*",
        arn_format=ArnFormat.COLON_RESOURCE_NAME,
    )
    from_alarms = {
        "StringEquals": {"aws:SourceAccount": stack.account},
        "ArnLike": {"aws:SourceArn": alarms},
    }
    cloudwatch_service = iam.ServicePrincipal("cloudwatch.amazonaws.com")
    key = kms.Key(
        scope,
        "Key",
        description=f"Encrypts {purpose}",
        enable_key_rotation=True,
        removal_policy=removal,
    )
    key.add_to_resource_policy(
        iam.PolicyStatement(
            sid="Publish from cloudwatch",
            principals=[cloudwatch_service],
            actions=["kms:Decrypt", "kms:GenerateDataKey*"],
            resources=["*"],  # in a key policy, "*" is this key
            conditions=from_alarms,
        )
    )
    topic = sns.Topic(scope, "Topic", display_name=display_name, master_key=key, enforce_ssl=True)
    topic.add_to_resource_policy(
        iam.PolicyStatement(
            sid="CloudWatchAlarmsPublish",
            principals=[cloudwatch_service],
            actions=["sns:Publish"],
            resources=[topic.topic_arn],
            conditions=from_alarms,
        )
    )
    return key, topic


class FailureAlarms(Construct):
    """Topic and key, the rules that publish to it, and the CloudWatch alarms that notify it."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        removal: RemovalPolicy,
        email: str | None,
    ) -> None:
        super().__init__(scope, id)
        self.key, self.topic = encrypted_alarm_topic(
            self,
            purpose="the ML pipelines' failure-alarm topic",
            display_name="ML pipeline failures",
            removal=removal,
        )
        if email is not None:
            self.topic.add_subscription(subscriptions.EmailSubscription(email))
        self._alarm_action = cw_actions.SnsAction(self.topic)

    def on_pipeline_failure(self, pipelines: Sequence[sagemaker.IPipeline]) -> events.Rule:
        """Executions of ``pipelines`` that end Failed or Stopped."""
        return events.Rule(
            self,
            "PipelineFailed",
            description="An ML pipeline execution failed or was stopped",
            event_pattern=events.EventPattern(
                source=["aws.sagemaker"],
                detail_type=["SageMaker Model Building Pipeline Execution Status Change"],
                detail={
                    "currentPipelineExecutionStatus": FAILED_STATES,
                    "pipelineArn": [p.pipeline_arn for p in pipelines],
                },
            ),
            targets=[events_targets.SnsTopic(self.topic)],
        )

    def on_training_job_failure(self, job_name_prefix: str) -> events.Rule:
        """Plain training jobs (the Lambda launcher's) that end Failed or Stopped."""
        return events.Rule(
            self,
            "TrainingJobFailed",
            description="A launcher-started training job failed or was stopped",
            event_pattern=events.EventPattern(
                source=["aws.sagemaker"],
                detail_type=["SageMaker Training Job State Change"],
                detail={
                    "TrainingJobStatus": FAILED_STATES,
                    "TrainingJobName": [{"prefix": f"{job_name_prefix}-"}],
                },
            ),
            targets=[events_targets.SnsTopic(self.topic)],
        )

    def on_dead_letters(
        self,
        queue: sqs.IQueue,
        id: str = "DeadLetters",
        description: str = "A scheduled pipeline start was not delivered (see the DLQ)",
    ) -> cloudwatch.Alarm:
        """A message in ``queue``: a schedule could not start its target even after retries
        (or, for the launcher's queue, an invocation failed after Lambda's retries)."""
        alarm = cloudwatch.Alarm(
            self,
            id,
            alarm_description=description,
            metric=queue.metric_approximate_number_of_messages_visible(
                period=Duration.minutes(5), statistic="Maximum"
            ),
            threshold=0,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        alarm.add_alarm_action(self._alarm_action)
        return alarm

    def on_function_errors(self, function: lambda_.IFunction) -> cloudwatch.Alarm:
        """The launcher raised (EventBridge Scheduler invokes it asynchronously)."""
        alarm = cloudwatch.Alarm(
            self,
            "LauncherErrors",
            alarm_description="The training launcher function failed",
            metric=function.metric_errors(period=Duration.minutes(5), statistic="Sum"),
            threshold=0,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        alarm.add_alarm_action(self._alarm_action)
        return alarm
