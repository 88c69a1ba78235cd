"""The Lambda launcher: a schedule invokes it; it starts one plain training job per scheduled time.

Runtime code: ``lambda/launcher/launcher.py`` (boto3 only, no bundling).
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from mlops_cdk import nag
from mlops_cdk.checkov import NO_RESERVATION, NOT_IN_VPC, skip
from mlops_cdk.constructs.dead_letter import ack_sender_key_wildcards, encrypted_dead_letter_queue
from mlops_cdk.settings import LambdaLauncherSettings

CODE_DIR = Path(__file__).resolve().parents[2] / "lambda" / "launcher"


class TrainingLauncher(Construct):
    """Function, its role and its log group (explicit, with retention)."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        settings: LambdaLauncherSettings,
        job_name_prefix: str,
        pipeline: sagemaker.IPipeline,
        step_name: str,
        log_retention: logs.RetentionDays,
        removal: RemovalPolicy,
        key: kms.IKey,
    ) -> None:
        super().__init__(scope, id)
        self.job_name_prefix = job_name_prefix
        latest = max(
            (r.name for r in lambda_.Runtime.ALL if r.family == lambda_.RuntimeFamily.PYTHON),
            key=lambda name: tuple(int(n) for n in name.removeprefix("python").split(".")),
        )
        self.log_group = logs.LogGroup(
            self, "LogGroup", retention=log_retention, removal_policy=removal
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="Lets the training launcher start its training jobs and write its logs",
        )
        self.log_group.grant_write(self.role)
        nag.ack_resource(
            self.role,
            self.log_group.log_group_arn,  # CDK's log-group ARN ends with :*
            "The function writes log streams (named by Lambda) into its own log group only.",
        )
        # The job is the pipeline's training step at its defaults, read from the definition.
        iam.Grant.add_to_principal(
            grantee=self.role,
            actions=["sagemaker:DescribePipeline"],
            resource_arns=[pipeline.pipeline_arn],
        )
        # EventBridge Scheduler invokes the function asynchronously: an event that still fails
        # after Lambda's own retries lands here (and alarms) instead of being dropped.
        self.dead_letter_queue = encrypted_dead_letter_queue(
            self, "DeadLetterQueue", key=key, removal=removal, purpose="the training launcher"
        )
        self.function = lambda_.Function(
            self,
            "Function",
            runtime=lambda_.Runtime(settings.runtime, lambda_.RuntimeFamily.PYTHON),
            handler=settings.handler,
            code=lambda_.Code.from_asset(
                str(CODE_DIR), exclude=["__pycache__", "*.pyc", "test_*.py"]
            ),
            timeout=Duration.seconds(settings.timeout_seconds),
            memory_size=settings.memory_mb,
            role=self.role,
            log_group=self.log_group,
            dead_letter_queue=self.dead_letter_queue,
            reserved_concurrent_executions=settings.reserved_concurrency,
            environment_encryption=key,
            description="Starts the scheduled training job (pipelines.launcher=lambda)",
            environment={
                **settings.environment,
                "JOB_NAME_PREFIX": job_name_prefix,
                "PIPELINE_NAME": pipeline.pipeline_name,
                "STEP_NAME": step_name,
            },
        )
        if settings.runtime != latest:
            nag.ack(
                self.function,
                "AwsSolutions-L1",
                "The runtime is pinned on purpose by pipelines.lambda_launcher.runtime in cdk.json.",
            )
        # Lambda's own DLQ grant is sqs:SendMessage only; the role also needs the queue's key.
        self.dead_letter_queue.grant_send_messages(self.role)
        ack_sender_key_wildcards(self.role)
        # Environment encrypted with the key: the role may decrypt it (whether Lambda uses the
        # execution role or its own grant for that is not verified here; either works).
        key.grant_decrypt(self.role)
        skip(self.function, "CKV_AWS_117", NOT_IN_VPC)
        if settings.reserved_concurrency is None:
            skip(self.function, "CKV_AWS_115", NO_RESERVATION)
