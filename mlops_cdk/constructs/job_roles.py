"""The two SageMaker roles of the pipelines: the jobs' execution role and the pipelines' own role."""

from __future__ import annotations

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

# SageMaker Pipelines names the jobs it starts pipelines-<execution id>-<step>-<suffix>.
PIPELINE_JOB_PREFIX = "pipelines-"


class JobRoles(Construct):
    """``execution``: what the training/inference containers run as (granted data, key, ECR, logs,
    MLflow by the stack). ``orchestration``: what the pipelines assume to start those jobs.
    """

    def __init__(self, scope: Construct, id: str, *, key: kms.IKey, vpc: ec2.IVpc | None) -> None:
        super().__init__(scope, id)
        stack = Stack.of(self)
        self._started_jobs: list[tuple[iam.IGrantable, list[str]]] = []
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
        self.execution.add_to_policy(
            iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],  # PutMetricData has no resource type; the namespace is limited
                conditions={"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}},
            )
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

    def allow_starting_jobs(
        self,
        grantee: iam.IGrantable,
        *,
        training_job_prefix: str | None = None,
        processing_job_prefix: str | None = None,
        tuning_job_prefix: str | None = None,
    ) -> None:
        """Let ``grantee`` start (describe, stop, tag) jobs whose names start with the prefixes,
        passing the execution role and nothing else. A tuning job's training jobs are named
        ``<tuning job>-NNN-<hash>`` and run as the role its definition passes.
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
        if tuning_job_prefix is not None:
            jobs.append(
                stack.format_arn(
                    service="sagemaker",
                    resource="hyper-parameter-tuning-job",
                    resource_name=f"{tuning_job_prefix.lower()}*",
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
        if tuning_job_prefix is not None:
            actions += [
                "sagemaker:CreateHyperParameterTuningJob",
                "sagemaker:DescribeHyperParameterTuningJob",
                "sagemaker:StopHyperParameterTuningJob",
                "sagemaker:ListTrainingJobsForHyperParameterTuningJob",
            ]
        iam.Grant.add_to_principal(grantee=grantee, actions=actions, resource_arns=jobs)
        self._started_jobs.append((grantee, jobs))
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["iam:PassRole"],
            resource_arns=[self.execution.role_arn],
            conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
        )

    def started_job_arns(self, grantee: iam.IGrantable) -> list[str]:
        """The job ARN patterns ``grantee`` may start (for cdk-nag's reasons)."""
        return [arn for who, jobs in self._started_jobs if who is grantee for arn in jobs]
