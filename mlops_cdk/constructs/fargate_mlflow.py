"""Self-hosted tracking on ECS Fargate: MLflow behind an internal ALB, Aurora Serverless v2."""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import CfnOutput, Duration, RemovalPolicy, SecretValue
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from mlops_cdk import nag
from mlops_cdk.checkov import skip
from mlops_cdk.constructs.aurora_database import aurora_database
from mlops_cdk.constructs.data_stores import ObjectStore
from mlops_cdk.constructs.database_monitoring import ack_monitoring_role
from mlops_cdk.constructs.encrypted_secret import secrets_key
from mlops_cdk.constructs.load_balancer_logs import log_access
from mlops_cdk.constructs.secret_rotation import (
    restart_tasks_weekly,
    rotate_database,
    rotate_mlflow_users,
)
from mlops_cdk.constructs.self_hosted_mlflow import (
    CLIENT_USERNAME,
    CONTAINER_DIR,
    DATABASE_NAME,
    MLFLOW_PORT,
    generated_user_secret,
    retain_with_database,
)
from mlops_cdk.settings import TrackingSettings
from mlops_cdk.tracking_backend import (
    CREDENTIALS_SECRET_ENV,
    TRACKING_URI_ENV,
    grant_server_artifacts,
)

LOAD_BALANCER_LOG_PREFIX = "mlflow-load-balancer"  # its folder in the access-log bucket


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
        artifacts: ObjectStore,
        vpc: ec2.IVpc,
        subnets: ec2.SubnetSelection,
        access_logs: s3.IBucket,
        removal: RemovalPolicy,
        log_retention: logs.RetentionDays,
    ) -> None:
        super().__init__(scope, id)
        fargate = settings.fargate
        self._name = name
        self._artifacts = artifacts
        self._version = settings.server_mlflow_version
        self.basic_auth = fargate.oidc is None

        self.secrets_key = secrets_key(
            self, "SecretsKey", purpose=f"the MLflow secrets of {name}", removal=removal
        )
        self.database = aurora_database(
            self,
            vpc=vpc,
            subnets=subnets,
            settings=fargate,
            secrets_key=self.secrets_key,
            removal=removal,
        )
        db_secret = self.database.secret
        assert db_secret is not None  # from_generated_secret always makes one
        retain_with_database(self.database, removal)
        self.server_db_secret = rotate_database(
            self,
            database=self.database,
            master_secret=db_secret,
            key=self.secrets_key,
            days=settings.secret_rotation_days,
            removal=removal,
        )

        secrets = self._container_secrets(db_secret, name=name, removal=removal)

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
        log_access(self.load_balancer, bucket=access_logs, prefix=LOAD_BALANCER_LOG_PREFIX)
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
        grant_server_artifacts(artifacts, self.task_definition.task_role)
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
                "MLFLOW_ARTIFACTS_DESTINATION": artifacts.uri(),
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
        nag.ack(
            self.task_definition,
            "AwsSolutions-ECS2",
            "Only non-secret settings (artifact URI, port, auth mode, host names) are plain "
            "environment; every credential is injected from Secrets Manager as an ECS secret.",
        )
        nag.ack(
            self.task_definition.obtain_execution_role(),
            "AwsSolutions-IAM5[Resource::*]",
            "CDK's execution role: ecr:GetAuthorizationToken has no resource-level permissions.",
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

        self._acknowledge(https=https)
        self._autoscale(settings)
        self.user_rotation = rotate_mlflow_users(
            self,
            vpc=vpc,
            subnets=subnets,
            server=self._connections,
            tracking_uri=self.tracking_uri,
            admin_secret=self.admin_secret,
            client_secret=self.client_secret,
            key=self.secrets_key,
            days=settings.secret_rotation_days,
            after=[self.service, self.listener],
            log_retention=log_retention,
            removal=removal,
        )

        CfnOutput(self, "LoadBalancerDnsName", value=self.load_balancer.load_balancer_dns_name)
        CfnOutput(self, "DatabaseSecretArn", value=db_secret.secret_arn)
        if self.client_secret is not None and self.admin_secret is not None:
            CfnOutput(self, "ClientCredentialsSecretArn", value=self.client_secret.secret_arn)
            CfnOutput(self, "AdminCredentialsSecretArn", value=self.admin_secret.secret_arn)

    def _container_secrets(
        self, db_secret: secretsmanager.ISecret, *, name: str, removal: RemovalPolicy
    ) -> dict[str, ecs.Secret]:
        """ECS's container secrets: the database's, with basic auth the MLflow users' too."""
        secrets = {
            "DB_HOST": ecs.Secret.from_secrets_manager(db_secret, "host"),
            "DB_PORT": ecs.Secret.from_secrets_manager(db_secret, "port"),
            "DB_USERNAME": ecs.Secret.from_secrets_manager(self.server_db_secret, "username"),
            "DB_PASSWORD": ecs.Secret.from_secrets_manager(self.server_db_secret, "password"),
            "DB_MASTER_USERNAME": ecs.Secret.from_secrets_manager(db_secret, "username"),
            "DB_MASTER_PASSWORD": ecs.Secret.from_secrets_manager(db_secret, "password"),
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
        return secrets

    def _acknowledge(self, *, https: bool) -> None:
        """What cdk-nag and checkov find that is deliberate here, with the reasons."""
        ack_monitoring_role(self.database)
        if not https:
            plain = (
                "HTTP inside the VPC only (internal load balancer, clients let in by security "
                "group) until tracking.fargate.certificate_arn is set: TLS needs a certificate "
                "for a name the clients use."
            )
            skip(self.listener, "CKV_AWS_2", plain)
            skip(self.listener, "CKV_AWS_103", plain)

    def _autoscale(self, settings: TrackingSettings) -> None:
        # Weekly task replacement, whatever the scaling: rotated database credentials.
        self.restart_schedule = restart_tasks_weekly(
            self, cluster=self.cluster, service=self.service
        )
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
        return self._artifacts.uri()

    @property
    def role(self) -> iam.IRole:
        return self.task_definition.task_role

    @property
    def connections(self) -> ec2.Connections | None:
        """The load balancer on its listener port (see ``TrackingBackend.connections``)."""
        return self._connections

    def grant_use(self, grantee: iam.IGrantable) -> iam.Grant:
        """Read the client credentials (basic auth) and the artifacts prefix and key.

        Clients reach artifacts through the server (``--serve-artifacts``); the S3 grant lets
        jobs also read artifacts directly, e.g. with a ``s3://`` model URI.
        """
        secret = self.client_secret.grant_read(grantee) if self.client_secret else None
        artifacts = self._artifacts.grant_read_write(grantee)
        return secret.combine(artifacts) if secret is not None else artifacts
