"""What every runtime actor calls, with concrete resources: the list the simulator checks.

Two sources feed the table of one variant:

- :data:`CODE_CALLS`: the AWS API calls each actor's own code makes (containers, Lambdas,
  start-up scripts), as ``service:Action``. The recording plugin (tests/iam/recording.py)
  fails a test whose code makes a call that is not listed here for its actor, so this list
  cannot fall behind the code.
- What services do on an actor's behalf, which no test of ours can record: SageMaker pulling
  the image, reading channels and writing output with the job's KMS key, writing logs,
  attaching network interfaces; the ``sagemaker-mlflow`` plugin's SigV4-signed MLflow calls;
  EventBridge, CloudWatch and S3 publishing or delivering to topics, queues and buckets.

Every call of :func:`expected_calls` must be allowed by the identity policies of its
principal AND the resource policy of its resource (tests/iam/test_permissions.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aws_cdk import Stack
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sqs as sqs
from constructs import IConstruct

from mlops_cdk.constructs.cdk_providers import cdk_providers
from mlops_cdk.constructs.ec2_mlflow import Ec2Mlflow
from mlops_cdk.constructs.fargate_mlflow import FargateMlflow
from mlops_cdk.stacks.pipelines import CHECKPOINT_PREFIX
from tests.iam.policies import ACCOUNT, REGION, Resolver
from tests.synth import SynthesizedApp

S3_VIA = f"s3.{REGION}.amazonaws.com"
SECRETS_VIA = f"secretsmanager.{REGION}.amazonaws.com"

# The AWS API calls each actor's own code makes (botocore operation -> IAM action is the
# service's signing name and the operation name; see tests/iam/recording.py). Extend the
# actor's entry when its code starts making a new call, and add the call's resource below.
CODE_CALLS: dict[str, frozenset[str]] = {
    # containers/training and containers/inference: MLflow basic-auth credentials.
    "training-job": frozenset({"secretsmanager:GetSecretValue"}),
    # ... and the preflight (iris_inference.preflight) lists the prefixes it checks; the
    # sharded pipeline's commit step (iris_inference.commit) lists the date partition, puts the
    # parts, drift.json, summary.json, _manifest.json and _SUCCESS, then deletes the previous
    # run's parts; iris_inference.partition.read_partition (the reader's contract) gets objects.
    "inference-job": frozenset(
        {
            "secretsmanager:GetSecretValue",
            "s3:ListBucket",
            "s3:PutObject",
            "s3:GetObject",
            "s3:DeleteObject",
        }
    ),
    # The Studio lifecycle start-up script's IPython hook: the same credentials.
    "studio-user": frozenset({"secretsmanager:GetSecretValue"}),
    # The EC2 MLflow instance's user data (AWS CLI: fetch-secrets, register-dns, the
    # entrypoint download); tests/iam/test_startup_scripts.py reads them from the template.
    "ec2-instance": frozenset(
        {"secretsmanager:GetSecretValue", "route53:ChangeResourceRecordSets", "s3:GetObject"}
    ),
    # lambda/mlflow_rotation/mlflow_rotation.py: the four rotation steps of the MLflow users'
    # secrets (the Secrets Manager side; the MLflow side is basic auth over HTTP).
    "mlflow-rotation": frozenset(
        {
            "secretsmanager:DescribeSecret",
            "secretsmanager:GetSecretValue",
            "secretsmanager:PutSecretValue",
            "secretsmanager:UpdateSecretVersionStage",
        }
    ),
    # lambda/launcher/launcher.py
    "launcher": frozenset({"sagemaker:DescribePipeline", "sagemaker:CreateTrainingJob"}),
    # lambda/studio_cleanup/studio_cleanup.py
    "studio-cleanup": frozenset(
        {
            "sagemaker:ListApps",
            "sagemaker:DeleteApp",
            "sagemaker:ListSpaces",
            "sagemaker:DeleteSpace",
            "sagemaker:ListUserProfiles",
            "sagemaker:DeleteUserProfile",
            "sagemaker:DescribeDomain",
            "sagemaker:DeleteDomain",
            "ec2:DescribeSecurityGroups",
            "ec2:RevokeSecurityGroupIngress",
            "ec2:RevokeSecurityGroupEgress",
            "ec2:DeleteSecurityGroup",
            # A Delete that outlasts one invocation continues in a new one of the same function.
            "lambda:InvokeFunction",
        }
    ),
}

# MLflow REST calls the containers and notebooks make (MLflow 3 client): for a tracking
# server the plugin signs each as sagemaker-mlflow:<Operation>.
MLFLOW_OPERATIONS = (
    "GetExperimentByName",
    "CreateExperiment",
    "CreateRun",
    "UpdateRun",
    "GetRun",
    "LogBatch",
    "LogInputs",
    "SetTag",
    "FinalizeLoggedModel",
    "CreateRegisteredModel",
    "GetRegisteredModel",
    "CreateModelVersion",
    "GetModelVersion",
    "SearchModelVersions",
    "SetModelVersionTag",
    "SetRegisteredModelAlias",
    "GetModelVersionByAlias",
    "GetDownloadUriForModelVersionArtifacts",
    # iris_training.register_best (training image): find the tuning job's run, register its
    # logged model (MLflow 3 resolves runs:/<id>/model through the run's logged models).
    "SearchRuns",
    "SearchLoggedModels",
    "GetLoggedModel",
)


@dataclass(frozen=True)
class Call:
    actor: str
    principal: str  # role ARN, or a service principal for service-published calls
    action: str
    resource: str
    why: str
    context: Mapping[str, str | list[str]] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.actor}: {self.action} on {self.resource} ({self.why})"


class _Builder:
    def __init__(self, app: SynthesizedApp, resolver: Resolver) -> None:
        self.app = app
        self.r = resolver
        self.calls: list[Call] = []
        self.actors: dict[str, str] = {}  # actor -> principal

    def value(self, construct: IConstruct, token: Any) -> Any:
        return self.r.token(Stack.of(construct), token)

    def role_arn(self, role: iam.IRole) -> str:
        return str(self.value(role, role.role_arn))

    def add(
        self,
        actor: str,
        principal: str,
        actions: Iterable[str],
        resource: str,
        why: str,
        **context: str | list[str],
    ) -> None:
        self.actors.setdefault(actor, principal)
        base: dict[str, str | list[str]] = {"aws:SecureTransport": "true"}
        if principal.startswith("arn:"):
            base |= {"aws:PrincipalArn": principal, "aws:PrincipalAccount": ACCOUNT}
        for action in actions:
            self.calls.append(Call(actor, principal, action, resource, why, {**base, **context}))

    # --- building blocks -----------------------------------------------------------------
    def key_arn(self, key: kms.IKey) -> str:
        return str(self.value(key, key.key_arn))

    def dead_letters(
        self, actor: str, principal: str, queue: sqs.IQueue, *, sends: str, encrypts: str
    ) -> None:
        """``principal`` sends a failed event to ``queue`` and, when a customer key encrypts
        it, uses that key through SQS (Lambda developer guide, "Dead-letter queues":
        sqs:SendMessage, and the queue's key for an encrypted queue; the same for Scheduler)."""
        self.add(
            actor, principal, ["sqs:SendMessage"], str(self.value(queue, queue.queue_arn)), sends
        )
        if queue.encryption_master_key is not None:
            self.add(
                actor,
                principal,
                ["kms:GenerateDataKey", "kms:Decrypt"],
                self.key_arn(queue.encryption_master_key),
                encrypts,
                **{"kms:ViaService": f"sqs.{REGION}.amazonaws.com"},
            )

    def s3_object(
        self,
        actor: str,
        principal: str,
        bucket_name: str,
        key: str,
        kms_key: str | None,
        *,
        write: bool,
        why: str,
    ) -> None:
        """GetObject/PutObject (and ListBucket) of an SSE-KMS object: S3 uses the key as the
        caller (kms:ViaService s3), per the S3 developer guide's SSE-KMS permissions."""
        prefix = key.rsplit("/", 1)[0] + "/"
        self.add(
            actor,
            principal,
            ["s3:ListBucket"],
            f"arn:aws:s3:::{bucket_name}",
            why,
            **{"s3:prefix": prefix},
        )
        actions = ["s3:GetObject", "s3:PutObject"] if write else ["s3:GetObject"]
        self.add(actor, principal, actions, f"arn:aws:s3:::{bucket_name}/{key}", why)
        if kms_key is not None:
            kms_actions = ["kms:Decrypt", "kms:GenerateDataKey"] if write else ["kms:Decrypt"]
            self.add(
                actor,
                principal,
                kms_actions,
                kms_key,
                f"{why} (SSE-KMS)",
                **{"kms:ViaService": S3_VIA, "kms:CallerAccount": ACCOUNT},
            )

    def secret_value(
        self, actor: str, principal: str, secret: secretsmanager.ISecret, why: str
    ) -> None:
        """GetSecretValue, and kms:Decrypt through Secrets Manager when a customer key
        encrypts the secret (Secrets Manager user guide, "Secret encryption and decryption":
        the caller needs kms:Decrypt on the key, with kms:ViaService secretsmanager). The key
        is read from the template, whatever construct set it."""
        arn = str(self.value(secret, secret.secret_arn))
        self.add(actor, principal, ["secretsmanager:GetSecretValue"], arn, why)
        key = self.secret_key_arn(arn)
        if key is not None:
            self.add(
                actor,
                principal,
                ["kms:Decrypt"],
                key,
                f"{why} (the secret's key)",
                **{"kms:ViaService": SECRETS_VIA, "kms:CallerAccount": ACCOUNT},
            )

    def secret_key_arn(self, secret_arn: str) -> str | None:
        """The KmsKeyId of the secret whose ARN is ``secret_arn`` (None: AWS managed key)."""
        for stack, logical_id, resource in self.r.resources("AWS::SecretsManager::Secret"):
            if self.r.ref(stack, logical_id) == secret_arn:
                key = resource["Properties"].get("KmsKeyId")
                return None if key is None else str(self.r.resolve(stack, key))
        raise AssertionError(f"no secret with ARN {secret_arn} in the templates")

    def assume(self, actor: str, role: iam.IRole, service: str, **context: str) -> None:
        arn = self.role_arn(role)
        self.add(actor, service, ["sts:AssumeRole"], arn, f"{service} assumes the role", **context)

    def mlflow_client(self, actor: str, principal: str, why: str) -> None:
        """What an MLflow client (container, notebook) calls for the tracking mode."""
        tracking = self.app.platform.tracking
        backend = tracking.backend
        storage = self.app.platform.storage
        mode = tracking.mode
        if mode in ("serverless", "managed"):
            server = str(self.value(tracking, backend.server_arn))
            if mode == "serverless":
                # sagemaker-mlflow 0.5.0 auth_provider.py: an mlflow-app ARN is signed for the
                # "sagemaker" service, which IAM authorizes as sagemaker:CallMlflowAppApi.
                self.add(
                    actor,
                    principal,
                    ["sagemaker:CallMlflowAppApi"],
                    server,
                    f"{why}: MLflow API through the plugin",
                )
            else:
                # ... an mlflow-tracking-server ARN for "sagemaker-mlflow": one action per API.
                self.add(
                    actor,
                    principal,
                    [f"sagemaker-mlflow:{op}" for op in MLFLOW_OPERATIONS],
                    server,
                    f"{why}: MLflow API through the plugin",
                )
            artifacts_key = (
                self.key_arn(storage.artifacts.key) if storage.artifacts.key is not None else None
            )
            bucket = str(self.value(storage, storage.artifacts.bucket.bucket_name))
            self.s3_object(
                actor,
                principal,
                bucket,
                f"{storage.artifacts.root}/1/run/artifacts/model.pkl",
                artifacts_key,
                write=True,
                why=f"{why}: MLflow artifacts",
            )
        else:
            secret = backend.client_environment.get("MLFLOW_CREDENTIALS_SECRET_ARN")
            if secret is not None:
                client_secret = getattr(backend, "client_secret", None)
                assert client_secret is not None
                assert str(self.value(tracking, secret)) == str(
                    self.value(client_secret, client_secret.secret_arn)
                )
                self.secret_value(
                    actor, principal, client_secret, f"{why}: MLflow basic-auth credentials"
                )

    # --- actors -------------------------------------------------------------------------
    def pipelines(self) -> None:
        pipelines = self.app.platform.pipelines
        if pipelines is None:
            return
        storage = self.app.platform.storage
        layout = storage.layout
        roles = pipelines.roles
        execution = self.role_arn(roles.execution)
        orchestration = self.role_arn(roles.orchestration)
        key = self.key_arn(storage.key)
        data = str(self.value(storage, storage.data.bucket.bucket_name))
        repository: ecr.IRepository = pipelines.training_image.repository
        repo_arn = str(self.value(pipelines, repository.repository_arn))
        vpc = (
            self.app.platform.network.vpc
            if (self.app.platform.network is not None and pipelines.job_security_group is not None)
            else None
        )

        for actor, kind, log_group in (
            ("training-job", "training-job", "/aws/sagemaker/TrainingJobs"),
            ("inference-job", "processing-job", "/aws/sagemaker/ProcessingJobs"),
        ):
            self.assume(actor, roles.execution, "sagemaker.amazonaws.com")
            why = f"SageMaker runs the {kind}"
            self.add(actor, execution, ["ecr:GetAuthorizationToken"], "*", f"{why}: image pull")
            self.add(
                actor,
                execution,
                [
                    "ecr:BatchCheckLayerAvailability",
                    "ecr:GetDownloadUrlForLayer",
                    "ecr:BatchGetImage",
                ],
                repo_arn,
                f"{why}: image pull",
            )
            # VolumeKmsKeyId: SageMaker creates a grant for the instance's volume.
            self.add(
                actor,
                execution,
                ["kms:CreateGrant"],
                key,
                f"{why}: encrypted volume",
                **{"kms:GrantIsForAWSResource": "true", "kms:CallerAccount": ACCOUNT},
            )
            self.add(actor, execution, ["kms:DescribeKey"], key, f"{why}: encrypted volume")
            group = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{log_group}"
            self.add(
                actor,
                execution,
                ["logs:CreateLogGroup", "logs:DescribeLogStreams"],
                f"{group}:*",
                f"{why}: job logs",
            )
            self.add(
                actor,
                execution,
                ["logs:CreateLogStream", "logs:PutLogEvents"],
                f"{group}:log-stream:pipelines-abc-step-xyz/algo-1-1700000000",
                f"{why}: job logs",
            )
            self.add(
                actor,
                execution,
                ["cloudwatch:PutMetricData"],
                "*",
                f"{why}: job metrics",
                **{"cloudwatch:namespace": log_group},
            )
            if vpc is not None:
                vpc_arn = str(self.value(vpc, vpc.vpc_arn))
                self.add(
                    actor,
                    execution,
                    [
                        "ec2:DescribeVpcs",
                        "ec2:DescribeSubnets",
                        "ec2:DescribeSecurityGroups",
                        "ec2:DescribeNetworkInterfaces",
                        "ec2:DescribeDhcpOptions",
                    ],
                    "*",
                    f"{why}: network interfaces in the VPC",
                )
                self.add(
                    actor,
                    execution,
                    [
                        "ec2:CreateNetworkInterface",
                        "ec2:CreateNetworkInterfacePermission",
                        "ec2:DeleteNetworkInterface",
                        "ec2:DeleteNetworkInterfacePermission",
                    ],
                    f"arn:aws:ec2:{REGION}:{ACCOUNT}:network-interface/eni-0123456789abcdef0",
                    f"{why}: network interfaces in the VPC",
                    **{"ec2:Vpc": vpc_arn},
                )
            self.mlflow_client(actor, execution, f"the {kind}'s container")

        # Channels and outputs, with the job's KMS key (OutputDataConfig.KmsKeyId: kms:Encrypt).
        self.s3_object(
            "training-job",
            execution,
            data,
            f"{layout.training}iris.csv",
            key,
            write=False,
            why="SageMaker downloads the train channel",
        )
        self.s3_object(
            "training-job",
            execution,
            data,
            f"{layout.models}pipelines-abc-train-xyz/output/model.tar.gz",
            key,
            write=True,
            why="SageMaker uploads the model",
        )
        training = self.app.settings.pipelines.training
        for channel in training.extra_channels:
            self.s3_object(
                "training-job",
                execution,
                data,
                f"{channel.prefix}part.csv",
                key,
                write=False,
                why=f"SageMaker downloads channel {channel.name}",
            )
        if training.spot:
            uri = training.checkpoint_uri or f"s3://{data}/{CHECKPOINT_PREFIX}"
            bucket, _, prefix = uri.removeprefix("s3://").partition("/")
            self.s3_object(
                "training-job",
                execution,
                bucket,
                f"{prefix}checkpoint-1.pt",
                key if bucket == data else None,
                write=True,
                why="SageMaker syncs spot checkpoints",
            )
        self.add(
            "training-job",
            execution,
            ["kms:Encrypt"],
            key,
            "SageMaker encrypts the job output (OutputDataConfig.KmsKeyId)",
        )
        self.s3_object(
            "inference-job",
            execution,
            data,
            f"{layout.inference_input}day.csv",
            key,
            write=False,
            why="SageMaker downloads the processing input",
        )
        self.s3_object(
            "inference-job",
            execution,
            data,
            f"{layout.inference_output}date=2026-01-01/predictions.parquet",
            key,
            write=True,
            why="SageMaker uploads the processing output",
        )

        # The commit step of the sharded inference pipeline (inference image, processing job)
        # publishes the partition itself: list, put (parts, reports, manifest, _SUCCESS: the
        # uploads above cover PutObject/GetObject and the KMS data key), then delete the
        # previous run's parts (iris_inference.partition.write_partition).
        self.add(
            "inference-job",
            execution,
            ["s3:DeleteObject"],
            f"arn:aws:s3:::{data}/{layout.inference_output}date=2026-01-01/"
            "part-20260101T060000Z-0a1b2c3d-00000.parquet",
            "the commit removes the previous run's parts after _SUCCESS",
        )

        # The preflight step (inference image, processing job) of both pipelines: it lists the
        # prefixes it checks, and SageMaker uploads its decision file; the pipeline reads it.
        for prefix in (layout.training, layout.inference_input):
            self.add(
                "inference-job",
                execution,
                ["s3:ListBucket"],
                f"arn:aws:s3:::{data}",
                "the preflight lists the prefix it checks",
                **{"s3:prefix": prefix},
            )
        decision = f"{layout.pipeline_runs}mlops-training/abc123/preflight/decision.json"
        self.s3_object(
            "inference-job",
            execution,
            data,
            decision,
            key,
            write=True,
            why="SageMaker uploads the preflight's decision",
        )
        self.add(
            "pipeline",
            orchestration,
            ["s3:GetObject"],
            f"arn:aws:s3:::{data}/{decision}",
            "the pipeline's condition reads the preflight's decision",
        )
        self.add(
            "pipeline",
            orchestration,
            ["kms:Decrypt"],
            key,
            "the pipeline's condition reads the preflight's decision",
            **{"kms:ViaService": S3_VIA},
        )

        # The pipelines' own role: start, watch and stop the jobs, passing the execution role.
        self.assume("pipeline", roles.orchestration, "sagemaker.amazonaws.com")
        for kind, verb in (("training-job", "TrainingJob"), ("processing-job", "ProcessingJob")):
            arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:{kind}/pipelines-abc123-step-xyz"
            self.add(
                "pipeline",
                orchestration,
                [
                    f"sagemaker:Create{verb}",
                    f"sagemaker:Describe{verb}",
                    f"sagemaker:Stop{verb}",
                    "sagemaker:AddTags",
                ],
                arn,
                f"the pipeline runs its {kind} step",
            )
        self.add(
            "pipeline",
            orchestration,
            ["iam:PassRole"],
            execution,
            "the pipeline passes the execution role to its jobs",
            **{"iam:PassedToService": "sagemaker.amazonaws.com"},
        )
        self.scaled_out(execution, orchestration, data, key)

        self.schedules()
        self.launcher()

    def scaled_out(self, execution: str, orchestration: str, data: str, key: str) -> None:
        """Tuning (strategy=tuning) and sharded inference (instance_count > 1)."""
        settings = self.app.settings.pipelines
        layout = self.app.platform.storage.layout
        if settings.training.strategy == "tuning":
            # The Tuning step: the pipeline creates, watches and stops the tuning job and
            # reads its best training job; SageMaker starts that job's training jobs (named
            # <tuning job>-NNN-<hash>) as the execution role, like the plain Train step's.
            tuning_job = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:hyper-parameter-tuning-job/"
            self.add(
                "pipeline",
                orchestration,
                [
                    "sagemaker:CreateHyperParameterTuningJob",
                    "sagemaker:DescribeHyperParameterTuningJob",
                    "sagemaker:StopHyperParameterTuningJob",
                    "sagemaker:ListTrainingJobsForHyperParameterTuningJob",
                    "sagemaker:AddTags",
                ],
                f"{tuning_job}k3l9x2m8q1w7a5",  # a name SageMaker Pipelines chose
                "the pipeline runs its Tuning step",
            )
            self.s3_object(
                "training-job",
                execution,
                data,
                f"{layout.models}pipelines-abc123xyz-003-1a2b3c4d/output/model.tar.gz",
                key,
                write=True,
                why="SageMaker uploads a tuning job's model",
            )
            # RegisterBest: a processing job on the training image, the training data mounted.
            self.s3_object(
                "inference-job",
                execution,
                data,
                f"{layout.training}iris.csv",
                key,
                write=False,
                why="SageMaker downloads RegisterBest's training data",
            )
        if settings.inference.instance_count > 1:
            staging = f"{layout.inference_output}_staging/abc123/"
            self.s3_object(
                "inference-job",
                execution,
                data,
                f"{staging}algo-2/predictions.parquet",
                key,
                write=True,
                why="SageMaker uploads a shard to the run's staging prefix; Commit reads it",
            )
            self.s3_object(
                "inference-job",
                execution,
                data,
                f"{layout.inference_output}date=2026-01-01/_manifest.json",
                key,
                write=True,
                why="Commit publishes the partition, manifest last",
            )

    def topic_keys(self) -> dict[str, str | None]:
        """Every SNS topic of the app by ARN, with the ARN of the KMS key encrypting it."""
        keys: dict[str, str | None] = {}
        for stack, logical_id, resource in self.r.resources("AWS::SNS::Topic"):
            key = resource.get("Properties", {}).get("KmsMasterKeyId")
            keys[self.r.ref(stack, logical_id)] = (
                None if key is None else str(self.r.resolve(stack, key))
            )
        return keys

    def alarms(self) -> None:
        """Every EventBridge rule and CloudWatch alarm of any stack that notifies a topic.

        The publishing service needs the topic policy and, for an encrypted topic, the key
        (SNS developer guide, sns-key-management.html#compatibility-with-aws-services).
        """
        topics = self.topic_keys()
        for stack, logical_id, resource in [
            *self.r.resources("AWS::Events::Rule"),
            *self.r.resources("AWS::CloudWatch::Alarm"),
        ]:
            props = resource.get("Properties", {})
            if resource["Type"] == "AWS::Events::Rule":
                actor, service = "eventbridge-rules", "events.amazonaws.com"
                targets = [t["Arn"] for t in self.r.resolve(stack, props.get("Targets", []))]
            else:
                actor, service = "cloudwatch-alarms", "cloudwatch.amazonaws.com"
                targets = [
                    *self.r.resolve(stack, props.get("AlarmActions", [])),
                    *self.r.resolve(stack, props.get("OKActions", [])),
                    *self.r.resolve(stack, props.get("InsufficientDataActions", [])),
                ]
            source = self.r.get_att(stack, logical_id, "Arn")
            context = {"aws:SourceArn": source, "aws:SourceAccount": ACCOUNT}
            for topic in targets:
                if topic not in topics:
                    continue  # not an SNS topic of the app
                self.add(
                    actor, service, ["sns:Publish"], topic, f"{logical_id} notifies", **context
                )
                key = topics[topic]
                if key is None:
                    continue
                # EventBridge's KMS requests carry no aws:SourceArn/SourceAccount (same guide);
                # CloudWatch's do.
                kms_context = context if actor == "cloudwatch-alarms" else {}
                self.add(
                    actor,
                    service,
                    ["kms:GenerateDataKey", "kms:Decrypt"],
                    key,
                    f"{logical_id} publishes to the encrypted topic",
                    **kms_context,
                )

    def schedules(self) -> None:
        pipelines = self.app.platform.pipelines
        assert pipelines is not None
        schedules = pipelines.schedules
        if schedules is None:
            return
        role = self.role_arn(schedules.role)
        for label, schedule in schedules.schedules.items():
            schedule_arn = str(self.value(schedule, schedule.schedule_arn))
            self.assume(
                "scheduler",
                schedules.role,
                "scheduler.amazonaws.com",
                **{"aws:SourceAccount": ACCOUNT, "aws:SourceArn": schedule_arn},
            )
            if label == "Training" and pipelines.launcher is not None:
                function = pipelines.launcher.function
                arn = str(self.value(function, function.function_arn))
                self.add(
                    "scheduler",
                    role,
                    ["lambda:InvokeFunction"],
                    arn,
                    f"schedule {label} invokes the launcher",
                )
            else:
                pipeline = pipelines.training if label == "Training" else pipelines.inference
                arn = str(self.value(pipeline.pipeline, pipeline.pipeline.pipeline_arn))
                self.add(
                    "scheduler",
                    role,
                    ["sagemaker:StartPipelineExecution"],
                    arn,
                    f"schedule {label} starts its pipeline",
                )
            # Undelivered starts go to the DLQ, sent with the schedule's role.
            self.dead_letters(
                "scheduler",
                role,
                schedules.dead_letter_queue,
                sends=f"schedule {label} dead-letters an undelivered start",
                encrypts=f"schedule {label} dead-letters to the encrypted DLQ",
            )

    def launcher(self) -> None:
        pipelines = self.app.platform.pipelines
        assert pipelines is not None
        launcher = pipelines.launcher
        if launcher is None:
            return
        role = self.role_arn(launcher.role)
        self.assume("launcher", launcher.role, "lambda.amazonaws.com")
        pipeline = pipelines.training.pipeline
        self.add(
            "launcher",
            role,
            ["sagemaker:DescribePipeline"],
            str(self.value(pipeline, pipeline.pipeline_arn)),
            "reads the training step",
        )
        job = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:training-job/{launcher.job_name_prefix.lower()}-20260101t020000"
        self.add(
            "launcher",
            role,
            ["sagemaker:CreateTrainingJob", "sagemaker:AddTags"],
            job,
            "starts the scheduled training job",
        )
        self.add(
            "launcher",
            role,
            ["iam:PassRole"],
            self.role_arn(pipelines.roles.execution),
            "passes the execution role",
            **{"iam:PassedToService": "sagemaker.amazonaws.com"},
        )
        group = str(self.value(launcher.log_group, launcher.log_group.log_group_arn))
        self.add(
            "launcher",
            role,
            ["logs:CreateLogStream", "logs:PutLogEvents"],
            group.removesuffix("*") + "log-stream:2026/01/01/[$LATEST]abc",
            "Lambda writes the function's logs",
        )
        # A failed asynchronous invocation is sent to the DLQ with the function's role
        # (Lambda developer guide, "Dead-letter queues": the execution role needs
        # sqs:SendMessage, and the queue's key for an encrypted queue).
        self.dead_letters(
            "launcher",
            role,
            launcher.dead_letter_queue,
            sends="Lambda dead-letters a failed invocation",
            encrypts="Lambda dead-letters to the encrypted DLQ",
        )

    def tracking(self) -> None:
        tracking = self.app.platform.tracking
        backend = tracking.backend
        storage = self.app.platform.storage
        artifacts_key = (
            self.key_arn(storage.artifacts.key) if storage.artifacts.key is not None else None
        )
        bucket = str(self.value(storage, storage.artifacts.bucket.bucket_name))
        object_key = f"{storage.artifacts.root}/1/run/artifacts/model.pkl"
        if tracking.mode in ("serverless", "managed"):
            role = self.role_arn(backend.role)
            self.assume("mlflow-server", backend.role, "sagemaker.amazonaws.com")
            self.s3_object(
                "mlflow-server",
                role,
                bucket,
                object_key,
                artifacts_key,
                write=True,
                why="SageMaker's MLflow reads and writes artifacts as its role",
            )
            if self.app.settings.tracking.automatic_model_registration:
                base = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}"
                self.add(
                    "mlflow-server",
                    role,
                    [
                        "sagemaker:CreateModelPackageGroup",
                        "sagemaker:DescribeModelPackageGroup",
                        "sagemaker:AddTags",
                    ],
                    f"{base}:model-package-group/iris-model-a1b2c3",
                    "automatic model registration",
                )
                self.add(
                    "mlflow-server",
                    role,
                    ["sagemaker:CreateModelPackage", "sagemaker:UpdateModelPackage"],
                    f"{base}:model-package/iris-model-a1b2c3/1",
                    "automatic model registration",
                )
        elif isinstance(backend, FargateMlflow):
            task = backend.task_definition
            task_role = self.role_arn(task.task_role)
            self.assume("ecs-task", task.task_role, "ecs-tasks.amazonaws.com")
            self.s3_object(
                "ecs-task",
                task_role,
                bucket,
                object_key,
                artifacts_key,
                write=True,
                why="the MLflow server proxies artifacts",
            )
            execution = task.execution_role
            assert execution is not None  # a task that pulls from ECR always has one
            exec_arn = self.role_arn(execution)
            self.assume("ecs-execution", execution, "ecs-tasks.amazonaws.com")
            self.add(
                "ecs-execution", exec_arn, ["ecr:GetAuthorizationToken"], "*", "ECS pulls the image"
            )
            # ContainerImage.from_asset: the bootstrap stack's container-asset repository.
            repo = (
                f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/"
                f"cdk-hnb659fds-container-assets-{ACCOUNT}-{REGION}"
            )
            self.add(
                "ecs-execution",
                exec_arn,
                [
                    "ecr:BatchCheckLayerAvailability",
                    "ecr:GetDownloadUrlForLayer",
                    "ecr:BatchGetImage",
                ],
                repo,
                "ECS pulls the image",
            )
            group = str(self.value(backend.log_group, backend.log_group.log_group_arn))
            self.add(
                "ecs-execution",
                exec_arn,
                ["logs:CreateLogStream", "logs:PutLogEvents"],
                group.removesuffix("*") + "log-stream:mlflow/mlflow/abc",
                "awslogs driver",
            )
            secrets = [
                backend.database.secret,
                backend.server_db_secret,
                backend.admin_secret,
                backend.client_secret,
            ]
            for secret in secrets:
                if secret is not None:
                    self.secret_value(
                        "ecs-execution", exec_arn, secret, "ECS injects the container secrets"
                    )
        elif isinstance(backend, Ec2Mlflow):
            role = self.role_arn(backend.role)
            self.assume("ec2-instance", backend.role, "ec2.amazonaws.com")
            self.s3_object(
                "ec2-instance",
                role,
                bucket,
                object_key,
                artifacts_key,
                write=True,
                why="the MLflow server proxies artifacts",
            )
            for secret in (
                backend.database.secret,
                backend.server_db_secret,
                backend.admin_secret,
                backend.client_secret,
            ):
                assert secret is not None
                self.secret_value("ec2-instance", role, secret, "fetch-secrets at every start")
            zone = str(self.value(backend.zone, backend.zone.hosted_zone_arn))
            self.add(
                "ec2-instance",
                role,
                ["route53:ChangeResourceRecordSets"],
                zone,
                "register-dns at every start",
            )
            entrypoint = backend.entrypoint
            self.add(
                "ec2-instance",
                role,
                ["s3:GetObject"],
                f"arn:aws:s3:::{self.value(entrypoint, entrypoint.s3_bucket_name)}/"
                f"{self.value(entrypoint, entrypoint.s3_object_key)}",
                "user data downloads the entrypoint",
            )
            group = str(self.value(backend.log_group, backend.log_group.log_group_arn))
            self.add(
                "ec2-instance",
                role,
                ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                group.removesuffix("*") + "log-stream:i-0123456789abcdef0",
                "CloudWatch agent",
            )
            self.add(
                "ec2-instance",
                role,
                [
                    "ssm:UpdateInstanceInformation",
                    "ssmmessages:CreateControlChannel",
                    "ssmmessages:OpenControlChannel",
                ],
                "*",
                "Session Manager",
            )

    def mlflow_rotation(self) -> None:
        """The MLflow users' secret rotation function (fargate with basic auth, ec2), and the
        weekly task replacement that picks up rotated database credentials (fargate)."""
        backend = self.app.platform.tracking.backend
        if isinstance(backend, FargateMlflow):
            schedule = backend.restart_schedule
            cfn = schedule.node.default_child
            assert isinstance(cfn, scheduler.CfnSchedule)
            target = cfn.target
            assert isinstance(target, scheduler.CfnSchedule.TargetProperty)
            role_arn = str(self.value(schedule, target.role_arn))
            # Scheduler assumes the role with the schedule group's ARN as aws:SourceArn (the
            # execution-role trust policy in the Scheduler user guide, setting-up.html).
            group_arn = f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule-group/default"
            self.add(
                "scheduler",
                "scheduler.amazonaws.com",
                ["sts:AssumeRole"],
                role_arn,
                "scheduler.amazonaws.com assumes the role",
                **{"aws:SourceAccount": ACCOUNT, "aws:SourceArn": group_arn},
            )
            service = backend.service
            self.add(
                "scheduler",
                role_arn,
                ["ecs:UpdateService"],
                str(self.value(service, service.service_arn)),
                "the weekly restart replaces the MLflow tasks",
            )
        if not isinstance(backend, FargateMlflow | Ec2Mlflow) or backend.user_rotation is None:
            return
        rotation = backend.user_rotation
        assert backend.admin_secret is not None and backend.client_secret is not None
        role = self.role_arn(rotation.role)
        self.assume("mlflow-rotation", rotation.role, "lambda.amazonaws.com")
        admin = str(self.value(backend, backend.admin_secret.secret_arn))
        for secret in (backend.admin_secret, backend.client_secret):
            self.add(
                "mlflow-rotation",
                role,
                [
                    "secretsmanager:DescribeSecret",
                    "secretsmanager:GetSecretValue",
                    "secretsmanager:PutSecretValue",
                    "secretsmanager:UpdateSecretVersionStage",
                ],
                str(self.value(secret, secret.secret_arn)),
                "the four rotation steps of the secret",
            )
            key = self.secret_key_arn(str(self.value(secret, secret.secret_arn)))
            if key is not None:
                # Secrets Manager decrypts (GetSecretValue) and encrypts (PutSecretValue) with
                # the secret's customer key on the caller's behalf ("Secret encryption and
                # decryption": kms:Decrypt and kms:GenerateDataKey through Secrets Manager).
                self.add(
                    "mlflow-rotation",
                    role,
                    ["kms:Decrypt", "kms:GenerateDataKey"],
                    key,
                    "the rotation reads and writes the secret (its key)",
                    **{"kms:ViaService": SECRETS_VIA, "kms:CallerAccount": ACCOUNT},
                )
        self.add(
            "mlflow-rotation",
            role,
            ["secretsmanager:GetSecretValue"],
            admin,
            "setSecret authenticates to MLflow as the admin",
        )
        group = str(self.value(rotation.log_group, rotation.log_group.log_group_arn))
        self.add(
            "mlflow-rotation",
            role,
            ["logs:CreateLogStream", "logs:PutLogEvents"],
            group.removesuffix("*") + "log-stream:2026/01/01/[$LATEST]abc",
            "Lambda writes the function's logs",
        )
        self.add(
            "mlflow-rotation",
            role,
            ["ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces"],
            "*",
            "Lambda attaches the function to the VPC (AWSLambdaVPCAccessExecutionRole)",
        )

    def studio(self) -> None:
        studio = self.app.platform.studio
        if studio is None:
            return
        domain = studio.domain
        role = self.role_arn(studio.execution_role)
        storage = self.app.platform.storage
        key = self.key_arn(storage.key)
        self.assume("studio-user", studio.execution_role, "sagemaker.amazonaws.com")
        self.mlflow_client("studio-user", role, "a notebook")
        tracking = self.app.platform.tracking
        if tracking.mode in ("serverless", "managed"):
            server = str(self.value(tracking, tracking.backend.server_arn))
            # sagemaker_mlflow.presigned_url.get_presigned_url (plugin 0.5.0) opens the UI:
            # CreatePresignedMlflowAppUrl for an App, ...TrackingServerUrl for a server.
            ui = (
                ("sagemaker:DescribeMlflowApp", "sagemaker:CreatePresignedMlflowAppUrl")
                if tracking.mode == "serverless"
                else (
                    "sagemaker:DescribeMlflowTrackingServer",
                    "sagemaker:CreatePresignedMlflowTrackingServerUrl",
                )
            )
            self.add("studio-user", role, ui, server, "Studio's MLflow page")
        data = str(self.value(storage, storage.data.bucket.bucket_name))
        for prefix in studio.read_write_prefixes:
            self.s3_object(
                "studio-user",
                role,
                data,
                f"{prefix}notebook.csv",
                key,
                write=True,
                why="a notebook writes data",
            )
        for prefix in studio.read_prefixes:
            self.s3_object(
                "studio-user",
                role,
                data,
                f"{prefix}x.parquet",
                key,
                write=False,
                why="a notebook reads results",
            )
        domain_id = str(self.value(domain, domain.domain_id))
        base = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}"
        self.add(
            "studio-user",
            role,
            ["sagemaker:CreateApp", "sagemaker:DescribeApp", "sagemaker:DeleteApp"],
            f"{base}:app/{domain_id}/data-scientist/jupyterlab/default",
            "Studio starts an app",
        )
        self.add(
            "studio-user",
            role,
            ["sagemaker:CreateSpace", "sagemaker:DescribeSpace"],
            f"{base}:space/{domain_id}/my-space",
            "Studio creates a space",
        )
        self.add(
            "studio-user",
            role,
            ["logs:CreateLogStream", "logs:PutLogEvents"],
            f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/sagemaker/studio:"
            f"log-stream:{domain_id}/data-scientist/JupyterLab/default/LifecycleConfigOnStart",
            "Studio writes the lifecycle script's output",
        )
        self.add(
            "studio-user",
            role,
            ["kms:CreateGrant"],
            key,
            "a space's encrypted volume",
            **{"kms:GrantIsForAWSResource": "true"},
        )
        self.studio_cleanup()

    def studio_cleanup(self) -> None:
        studio = self.app.platform.studio
        assert studio is not None
        domain = studio.domain
        domain_id = str(self.value(domain, domain.domain_id))
        base = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}"
        cleanup = studio.cleanup
        crole = self.role_arn(cleanup.role)
        self.assume("studio-cleanup", cleanup.role, "lambda.amazonaws.com")
        domain_arn = str(self.value(domain, domain.domain.attr_domain_arn))
        vpc = self.app.platform.network.vpc if self.app.platform.network is not None else None
        # SageMaker tags what it creates for a domain (home EFS, its NFS security groups) with
        # ManagedByAmazonSageMakerResource = the domain's ARN.
        group = str(self.value(cleanup.log_group, cleanup.log_group.log_group_arn))
        self.add(
            "studio-cleanup",
            crole,
            ["logs:CreateLogStream", "logs:PutLogEvents"],
            group.removesuffix("*") + "log-stream:2026/01/01/[$LATEST]abc",
            "Lambda writes the function's logs",
        )
        # CloudFormation invokes the function asynchronously: an event whose invocations all
        # failed is sent to the DLQ with the function's role (as for the launcher).
        self.dead_letters(
            "studio-cleanup",
            crole,
            cleanup.dead_letter_queue,
            sends="Lambda dead-letters a failed teardown event",
            encrypts="Lambda dead-letters to the encrypted DLQ",
        )
        owned = {"aws:ResourceTag/ManagedByAmazonSageMakerResource": domain_arn}
        for action in sorted(CODE_CALLS["studio-cleanup"]):
            service, verb = action.split(":")
            context: dict[str, str] = {}
            if verb.startswith("List"):
                resource = "*"
            elif service == "lambda":  # itself, by the ARN its context reports (unqualified)
                resource = str(self.value(cleanup.function, cleanup.function.function_arn))
            elif verb == "DescribeSecurityGroups":
                if not cleanup.deletes_home_efs:
                    continue
                resource = "*"
            elif service == "sagemaker" and verb.endswith("Domain"):
                if not cleanup.deletes_home_efs:
                    continue  # the domain is left to CloudFormation (its home EFS retained)
                resource = domain_arn
            elif service == "sagemaker":
                # Any verb on an app, space or user profile of the domain (Delete*, Describe*).
                kinds = {
                    "UserProfile": f"{base}:user-profile/{domain_id}/data-scientist",
                    "Space": f"{base}:space/{domain_id}/my-space",
                    "App": f"{base}:app/{domain_id}/data-scientist/jupyterlab/default",
                }
                resource = next(arn for kind, arn in kinds.items() if verb.endswith(kind))
            else:
                if not cleanup.deletes_home_efs or vpc is None:
                    continue
                resource = f"arn:aws:ec2:{REGION}:{ACCOUNT}:security-group/sg-0123456789abcdef0"
                context = {**owned, "ec2:Vpc": str(self.value(vpc, vpc.vpc_arn))}
            self.add("studio-cleanup", crole, [action], resource, "Studio teardown", **context)

    def delivery(self) -> None:
        """S3 server access logs and VPC flow logs, delivered by AWS services."""
        # Every bucket with server access logging, as its template configures it.
        for stack, logical_id, resource in self.r.resources("AWS::S3::Bucket"):
            logging = resource.get("Properties", {}).get("LoggingConfiguration")
            if logging is None:
                continue
            target = self.r.resolve(stack, logging["DestinationBucketName"])
            prefix = logging.get("LogFilePrefix", "")
            source_arn = self.r.get_att(stack, logical_id, "Arn")
            self.add(
                "s3-log-delivery",
                "logging.s3.amazonaws.com",
                ["s3:PutObject"],
                f"arn:aws:s3:::{target}/{prefix}2026-01-01-00-00-00-ABCDEF",
                f"S3 delivers {logical_id}'s server access logs",
                **{"aws:SourceArn": source_arn, "aws:SourceAccount": ACCOUNT},
            )
        network = self.app.platform.network
        if network is not None:
            flow = network.vpc.node.find_child("FlowLog")
            role = getattr(flow, "iam_role", None)
            if role is not None:
                group = str(self.value(flow, flow.log_group.log_group_arn))  # type: ignore[attr-defined]
                self.assume("vpc-flow-logs", role, "vpc-flow-logs.amazonaws.com")
                self.add(
                    "vpc-flow-logs",
                    self.role_arn(role),
                    ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                    group.removesuffix("*") + "log-stream:eni-0123-all",
                    "flow log delivery",
                )

    def cdk_handlers(self) -> None:
        """CDK's own custom-resource handlers (mlops_cdk/constructs/cdk_providers.py): Lambda
        sends an event whose invocations all failed to the stack's dead-letter queue with the
        function's role (Lambda developer guide, "Dead-letter queues": sqs:SendMessage, and the
        queue's key for an encrypted queue)."""
        for stack in self.app.platform.stacks:
            queue = stack.node.try_find_child("CdkHandlersDeadLetterQueue")
            for provider in cdk_providers(stack):
                assert isinstance(queue, sqs.Queue), f"{stack.stack_name} has no handler DLQ"
                assert queue.encryption_master_key is not None
                self.dead_letters(
                    "cdk-handler",
                    str(self.value(provider, provider.role_arn)),
                    queue,
                    sends=f"Lambda dead-letters a failed {provider.node.id} event",
                    encrypts=f"Lambda dead-letters a {provider.node.id} event to the encrypted DLQ",
                )


def expected_calls(app: SynthesizedApp, resolver: Resolver) -> tuple[list[Call], dict[str, str]]:
    """Every call of every actor of ``app`` (deployed form), and each actor's principal."""
    builder = _Builder(app, resolver)
    builder.pipelines()
    builder.alarms()
    builder.tracking()
    builder.mlflow_rotation()
    builder.studio()
    builder.cdk_handlers()
    builder.delivery()
    return builder.calls, builder.actors
