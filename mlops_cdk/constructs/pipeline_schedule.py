"""EventBridge Scheduler: the scheduler role, the encrypted dead-letter queue and the schedules."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Stack, TimeZone
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as targets
from constructs import Construct

from mlops_cdk import nag
from mlops_cdk.constructs.dead_letter import ack_sender_key_wildcards, encrypted_dead_letter_queue
from mlops_cdk.settings import ScheduleSettings, SchedulesSettings


class PipelineSchedules(Construct):
    """One role for every schedule (it may start exactly the targets added here), one DLQ."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        settings: SchedulesSettings,
        removal: RemovalPolicy,
        key: kms.IKey,
    ) -> None:
        super().__init__(scope, id)
        self._settings = settings
        account = Stack.of(self).account
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal(
                "scheduler.amazonaws.com",
                conditions={"StringEquals": {"aws:SourceAccount": account}},
            ),
            description="Lets EventBridge Scheduler start the ML pipelines (and the launcher)",
        )
        self.dead_letter_queue = encrypted_dead_letter_queue(
            self, "DeadLetterQueue", key=key, removal=removal, purpose="the EventBridge schedules"
        )
        # The scheduler-targets grant sqs:SendMessage only; the role also needs the queue's key
        # (grant_send_messages adds kms:GenerateDataKey/Decrypt on it).
        self.dead_letter_queue.grant_send_messages(self.role)
        ack_sender_key_wildcards(self.role)
        self.schedules: dict[str, scheduler.Schedule] = {}

    def start_pipeline(
        self,
        id: str,
        *,
        pipeline: sagemaker.IPipeline,
        schedule: ScheduleSettings,
        description: str,
    ) -> scheduler.Schedule:
        """A schedule that starts ``pipeline`` with its default parameters."""
        target = targets.SageMakerStartPipelineExecution(
            pipeline,
            role=self.role,
            dead_letter_queue=self.dead_letter_queue,
            retry_attempts=self._settings.retry_attempts,
            max_event_age=Duration.minutes(self._settings.max_event_age_minutes),
        )
        return self._add(id, target=target, schedule=schedule, description=description)

    def invoke_function(
        self,
        id: str,
        *,
        function: lambda_.IFunction,
        schedule: ScheduleSettings,
        description: str,
    ) -> scheduler.Schedule:
        """A schedule that invokes ``function`` with the scheduled time as its input."""
        target = targets.LambdaInvoke(
            function,
            input=scheduler.ScheduleTargetInput.from_object(
                {
                    "scheduled_time": scheduler.ContextAttribute.scheduled_time,
                    "schedule_arn": scheduler.ContextAttribute.schedule_arn,
                }
            ),
            role=self.role,
            dead_letter_queue=self.dead_letter_queue,
            retry_attempts=self._settings.retry_attempts,
            max_event_age=Duration.minutes(self._settings.max_event_age_minutes),
        )
        nag.ack_resource(
            self.role,
            f"{function.function_arn}:*",
            "CDK's Lambda target: invoking the launcher function's own versions and aliases.",
        )
        return self._add(id, target=target, schedule=schedule, description=description)

    def _add(
        self,
        id: str,
        *,
        target: scheduler.IScheduleTarget,
        schedule: ScheduleSettings,
        description: str,
    ) -> scheduler.Schedule:
        created = scheduler.Schedule(
            self,
            id,
            schedule=scheduler.ScheduleExpression.expression(
                schedule.cron, TimeZone.of(schedule.time_zone)
            ),
            target=target,
            description=f"{description} ({schedule.cron} {schedule.time_zone})",
            enabled=True,
        )
        self.schedules[id] = created
        return created
