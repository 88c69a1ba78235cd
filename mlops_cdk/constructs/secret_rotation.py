"""Secrets Manager rotation of the self-hosted MLflow's secrets (tracking.mode fargate and ec2).

- The basic-auth users (admin, client): MLflow keeps their password hashes in its own auth
  database, so a new value in the secret alone would lock them out. A rotation function
  (lambda/mlflow_rotation) runs in the VPC next to the server and changes the password through
  MLflow's auth REST API in its setSecret step, as the admin.
- The database: the server connects as its own user, whose secret rotates with alternating
  users (``rotate_database``), so the credentials a running server holds stay valid until the
  next rotation; the master secret rotates single-user. Both with the rotation functions
  Secrets Manager publishes (CDK's ``add_rotation_multi_user``/``add_rotation_single_user``).

Runtime behaviour and the choice of schemes: docs/tracking.md, "Secret rotation".
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_rds as rds
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as scheduler_targets
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct, IDependable

from mlops_cdk.checkov import skip
from mlops_cdk.constructs.encrypted_secret import KeyEncryptedSecret
from mlops_cdk.nag import ack

CODE_DIR = Path(__file__).resolve().parents[2] / "lambda" / "mlflow_rotation"
HTTPS = 443
VPC_ACCESS = "service-role/AWSLambdaVPCAccessExecutionRole"
# The MLflow server's own database user. The alternating-users rotation function names the
# other user "<name>_clone" (get_alt_username in the SecretsManagerRDS*RotationMultiUser
# functions of aws-samples/aws-secrets-manager-rotation-lambdas); the entrypoint grants to
# this base name, which the clone is a member of (PostgreSQL) or copies (MySQL).
SERVER_DB_USER = "mlflow_server"
# The longest a server runs on the database credentials it read at start: fargate tasks are
# replaced and the ec2 unit restarts after this many days. Alternating users keep a
# credential valid until the rotation after the one that replaced it, so a rotation interval
# longer than this keeps every running server's credentials valid (settings require it).
RESTART_DAYS = 7


def latest_python_runtime() -> lambda_.Runtime:
    """The newest Python runtime this CDK knows (cdk-nag AwsSolutions-L1 asks for it)."""
    name = max(
        (r.name for r in lambda_.Runtime.ALL if r.family == lambda_.RuntimeFamily.PYTHON),
        key=lambda n: tuple(int(p) for p in n.removeprefix("python").split(".")),
    )
    return lambda_.Runtime(name, lambda_.RuntimeFamily.PYTHON)


class MlflowUserRotation(Construct):
    """One rotation function for the MLflow basic-auth users' secrets, and their schedules.

    The function reaches the server as clients do (``tracking_uri``; a security-group rule from
    its group to ``server`` on the server's port) and Secrets Manager on 443 (the interface
    endpoint, or the NAT). Secrets Manager invokes it with createSecret, setSecret, testSecret
    and finishSecret every ``every``.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        vpc: ec2.IVpc,
        subnets: ec2.SubnetSelection,
        server: ec2.IConnectable,
        tracking_uri: str,
        admin_secret: secretsmanager.ISecret,
        user_secrets: Sequence[secretsmanager.ISecret],
        key: kms.IKey,
        every: Duration,
        after: Sequence[IDependable],
        log_retention: logs.RetentionDays,
        removal: RemovalPolicy,
    ) -> None:
        super().__init__(scope, id)
        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=vpc,
            description="MLflow user secrets rotation function",
            allow_all_outbound=False,
        )
        # Secrets Manager through its interface endpoint or the NAT.
        self.security_group.add_egress_rule(
            ec2.Peer.any_ipv4(), ec2.Port.tcp(HTTPS), "Secrets Manager API"
        )
        self.security_group.connections.allow_to_default_port(
            server, "Rotation function to MLflow (auth API)"
        )
        self.log_group = logs.LogGroup(
            self, "LogGroup", retention=log_retention, removal_policy=removal
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="Rotates the MLflow basic-auth users' secrets through MLflow's auth API",
        )
        self.log_group.grant_write(self.role)
        # Network interfaces of a function in a VPC: the AWS managed policy CDK attaches to the
        # role it makes for any function in a VPC (aws-lambda Function: props.vpc adds
        # service-role/AWSLambdaVPCAccessExecutionRole), maintained by AWS as Lambda's needs
        # change; Lambda checks the role has these actions when it creates the function.
        self.role.add_managed_policy(iam.ManagedPolicy.from_aws_managed_policy_name(VPC_ACCESS))
        ack(
            self.role,
            f"AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/{VPC_ACCESS}]",
            "The network-interface actions (and log writes) Lambda needs for a function in a VPC, "
            "as CDK gives every function in a VPC; CreateNetworkInterface supports no resource "
            "scoping, and Lambda validates the role against these actions at CreateFunction.",
        )
        self.function = lambda_.Function(
            self,
            "Function",
            runtime=latest_python_runtime(),
            handler="mlflow_rotation.handler",
            code=lambda_.Code.from_asset(
                str(CODE_DIR), exclude=["__pycache__", "*.pyc", "test_*.py"]
            ),
            timeout=Duration.minutes(1),
            memory_size=256,
            role=self.role,
            log_group=self.log_group,
            vpc=vpc,
            vpc_subnets=subnets,
            security_groups=[self.security_group],
            # Two secrets; a throttled invocation is retried by Secrets Manager.
            reserved_concurrent_executions=2,
            environment_encryption=key,  # the environment names the admin secret
            description="Rotates the MLflow basic-auth users' secrets (auth REST API)",
            environment={
                "MLFLOW_TRACKING_URI": tracking_uri,
                "MLFLOW_ADMIN_SECRET_ARN": admin_secret.secret_arn,
            },
        )
        # Secrets Manager invokes the function (source_account below). CDK's rotation schedule
        # would grant that and the four step actions, but also secretsmanager:GetRandomPassword
        # on "*", which this function does not call (it makes its passwords with ``secrets``):
        # it grants only when given the function itself (RotationSchedule grants when the
        # function has a default child), so it gets a reference and the grants are made here.
        invoke = self.function.grant_invoke(iam.ServicePrincipal("secretsmanager.amazonaws.com"))
        target = lambda_.Function.from_function_attributes(
            self, "RotationTarget", function_arn=self.function.function_arn, same_environment=True
        )
        # setSecret of the client's secret authenticates as the admin: the admin secret's own
        # step actions below already let the function read it.
        self.schedules = []
        for secret in user_secrets:
            self.role.add_to_policy(
                iam.PolicyStatement(
                    actions=[
                        "secretsmanager:DescribeSecret",
                        "secretsmanager:GetSecretValue",
                        "secretsmanager:PutSecretValue",
                        "secretsmanager:UpdateSecretVersionStage",
                    ],
                    resources=[secret.secret_full_arn or f"{secret.secret_arn}-??????"],
                )
            )
            schedule = secret.add_rotation_schedule(
                "Rotation",
                rotation_lambda=target,
                automatically_after=every,
                # Not at deploy: the server may not answer yet. Secrets Manager then only runs
                # testSecret, with the current version (RotationSchedule, CDK reference).
                rotate_immediately_on_update=False,
            )
            invoke.apply_before(schedule)
            schedule.node.add_dependency(self.role)  # its step actions exist before a rotation
            for dependency in after:
                schedule.node.add_dependency(dependency)
            self.schedules.append(schedule)
            # CDK's rotation schedule grants the secret's actions but not its customer key,
            # which Secrets Manager uses on the function's behalf to read and write versions.
            if isinstance(secret, KeyEncryptedSecret):
                secret.grant_key_through_secrets_manager(
                    self.role, ["kms:Decrypt", "kms:GenerateDataKey"]
                )
        key.grant_decrypt(self.role)  # its environment is encrypted with the key
        # CDK lets secretsmanager.amazonaws.com invoke the function from any account; only
        # this account's Secrets Manager rotates these secrets.
        for child in self.function.node.children:
            if isinstance(child, lambda_.CfnPermission):
                child.source_account = Stack.of(self).account
        # "Secrets Manager invokes the Lambda rotation function as a synchronous invocation"
        # (Lambda developer guide, with-secrets-manager.html), and "If any rotation step fails,
        # Secrets Manager retries the entire rotation process multiple times" (Secrets Manager
        # user guide, rotate-secrets_lambda.html). Lambda sends only asynchronous invocations
        # to a dead-letter queue, so one here would never receive anything.
        skip(
            self.function,
            "CKV_AWS_116",
            "Secrets Manager invokes a rotation function synchronously (Lambda developer guide, "
            "with-secrets-manager.html) and retries a failed rotation itself; Lambda sends only "
            "asynchronous invocations to a dead-letter queue.",
        )


