"""Self-hosted tracking on ECS Fargate: MLflow behind an internal ALB, Aurora Serverless v2."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from aws_cdk import CfnOutput, Duration, RemovalPolicy, SecretValue
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_rds as rds
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from mlops_cdk.checkov import skip
from mlops_cdk.constructs.database_monitoring import MONITORING_INTERVAL, ack_monitoring_role
from mlops_cdk.constructs.encrypted_secret import KeyEncryptedSecret, secrets_key
from mlops_cdk.settings import TrackingSettings
from mlops_cdk.stacks.network import NetworkStack
from mlops_cdk.stacks.storage import StorageStack
from mlops_cdk.tracking_backend import CREDENTIALS_SECRET_ENV, TRACKING_URI_ENV

CONTAINER_DIR = Path(__file__).resolve().parents[2] / "containers" / "tracking"
MLFLOW_PORT = 5000
DATABASE_NAME = "mlflow"
CLIENT_USERNAME = "mlflow-client"


def generated_user_secret(
    scope: Construct,
    id: str,
    *,
    username: str,
    description: str,
    removal: RemovalPolicy,
    key: kms.IKey,
) -> secretsmanager.Secret:
    """A Secrets Manager secret ``{"username": ..., "password": <generated>}``, encrypted with
    ``key`` (``grant_read`` also grants kms:Decrypt through Secrets Manager)."""
    return KeyEncryptedSecret(
        scope,
        id,
        key=key,
        description=description,
        generate_secret_string=secretsmanager.SecretStringGenerator(
            secret_string_template=json.dumps({"username": username}),
            generate_string_key="password",
            exclude_punctuation=True,
            password_length=32,
        ),
        removal_policy=removal,
    )


def retain_with_database(
    database: rds.DatabaseCluster | rds.DatabaseInstance, removal: RemovalPolicy
) -> None:
    """What a database needs to stay usable follows the database's removal policy.

    CDK gives the database's subnet group (and a cluster's instances) its policy, but deletes
    the generated master secret with the stack: a retained database would lose its
    credentials. And a retained database keeps its network interfaces in its security groups,
    so deleting those would fail the stack's deletion or a failed create's rollback.
    """
    secret = database.node.find_child("Secret")  # CDK's DatabaseSecret (``.secret`` is the
    assert isinstance(secret, secretsmanager.Secret)  # attachment that wraps it)
    secret.apply_removal_policy(removal)
    for group in database.connections.security_groups:
        group.apply_removal_policy(removal)


class FargateMlflow(Construct):
    """MLflow server tasks on Fargate in private subnets, reachable through an internal ALB.

    Authentication: MLflow basic auth (admin and client users whose passwords live in Secrets
    Manager) or, when ``fargate.oidc`` is set, ALB OIDC in front of an unauthenticated server.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        name: str,
        settings: TrackingSettings,
        storage: StorageStack,
        network: NetworkStack,
        removal: RemovalPolicy,
        log_retention: logs.RetentionDays,
    ) -> None:
        super().__init__(scope, id)
        fargate = settings.fargate
        vpc, subnets = network.vpc, network.private_subnets
        retain = removal == RemovalPolicy.RETAIN
        self.deletion_protection = retain
        self._name = name
        self._storage = storage
        self._version = settings.server_mlflow_version
        self.basic_auth = fargate.oidc is None

        self.secrets_key = secrets_key(
            self, "SecretsKey", purpose=f"the MLflow secrets of {name}", removal=removal
        )
        # Database: Aurora Serverless v2 PostgreSQL; 0 ACU min capacity pauses it when idle.
        self.database_security_group = ec2.SecurityGroup(
            self,
            "DatabaseSecurityGroup",
            vpc=vpc,
            description="MLflow database",
            allow_all_outbound=False,
        )
        self.database = rds.DatabaseCluster(
            self,
            "Database",
            engine=rds.DatabaseClusterEngine.aurora_postgres(
                version=rds.AuroraPostgresEngineVersion.VER_17_7
            ),
            credentials=rds.Credentials.from_generated_secret(
                "mlflow", encryption_key=self.secrets_key
            ),
            default_database_name=DATABASE_NAME,
            writer=rds.ClusterInstance.serverless_v2("Writer"),
            readers=(
                [rds.ClusterInstance.serverless_v2("Reader", scale_with_writer=True)]
                if fargate.db_multi_az
                else None
            ),
            serverless_v2_min_capacity=fargate.db_min_capacity,
            serverless_v2_max_capacity=fargate.db_max_capacity,
            vpc=vpc,
            vpc_subnets=subnets,
            security_groups=[self.database_security_group],
            storage_encrypted=True,
            iam_authentication=True,
            monitoring_interval=MONITORING_INTERVAL,
            backup=rds.BackupProps(retention=Duration.days(fargate.db_backup_days)),
            # Deletion protection with RETAIN, not SNAPSHOT: CloudFormation applies the
            # DeletionPolicy also when it rolls back a failed create, and a protected cluster it
            # must delete fails that rollback (ROLLBACK_FAILED); RETAIN keeps it instead
            # (docs/tracking.md, "A failed first deploy in prod").
            deletion_protection=retain,
            removal_policy=removal,
        )
        db_secret = self.database.secret
        assert db_secret is not None  # from_generated_secret always makes one
        retain_with_database(self.database, removal)

        # Users of MLflow basic auth; ECS injects them as container secrets.
        secrets = {
            "DB_HOST": ecs.Secret.from_secrets_manager(db_secret, "host"),
            "DB_PORT": ecs.Secret.from_secrets_manager(db_secret, "port"),
            "DB_USERNAME": ecs.Secret.from_secrets_manager(db_secret, "username"),
            "DB_PASSWORD": ecs.Secret.from_secrets_manager(db_secret, "password"),
        }
        self.admin_secret: secretsmanager.ISecret | None = None
        self.client_secret: secretsmanager.ISecret | None = None
        if self.basic_auth:
            self.admin_secret = generated_user_secret(
                self,
                "AdminSecret",
                username="admin",
                removal=removal,
                key=self.secrets_key,
                description=f"{name}: MLflow basic-auth admin (username, password)",
            )
            self.client_secret = generated_user_secret(
                self,
                "ClientSecret",
                username=CLIENT_USERNAME,
                removal=removal,
                key=self.secrets_key,
                description=f"{name}: MLflow basic-auth client user for jobs and notebooks",
            )
            secrets |= {
                "MLFLOW_AUTH_ADMIN_USERNAME": ecs.Secret.from_secrets_manager(
                    self.admin_secret, "username"
                ),
                "MLFLOW_AUTH_ADMIN_PASSWORD": ecs.Secret.from_secrets_manager(
                    self.admin_secret, "password"
                ),
                "MLFLOW_CLIENT_USERNAME": ecs.Secret.from_secrets_manager(
                    self.client_secret, "username"
                ),
                "MLFLOW_CLIENT_PASSWORD": ecs.Secret.from_secrets_manager(
                    self.client_secret, "password"
                ),
            }

        # Load balancer: internal, private subnets; clients are let in through `connections`.
        self.load_balancer_security_group = ec2.SecurityGroup(
            self,
            "LoadBalancerSecurityGroup",
            vpc=vpc,
            description="MLflow internal load balancer",
            allow_all_outbound=False,
        )
        self.load_balancer = elbv2.ApplicationLoadBalancer(
            self,
            "LoadBalancer",
            vpc=vpc,
            vpc_subnets=subnets,
            internet_facing=False,
            security_group=self.load_balancer_security_group,
            drop_invalid_header_fields=True,
        )
        https = fargate.certificate_arn is not None
        self.port = 443 if https else 80
        self.scheme = "https" if https else "http"
        self._connections = ec2.Connections(
            security_groups=[self.load_balancer_security_group],
            default_port=ec2.Port.tcp(self.port),
        )

        # Tasks.
        self.cluster = ecs.Cluster(
            self, "Cluster", vpc=vpc, container_insights_v2=ecs.ContainerInsights.ENABLED
        )
        self.task_definition = ecs.FargateTaskDefinition(
            self,
            "Task",
            cpu=fargate.cpu,
            memory_limit_mib=fargate.memory_mib,
            runtime_platform=ecs.RuntimePlatform(
                cpu_architecture=ecs.CpuArchitecture.X86_64,
                operating_system_family=ecs.OperatingSystemFamily.LINUX,
            ),
        )
        storage.grant_artifacts_read_write(self.task_definition.task_role)
        self.log_group = logs.LogGroup(
            self, "Logs", retention=log_retention, removal_policy=removal
        )
        allowed_hosts = [self.load_balancer.load_balancer_dns_name, *fargate.allowed_hosts]
        self.container = self.task_definition.add_container(
            "mlflow",
            image=ecs.ContainerImage.from_asset(
                str(CONTAINER_DIR),
                build_args={"MLFLOW_VERSION": self._version},
                platform=ecr_assets.Platform.LINUX_AMD64,
            ),
            logging=ecs.LogDrivers.aws_logs(stream_prefix="mlflow", log_group=self.log_group),
            # Plain settings only; every credential is in `secrets`.
            environment={
                "DB_ENGINE": "postgresql",
                "DB_NAME": DATABASE_NAME,
                "MLFLOW_ARTIFACTS_DESTINATION": storage.artifact_uri,
                "MLFLOW_AUTH": "basic" if self.basic_auth else "none",
                "MLFLOW_PORT": str(MLFLOW_PORT),
                "MLFLOW_SERVER_ALLOWED_HOSTS": ",".join(allowed_hosts),
            },
            secrets=secrets,
            port_mappings=[ecs.PortMapping(container_port=MLFLOW_PORT)],
            health_check=ecs.HealthCheck(
                command=[
                    "CMD",
                    "python",
                    "-c",
                    f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{MLFLOW_PORT}/health', timeout=4)",
                ],
                start_period=Duration.seconds(180),
            ),
        )
        self.service = ecs.FargateService(
            self,
            "Service",
            cluster=self.cluster,
            task_definition=self.task_definition,
            desired_count=fargate.min_tasks,
            vpc_subnets=subnets,
            assign_public_ip=False,
            circuit_breaker=ecs.DeploymentCircuitBreaker(rollback=True),
            min_healthy_percent=100,
            max_healthy_percent=200,
            health_check_grace_period=Duration.seconds(
                300
            ),  # a paused database takes ~15 s to resume
        )
        self.database.connections.allow_default_port_from(self.service, "MLflow tasks")

        target_group = elbv2.ApplicationTargetGroup(
            self,
            "Targets",
            vpc=vpc,
            port=MLFLOW_PORT,
            protocol=elbv2.ApplicationProtocol.HTTP,
            target_type=elbv2.TargetType.IP,
            targets=[self.service],
            deregistration_delay=Duration.seconds(30),
            health_check=elbv2.HealthCheck(
                path="/health", healthy_http_codes="200", interval=Duration.seconds(30)
            ),
        )
        forward = elbv2.ListenerAction.forward([target_group])
        default_action = forward
        if fargate.oidc is not None:
            oidc = fargate.oidc
            default_action = elbv2.ListenerAction.authenticate_oidc(
                issuer=oidc.issuer,
                authorization_endpoint=oidc.authorization_endpoint,
                token_endpoint=oidc.token_endpoint,
                user_info_endpoint=oidc.user_info_endpoint,
                client_id=oidc.client_id,
                client_secret=SecretValue.secrets_manager(oidc.client_secret_name),
                scope=oidc.scope,
                next=forward,
            )
        self.listener = self.load_balancer.add_listener(
            "Listener",
            port=self.port,
            protocol=elbv2.ApplicationProtocol.HTTPS if https else elbv2.ApplicationProtocol.HTTP,
            certificates=(
                [elbv2.ListenerCertificate.from_arn(fargate.certificate_arn)]
                if fargate.certificate_arn
                else None
            ),
            ssl_policy=elbv2.SslPolicy.RECOMMENDED_TLS if https else None,
            default_action=default_action,
            open=False,
        )

        self._acknowledge_checkov(https=https)
        self._autoscale(settings)

        CfnOutput(self, "LoadBalancerDnsName", value=self.load_balancer.load_balancer_dns_name)
        CfnOutput(self, "DatabaseSecretArn", value=db_secret.secret_arn)
        if self.client_secret is not None and self.admin_secret is not None:
            CfnOutput(self, "ClientCredentialsSecretArn", value=self.client_secret.secret_arn)
            CfnOutput(self, "AdminCredentialsSecretArn", value=self.admin_secret.secret_arn)

    def _acknowledge_checkov(self, *, https: bool) -> None:
        ack_monitoring_role(self.database)
        if not https:
            plain = (
                "HTTP inside the VPC only (internal load balancer, clients let in by security "
                "group) until tracking.fargate.certificate_arn is set: TLS needs a certificate "
                "for a name the clients use."
            )
            skip(self.listener, "CKV_AWS_2", plain)
            skip(self.listener, "CKV_AWS_103", plain)
        skip(
            self.load_balancer,
            "CKV_AWS_91",
            "Internal ALB in front of MLflow, whose request log goes to CloudWatch; ALB access "
            "logs need a region at synth and this app synthesizes environment-agnostic.",
        )

    def _autoscale(self, settings: TrackingSettings) -> None:
        fargate = settings.fargate
        scaling = self.service.auto_scale_task_count(
            min_capacity=fargate.min_tasks, max_capacity=fargate.max_tasks
        )
        scaling.scale_on_cpu_utilization(
            "Cpu", target_utilization_percent=fargate.target_cpu_percent
        )
        if fargate.scale_to_zero:
            scaling.scale_on_schedule(
                "StartOfWork",
                schedule=appscaling.Schedule.cron(
                    minute="0", hour=str(fargate.working_hours_start), week_day=fargate.working_days
                ),
                min_capacity=fargate.min_tasks,
                max_capacity=fargate.max_tasks,
            )
            scaling.scale_on_schedule(
                "EndOfWork",
                schedule=appscaling.Schedule.cron(minute="0", hour=str(fargate.working_hours_end)),
                min_capacity=0,
                max_capacity=0,
            )

    @property
    def tracking_uri(self) -> str:
        return f"{self.scheme}://{self.load_balancer.load_balancer_dns_name}"

    @property
    def client_environment(self) -> Mapping[str, str]:
        """The URI, and with basic auth the client credentials secret (not with ALB OIDC)."""
        environment = {TRACKING_URI_ENV: self.tracking_uri}
        if self.client_secret is not None:
            environment[CREDENTIALS_SECRET_ENV] = self.client_secret.secret_arn
        return environment

    @property
    def server_arn(self) -> str | None:
        return None

    @property
    def server_name(self) -> str:
        return self._name

    @property
    def mlflow_version(self) -> str:
        return self._version

    @property
    def artifact_uri(self) -> str:
        return self._storage.artifact_uri

    @property
    def role(self) -> iam.IRole:
        return self.task_definition.task_role

    @property
    def connections(self) -> ec2.Connections | None:
        """The load balancer on its listener port (see ``TrackingBackend.connections``)."""
        return self._connections

    def grant_use(self, grantee: iam.IGrantable) -> None:
        """Read the client credentials (basic auth) and the artifacts prefix and key.

        Clients reach artifacts through the server (``--serve-artifacts``); the S3 grant lets
        jobs also read artifacts directly, e.g. with a ``s3://`` model URI.
        """
        if self.client_secret is not None:
            self.client_secret.grant_read(grantee)
        self._storage.grant_artifacts_read_write(grantee)
