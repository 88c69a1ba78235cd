"""The two SageMaker roles of the pipelines: the jobs' execution role and the pipelines' own role."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from mlops_cdk import nag
from mlops_cdk.constructs.data_stores import ObjectStore
from mlops_cdk.tracking_backend import TrackingBackend

# SageMaker Pipelines names the jobs it starts pipelines-<execution id>-<step>-<suffix>.
PIPELINE_JOB_PREFIX = "pipelines-"
# Why the execution role's grants on MLflow and S3 may carry wildcards.
JOB_OBJECTS_REASON = (
    "Jobs read and write objects of any name (one file per run or date), but only "
    "under the MLflow artifact prefix and the data prefixes each job uses."
)
JOB_MLFLOW_API_REASON = (
    "The MLflow client API (runs, metrics, registry) of this one SageMaker MLflow "
    "tracking server ARN: training logs and registers, inference loads the model."
)


class JobRoles(Construct):
    """``execution``: what the training/inference containers run as (granted data, key, ECR, logs,
    MLflow by the stack). ``orchestration``: what the pipelines assume to start those jobs.
    """

    def __init__(self, scope: Construct, id: str, *, key: kms.IKey, vpc: ec2.IVpc | None) -> None:
        super().__init__(scope, id)
        stack = Stack.of(self)
        self.execution = iam.Role(
            self,
            "Execution",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description="Runs the training and inference containers of the ML pipelines",
        )
        self.orchestration = iam.Role(
            self,
            "Orchestration",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description="Lets the SageMaker pipelines start their training and processing jobs",
        )
        # Job logs and metrics go to SageMaker's own log groups and namespaces.
        self.job_log_groups = [
            stack.format_arn(
                service="logs",
                resource="log-group",
                resource_name=f"/aws/sagemaker/{kind}:*",
                arn_format=ArnFormat.COLON_RESOURCE_NAME,
            )
            for kind in ("TrainingJobs", "ProcessingJobs")
        ]
        self.execution.add_to_policy(
            iam.PolicyStatement(
                actions=[
                    "logs:CreateLogGroup",
                    "logs:CreateLogStream",
                    "logs:DescribeLogStreams",
                    "logs:PutLogEvents",
                ],
                resources=self.job_log_groups,
            )
        )
        for log_group in self.job_log_groups:
            nag.ack_resource(
                self.execution,
                log_group,
                "SageMaker writes one log stream per job into its fixed job log group only.",
            )
        self.execution.add_to_policy(
            iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],  # PutMetricData has no resource type; the namespace is limited
                conditions={"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}},
            )
        )
        nag.ack(
            self.execution,
            "AwsSolutions-IAM5[Resource::*]",
            "ecr:GetAuthorizationToken, cloudwatch:PutMetricData (namespace-limited) and the EC2 "
            "calls that attach a job to the VPC (VPC-limited) have no resource-level permissions.",
        )
        # Volume encryption: SageMaker creates a grant on the key for the job's volume.
        self.execution.add_to_policy(
            iam.PolicyStatement(
                actions=["kms:CreateGrant", "kms:DescribeKey"],
                resources=[key.key_arn],
                conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}},
            )
        )
        if vpc is not None:
            self._allow_vpc_jobs(vpc)

    def _allow_vpc_jobs(self, vpc: ec2.IVpc) -> None:
        """What SageMaker needs to attach a job's network interfaces in the private subnets."""
        self.execution.add_to_policy(
            iam.PolicyStatement(
                actions=[
                    "ec2:DescribeDhcpOptions",
                    "ec2:DescribeNetworkInterfaces",
                    "ec2:DescribeSecurityGroups",
                    "ec2:DescribeSubnets",
                    "ec2:DescribeVpcs",
                ],
                resources=["*"],  # Describe* calls take no resource
            )
        )
        self.execution.add_to_policy(
            iam.PolicyStatement(
                actions=[
                    "ec2:CreateNetworkInterface",
                    "ec2:CreateNetworkInterfacePermission",
                    "ec2:DeleteNetworkInterface",
                    "ec2:DeleteNetworkInterfacePermission",
                ],
                resources=["*"],  # interface IDs are unknown until created; limited to the VPC
                conditions={"ArnEquals": {"ec2:Vpc": vpc.vpc_arn}},
            )
        )

    def grant_data(
        self, data: ObjectStore, *, read: Sequence[str], read_write: Sequence[str]
    ) -> None:
        """Let the jobs read ``read`` and read and write ``read_write`` prefixes of ``data``."""
        for prefix in read:
            grant = data.grant_read(self.execution, prefix)
            nag.ack_grant(self.execution, grant, resources=JOB_OBJECTS_REASON)
        for prefix in read_write:
            grant = data.grant_read_write(self.execution, prefix)
            nag.ack_grant(self.execution, grant, resources=JOB_OBJECTS_REASON)

    def use_tracking(self, tracking: TrackingBackend) -> None:
        """Make the jobs MLflow clients of ``tracking`` (its API, artifacts and key)."""
        nag.ack_grant(
            self.execution,
            tracking.grant_use(self.execution),
            resources=JOB_OBJECTS_REASON,
            actions=JOB_MLFLOW_API_REASON,
        )

    def allow_reading_decisions(self, data: ObjectStore, prefix: str) -> None:
        """Let the pipelines read the preflight's decision files under ``prefix`` (JsonGet)."""
        # The pipelines' role reads the decision file (JsonGet on a property file):
        # https://docs.aws.amazon.com/sagemaker/latest/dg/build-and-manage-access.html
        decisions = data.objects_arn(prefix)
        iam.Grant.add_to_principal(
            grantee=self.orchestration, actions=["s3:GetObject"], resource_arns=[decisions]
        )
        nag.ack_resource(
            self.orchestration,
            decisions,
            "The pipelines read each execution's preflight decision file (JsonGet), written under "
            "<pipeline>/<execution id>/ of this one prefix; s3:GetObject only.",
        )
        if data.key is not None:
            data.key.grant_decrypt(self.orchestration)

    def allow_starting_jobs(
        self,
        grantee: iam.IRole,
        *,
        training_job_prefix: str | None = None,
        processing_job_prefix: str | None = None,
        tuning_jobs: bool = False,
        naming: str,
    ) -> None:
        """Let ``grantee`` start (describe, stop, tag) jobs whose names start with the prefixes,
        passing the execution role and nothing else. ``naming`` says who names the jobs so
        (the reason for the name-prefix wildcards).

        ``tuning_jobs``: hyperparameter tuning jobs of any name. SageMaker Pipelines names a
        tuning job itself (at most 32 characters) and documents no prefix for it, so a prefix
        guessed here could deny the step on its first run. The role still passes only the
        execution role, and a tuning job's training jobs (``<tuning job>-NNN-<hash>``) run as
        the role its definition passes.
        """
        stack = Stack.of(self)
        jobs: list[str] = []
        if training_job_prefix is not None:
            jobs.append(
                stack.format_arn(
                    service="sagemaker",
                    resource="training-job",
                    resource_name=f"{training_job_prefix.lower()}*",  # ARNs are lower case
                )
            )
        if processing_job_prefix is not None:
            jobs.append(
                stack.format_arn(
                    service="sagemaker",
                    resource="processing-job",
                    resource_name=f"{processing_job_prefix.lower()}*",
                )
            )
        actions: list[str] = ["sagemaker:AddTags"]
        if training_job_prefix is not None:
            actions += [
                "sagemaker:CreateTrainingJob",
                "sagemaker:DescribeTrainingJob",
                "sagemaker:StopTrainingJob",
            ]
        if processing_job_prefix is not None:
            actions += [
                "sagemaker:CreateProcessingJob",
                "sagemaker:DescribeProcessingJob",
                "sagemaker:StopProcessingJob",
            ]
        if tuning_jobs:
            tuning = stack.format_arn(
                service="sagemaker", resource="hyper-parameter-tuning-job", resource_name="*"
            )
            iam.Grant.add_to_principal(
                grantee=grantee,
                actions=[
                    "sagemaker:AddTags",
                    "sagemaker:CreateHyperParameterTuningJob",
                    "sagemaker:DescribeHyperParameterTuningJob",
                    "sagemaker:StopHyperParameterTuningJob",
                    "sagemaker:ListTrainingJobsForHyperParameterTuningJob",
                ],
                resource_arns=[tuning],
            )
            nag.ack_resource(
                grantee,
                tuning,
                "SageMaker Pipelines names a tuning job itself and documents no prefix for it; "
                "the role passes only the execution role to the jobs it starts.",
            )
        iam.Grant.add_to_principal(grantee=grantee, actions=actions, resource_arns=jobs)
        for arn in jobs:
            nag.ack_resource(grantee, arn, f"{naming}; only jobs with that name prefix.")
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["iam:PassRole"],
            resource_arns=[self.execution.role_arn],
            conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
        )
