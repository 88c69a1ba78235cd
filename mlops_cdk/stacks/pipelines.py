"""Pipelines: scheduled SageMaker training and inference, the optional Lambda launcher, alarms."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import Aws, CfnOutput, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from constructs import Construct

from mlops_cdk.constructs.data_stores import ObjectStore
from mlops_cdk.constructs.failure_alarms import FailureAlarms
from mlops_cdk.constructs.inference_pipeline import InferencePipeline
from mlops_cdk.constructs.job_requests import JobContext, JobNetwork
from mlops_cdk.constructs.job_roles import PIPELINE_JOB_PREFIX, JobRoles
from mlops_cdk.constructs.pipeline_schedule import PipelineSchedules
from mlops_cdk.constructs.training_launcher import TrainingLauncher
from mlops_cdk.constructs.training_pipeline import TRAIN_STEP, TrainingPipeline
from mlops_cdk.settings import PipelinesSettings
from mlops_cdk.stacks.network import NetworkStack
from mlops_cdk.stacks.storage import StorageStack
from mlops_cdk.tracking_backend import TrackingBackend

CONTAINERS = Path(__file__).resolve().parents[2] / "containers"
IMAGES = frozenset({"training", "inference"})  # containers/<name>/Dockerfile
CHECKPOINT_PREFIX = "iris/checkpoints/"


class PipelinesStack(Stack):
    """Exposes the pipelines, roles, schedules and launcher it creates (for outputs and nag)."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        settings: PipelinesSettings,
        name_prefix: str,
        in_vpc: bool,
        storage: StorageStack,
        network: NetworkStack | None,
        tracking: TrackingBackend,
        removal: RemovalPolicy,
        log_retention: logs.RetentionDays,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, id, **kwargs)
        layout = storage.layout
        self.job_security_group = self._job_security_group(in_vpc, network, tracking)
        vpc = network.vpc if network is not None and in_vpc else None
        self.roles = JobRoles(self, "Roles", key=storage.key, vpc=vpc)
        execution = self.roles.execution

        # Data: each job reads and writes only its own prefixes of the data bucket.
        training = settings.training
        read = [
            layout.training,
            layout.inference_input,
            *(c.prefix for c in training.extra_channels),
        ]
        read_write = [layout.models, layout.inference_output, layout.pipeline_runs]
        if training.spot and training.checkpoint_uri is None:
            read_write.append(CHECKPOINT_PREFIX)
        self.roles.grant_data(storage.data, read=read, read_write=read_write)
        self.roles.allow_reading_decisions(storage.data, layout.pipeline_runs)
        checkpoint_uri = self._checkpoint_uri(settings, storage.data)
        self.roles.use_tracking(tracking)

        self.training_image = self._image("TrainingImage", "training")
        self.inference_image = self._image("InferenceImage", "inference")

        def context(image: ecr_assets.DockerImageAsset) -> JobContext:
            network_config = (
                JobNetwork(
                    subnet_ids=network.private_subnet_ids,
                    security_group_ids=[self.job_security_group.security_group_id],
                )
                if network is not None and self.job_security_group is not None
                else None
            )
            return JobContext(
                image_uri=image.image_uri,
                role_arn=execution.role_arn,
                key_arn=storage.key.key_arn,
                tracking_environment=tracking.client_environment,
                model_name=settings.model_name,
                network=network_config,
            )

        self.training = TrainingPipeline(
            self,
            "TrainingPipeline",
            name=f"{name_prefix}-training",
            settings=settings,
            context=context(self.training_image),
            preflight_context=context(self.inference_image),
            runs_uri=storage.data.uri(layout.pipeline_runs),
            training_uri=storage.data.uri(layout.training),
            model_uri=storage.data.uri(layout.models),
            checkpoint_uri=checkpoint_uri,
            extra_channel_uris={
                c.name: storage.data.uri(c.prefix) for c in training.extra_channels
            },
            role=self.roles.orchestration,
        )
        self.inference = InferencePipeline(
            self,
            "InferencePipeline",
            name=f"{name_prefix}-inference",
            settings=settings,
            context=context(self.inference_image),
            runs_uri=storage.data.uri(layout.pipeline_runs),
            input_uri=storage.data.uri(layout.inference_input),
            output_uri=storage.data.uri(layout.inference_output),
            role=self.roles.orchestration,
        )
        self.roles.allow_starting_jobs(
            self.roles.orchestration,
            training_job_prefix=PIPELINE_JOB_PREFIX,
            processing_job_prefix=PIPELINE_JOB_PREFIX,
            tuning_jobs=training.strategy == "tuning",
            naming="SageMaker Pipelines names its jobs pipelines-<execution>-<step>-*",
        )

        self.alarms = FailureAlarms(self, "Alarms", removal=removal, email=settings.alarm_email)
        self.alarms.on_pipeline_failure([self.training.pipeline, self.inference.pipeline])

        self.launcher: TrainingLauncher | None = None
        if settings.launcher == "lambda":
            prefix = settings.lambda_launcher.job_name_prefix or f"{name_prefix}-train"
            self.launcher = TrainingLauncher(
                self,
                "Launcher",
                settings=settings.lambda_launcher,
                job_name_prefix=prefix,
                pipeline=self.training.pipeline,
                step_name=TRAIN_STEP,
                log_retention=log_retention,
                removal=removal,
                key=storage.key,
            )
            self.roles.allow_starting_jobs(
                self.launcher.role,
                training_job_prefix=f"{prefix}-",
                naming="The launcher names its jobs <prefix>-<yyyymmddHHMM>",
            )
            self.alarms.on_training_job_failure(prefix)
            self.alarms.on_function_errors(self.launcher.function)
            self.alarms.on_dead_letters(
                self.launcher.dead_letter_queue,
                "LauncherDeadLetters",
                "A launcher invocation failed after Lambda's retries (see its DLQ)",
            )

        self.schedules = self._schedules(settings, removal, storage.key)
        self._outputs()

    def _job_security_group(
        self, in_vpc: bool, network: NetworkStack | None, tracking: TrackingBackend
    ) -> ec2.SecurityGroup | None:
        if not in_vpc:
            return None
        if network is None:
            raise ValueError("pipelines.vpc=true needs the network stack (network.enabled)")
        group = ec2.SecurityGroup(
            self,
            "JobSecurityGroup",
            vpc=network.vpc,
            description="SageMaker training and processing jobs of the ML pipelines",
            allow_all_outbound=False,
        )
        # S3, ECR, SageMaker, STS and logs through the VPC endpoints or the NAT.
        group.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.HTTPS, "AWS APIs over HTTPS")
        # Distributed training: the instances of one job talk to each other.
        group.add_ingress_rule(group, ec2.Port.all_traffic(), "From the instances of a job")
        group.add_egress_rule(group, ec2.Port.all_traffic(), "To the instances of a job")
        if tracking.connections is not None:  # both sides land here (TrackingBackend)
            group.connections.allow_to_default_port(tracking.connections, "MLflow from ML jobs")
        return group

    def _checkpoint_uri(self, settings: PipelinesSettings, data: ObjectStore) -> str | None:
        training = settings.training
        if not training.spot:
            return None
        if training.checkpoint_uri is None:
            return data.uri(CHECKPOINT_PREFIX)  # granted with the other prefixes
        bucket, _, prefix = training.checkpoint_uri.removeprefix("s3://").partition("/")
        self.roles.execution.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                resources=[f"arn:{Aws.PARTITION}:s3:::{bucket}/{prefix}*"],
            )
        )
        self.roles.execution.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[f"arn:{Aws.PARTITION}:s3:::{bucket}"],
                conditions={"StringLike": {"s3:prefix": f"{prefix}*"}},
            )
        )
        return training.checkpoint_uri

    def _image(self, id: str, name: str) -> ecr_assets.DockerImageAsset:
        """The image of containers/<name>/Dockerfile, built in the one context containers/
        (containers/.dockerignore; synth copies the context, no Docker)."""
        others = sorted(IMAGES - {name})
        image = ecr_assets.DockerImageAsset(
            self,
            id,
            directory=str(CONTAINERS),
            file=f"{name}/Dockerfile",
            # After the .dockerignore (CDK appends these): the other image's folder stays out,
            # so this image's asset hash, and its build, change only with its own code.
            exclude=[f"{other}/**" for other in others],
            platform=ecr_assets.Platform.LINUX_AMD64,  # SageMaker ml.* instances are x86_64
        )
        image.repository.grant_pull(self.roles.execution)
        return image

    def _schedules(
        self, settings: PipelinesSettings, removal: RemovalPolicy, key: kms.IKey
    ) -> PipelineSchedules | None:
        wanted = settings.schedules
        if not (wanted.training.enabled or wanted.inference.enabled):
            return None
        schedules = PipelineSchedules(self, "Schedules", settings=wanted, removal=removal, key=key)
        if wanted.training.enabled:
            if self.launcher is not None:
                schedules.invoke_function(
                    "Training",
                    function=self.launcher.function,
                    schedule=wanted.training,
                    description="Starts a training job through the launcher",
                )
            else:
                schedules.start_pipeline(
                    "Training",
                    pipeline=self.training.pipeline,
                    schedule=wanted.training,
                    description=f"Starts {self.training.name}",
                )
        if wanted.inference.enabled:
            schedules.start_pipeline(
                "Inference",
                pipeline=self.inference.pipeline,
                schedule=wanted.inference,
                description=f"Starts {self.inference.name}",
            )
        self.alarms.on_dead_letters(schedules.dead_letter_queue)
        return schedules

    def _outputs(self) -> None:
        for label, built in (("Training", self.training), ("Inference", self.inference)):
            CfnOutput(self, f"{label}PipelineName", value=built.pipeline.pipeline_name)
            CfnOutput(self, f"{label}PipelineArn", value=built.pipeline.pipeline_arn)
        CfnOutput(
            self,
            "StartTrainingCommand",
            value=f"aws sagemaker start-pipeline-execution --pipeline-name {self.training.name}",
        )
        CfnOutput(self, "ExecutionRoleArn", value=self.roles.execution.role_arn)
        CfnOutput(self, "PipelineRoleArn", value=self.roles.orchestration.role_arn)
        CfnOutput(self, "AlarmTopicArn", value=self.alarms.topic.topic_arn)
        CfnOutput(self, "TrainingImageUri", value=self.training_image.image_uri)
        CfnOutput(self, "InferenceImageUri", value=self.inference_image.image_uri)
        if self.schedules is not None:
            CfnOutput(self, "SchedulerRoleArn", value=self.schedules.role.role_arn)
            CfnOutput(self, "DeadLetterQueueUrl", value=self.schedules.dead_letter_queue.queue_url)
            for label, schedule in self.schedules.schedules.items():
                CfnOutput(self, f"{label}ScheduleArn", value=schedule.schedule_arn)
        if self.launcher is not None:
            CfnOutput(self, "LauncherFunctionArn", value=self.launcher.function.function_arn)
            CfnOutput(self, "LauncherRoleArn", value=self.launcher.role.role_arn)
        if self.job_security_group is not None:
            CfnOutput(self, "JobSecurityGroupId", value=self.job_security_group.security_group_id)