def rotate_mlflow_users(
    scope: Construct,
    *,
    vpc: ec2.IVpc,
    subnets: ec2.SubnetSelection,
    server: ec2.IConnectable,
    tracking_uri: str,
    admin_secret: secretsmanager.ISecret | None,
    client_secret: secretsmanager.ISecret | None,
    key: kms.IKey,
    days: int,
    after: Sequence[IDependable],
    log_retention: logs.RetentionDays,
    removal: RemovalPolicy,
) -> MlflowUserRotation | None:
    """Rotation of the basic-auth users' secrets every ``days``; None without basic auth."""
    if admin_secret is None or client_secret is None:
        return None
    return MlflowUserRotation(
        scope,
        "UserRotation",
        vpc=vpc,
        subnets=subnets,
        server=server,
        tracking_uri=tracking_uri,
        admin_secret=admin_secret,
        user_secrets=[admin_secret, client_secret],
        key=key,
        every=Duration.days(days),
        after=after,
        log_retention=log_retention,
        removal=removal,
    )


def rotate_database(
    scope: Construct,
    *,
    database: rds.DatabaseCluster | rds.DatabaseInstance,
    master_secret: secretsmanager.ISecret,
    key: kms.IKey,
    days: int,
    removal: RemovalPolicy,
) -> secretsmanager.ISecret:
    """The server's database-user secret, rotated with alternating users; the master rotated.

    Returns the server user's secret attached to ``database`` (host, port, engine, dbname and
    ``masterarn`` beside username and password: the shape the multi-user rotation function
    reads, CDK's RotationMultiUserOptions.secret). The entrypoint creates that user at start
    with the master credentials. CDK places both rotation functions in the database's subnets
    with a security group the database admits (DatabaseCluster.addRotationSingleUser).
    """
    server = rds.DatabaseSecret(
        scope,
        "ServerDatabaseSecret",
        username=SERVER_DB_USER,
        master_secret=master_secret,
        encryption_key=key,  # the backend's secrets key, like the master secret's
    )
    server.apply_removal_policy(removal)
    attached = server.attach(database)
    every = Duration.days(days)
    database.add_rotation_single_user(automatically_after=every)
    database.add_rotation_multi_user(
        "ServerUserRotation", secret=attached, automatically_after=every
    )
    return attached


def restart_tasks_weekly(
    scope: Construct, *, cluster: ecs.ICluster, service: ecs.FargateService
) -> scheduler.Schedule:
    """Replace the service's tasks every RESTART_DAYS (a rolling deployment, no downtime).

    EventBridge Scheduler's universal target calls ECS UpdateService with forceNewDeployment
    (https://docs.aws.amazon.com/scheduler/latest/UserGuide/managing-targets-universal.html);
    new tasks read the current secrets at start.
    """
    return scheduler.Schedule(
        scope,
        "WeeklyRestart",
        schedule=scheduler.ScheduleExpression.rate(Duration.days(RESTART_DAYS)),
        description="Replace the MLflow tasks so they pick up rotated database credentials",
        target=scheduler_targets.Universal(
            service="ecs",
            action="updateService",
            input=scheduler.ScheduleTargetInput.from_object(
                {
                    "Cluster": cluster.cluster_name,
                    "Service": service.service_name,
                    "ForceNewDeployment": True,
                }
            ),
            policy_statements=[
                iam.PolicyStatement(actions=["ecs:UpdateService"], resources=[service.service_arn])
            ],
            retry_attempts=10,
        ),
    )
