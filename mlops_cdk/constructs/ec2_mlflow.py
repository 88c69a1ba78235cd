"""Self-hosted tracking on one EC2 instance (auto-scaling group of 1) with RDS MySQL."""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_autoscaling as autoscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_rds as rds
from aws_cdk import aws_route53 as route53
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from mlops_cdk import nag
from mlops_cdk.checkov import skip
from mlops_cdk.constructs.data_stores import ObjectStore
from mlops_cdk.constructs.database_monitoring import MONITORING_INTERVAL, ack_monitoring_role
from mlops_cdk.constructs.ec2_mlflow_boot import boot_user_data
from mlops_cdk.constructs.encrypted_secret import secrets_key
from mlops_cdk.constructs.failure_alarms import encrypted_alarm_topic
from mlops_cdk.constructs.secret_rotation import (
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

# AWS's minimal managed policies for Session Manager and the CloudWatch agent.
SSM_CORE_POLICY = "AmazonSSMManagedInstanceCore"
CLOUDWATCH_AGENT_POLICY = "CloudWatchAgentServerPolicy"
SIGNAL_TIMEOUT = Duration.minutes(20)


def _cpu_type(instance_type: str) -> ec2.AmazonLinuxCpuType:
    family = instance_type.split(".", 1)[0]
    return ec2.AmazonLinuxCpuType.ARM_64 if "g" in family[1:] else ec2.AmazonLinuxCpuType.X86_64


class Ec2Mlflow(Construct):
    """MLflow as a systemd service on Amazon Linux 2023, found at a private DNS name.

    The instance registers its private IP in a private hosted zone at boot, so the tracking
    URI survives a replacement. It installs the pinned MLflow from PyPI (needs NAT egress) and
    runs containers/tracking/entrypoint.py, the same start-up as the Fargate image.
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
        removal: RemovalPolicy,
        log_retention: logs.RetentionDays,
    ) -> None:
        super().__init__(scope, id)
        cfg = settings.ec2
        retain = removal == RemovalPolicy.RETAIN
        self._name = name
        self._artifacts = artifacts
        self._version = settings.server_mlflow_version

        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=vpc,
            description="MLflow server instance",
            allow_all_outbound=True,  # PyPI and AWS APIs through NAT
        )
        self._connections = ec2.Connections(
            security_groups=[self.security_group], default_port=ec2.Port.tcp(MLFLOW_PORT)
        )

        self.secrets_key = secrets_key(
            self, "SecretsKey", purpose=f"the MLflow secrets of {name}", removal=removal
        )
        # Database: RDS MySQL.
        self.database = rds.DatabaseInstance(
            self,
            "Database",
            engine=rds.DatabaseInstanceEngine.mysql(version=rds.MysqlEngineVersion.VER_8_4_7),
            instance_type=ec2.InstanceType(cfg.db_instance_type.removeprefix("db.")),
            credentials=rds.Credentials.from_generated_secret(
                "mlflow", encryption_key=self.secrets_key
            ),
            database_name=DATABASE_NAME,
            vpc=vpc,
            vpc_subnets=subnets,
            multi_az=cfg.db_multi_az,
            allocated_storage=cfg.db_storage_gib,
            storage_type=rds.StorageType.GP3,
            storage_encrypted=True,
            iam_authentication=True,
            monitoring_interval=MONITORING_INTERVAL,
            backup_retention=Duration.days(cfg.db_backup_days),
            # RETAIN, not SNAPSHOT, with deletion protection: see FargateMlflow's database.
            deletion_protection=retain,
            removal_policy=removal,
            publicly_accessible=False,
        )
        self.database.connections.allow_default_port_from(self.security_group, "MLflow server")
        nag.ack(
            self.database,
            "AwsSolutions-RDS11",
            "The database admits only the MLflow instance's security group; a non-standard port "
            "would add no protection to a private database.",
        )
        ack_monitoring_role(self.database)
        if not cfg.db_multi_az:
            single_az = (
                "Single-AZ by choice outside prod to halve the cost; tracking.ec2.db_multi_az "
                "turns the standby on (prod sets it)."
            )
            nag.ack(self.database, "AwsSolutions-RDS3", single_az)
            skip(self.database, "CKV_AWS_157", single_az)
        db_secret = self.database.secret
        assert db_secret is not None
        retain_with_database(self.database, removal)
        self.server_db_secret = rotate_database(
            self,
            database=self.database,
            master_secret=db_secret,
            key=self.secrets_key,
            days=settings.secret_rotation_days,
            removal=removal,
        )
        self.admin_secret: secretsmanager.ISecret = generated_user_secret(
            self,
            "AdminSecret",
            username="admin",
            removal=removal,
            key=self.secrets_key,
            description=f"{name}: MLflow basic-auth admin (username, password)",
        )
        self.client_secret: secretsmanager.ISecret = generated_user_secret(
            self,
            "ClientSecret",
            username=CLIENT_USERNAME,
            removal=removal,
            key=self.secrets_key,
            description=f"{name}: MLflow basic-auth client user for jobs and notebooks",
        )

        # A stable private name for a replaceable instance.
        self.zone = route53.PrivateHostedZone(self, "Zone", zone_name=f"{name}.internal", vpc=vpc)
        self.host_name = f"mlflow.{name}.internal"

        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
            description="MLflow server instance: artifacts, its secrets, its DNS record, SSM",
            managed_policies=[
                iam.ManagedPolicy.from_aws_managed_policy_name(SSM_CORE_POLICY),
                iam.ManagedPolicy.from_aws_managed_policy_name(CLOUDWATCH_AGENT_POLICY),
            ],
        )
        for policy in (SSM_CORE_POLICY, CLOUDWATCH_AGENT_POLICY):
            nag.ack(
                self.role,
                f"AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/{policy}]",
                "AWS's minimal policy for Session Manager shell access and the CloudWatch agent, "
                "kept current by AWS as those agents change.",
            )
        grant_server_artifacts(artifacts, self.role)
        for secret in (db_secret, self.server_db_secret, self.admin_secret, self.client_secret):
            secret.grant_read(self.role)
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["route53:ChangeResourceRecordSets"], resources=[self.zone.hosted_zone_arn]
            )
        )
        entrypoint = s3_assets.Asset(self, "Entrypoint", path=str(CONTAINER_DIR / "entrypoint.py"))
        entrypoint.grant_read(self.role)
        # The finding names the bucket as the stack resolves it: tokens when environment-
        # agnostic, literals once the CLI supplies an account and region. Built from the asset.
        nag.ack_resource(
            self.role,
            entrypoint.bucket.arn_for_objects("*"),
            "CDK's asset grant: the instance downloads its entrypoint script from the bootstrap "
            "assets bucket, whose object keys are content hashes.",
        )
        self.entrypoint = entrypoint
        self.log_group = logs.LogGroup(
            self, "Logs", retention=log_retention, removal_policy=removal
        )

        user_data = boot_user_data(
            stack=Stack.of(self),
            entrypoint_url=entrypoint.s3_object_url,
            secret_arns={
                "DB": db_secret.secret_arn,
                "SERVER": self.server_db_secret.secret_arn,
                "ADMIN": self.admin_secret.secret_arn,
                "CLIENT": self.client_secret.secret_arn,
            },
            zone_id=self.zone.hosted_zone_id,
            host_name=self.host_name,
            artifact_uri=artifacts.uri(),
            mlflow_version=self._version,
            log_group_name=self.log_group.log_group_name,
        )
        self.group = autoscaling.AutoScalingGroup(
            self,
            "Group",
            vpc=vpc,
            vpc_subnets=subnets,
            instance_type=ec2.InstanceType(cfg.instance_type),
            machine_image=ec2.MachineImage.latest_amazon_linux2023(
                cpu_type=_cpu_type(cfg.instance_type)
            ),
            min_capacity=1,
            max_capacity=1,
            role=self.role,
            security_group=self.security_group,
            user_data=user_data,
            require_imdsv2=True,
            instance_monitoring=autoscaling.Monitoring.DETAILED,
            key_pair=ec2.KeyPair.from_key_pair_name(self, "KeyPair", cfg.key_pair_name)
            if cfg.key_pair_name
            else None,
            block_devices=[
                autoscaling.BlockDevice(
                    device_name="/dev/xvda",
                    volume=autoscaling.BlockDeviceVolume.ebs(
                        cfg.volume_gib,
                        encrypted=True,
                        volume_type=autoscaling.EbsDeviceVolumeType.GP3,
                    ),
                )
            ],
            health_checks=autoscaling.HealthChecks.ec2(grace_period=Duration.minutes(10)),
            # CloudFormation waits for the boot script's cfn-signal (CreationPolicy) and, on an
            # update that replaces the instance, for the new one's (rolling UpdatePolicy with
            # WaitOnResourceSignals): a failed boot fails the deploy instead of leaving a group
            # with no MLflow. 20 minutes: package installs, MLflow from PyPI, DB migrations.
            signals=autoscaling.Signals.wait_for_all(timeout=SIGNAL_TIMEOUT),
            update_policy=autoscaling.UpdatePolicy.rolling_update(),
        )
        nag.ack(
            self.group,
            "AwsSolutions-AS3",
            "A group of one: its only scaling events are replacements of an unhealthy instance, "
            "which the status-check alarm already reports.",
        )
        # An EXIT trap sends the script's exit code: 0 once MLflow answers, else the failure.
        user_data.add_signal_on_exit_command(self.group)
        self.group.node.add_dependency(self.database)
        self.alarms = self._alarms(cfg.cpu_alarm_percent, cfg.disk_alarm_percent)
        # Alarms notify an encrypted topic (subscribe to AlarmTopicArn); without an action
        # they would only change colour in the console.
        self.alarm_key, self.alarm_topic = encrypted_alarm_topic(
            Construct(self, "AlarmTopic"),
            purpose="the MLflow instance's alarm topic",
            display_name="MLflow instance alarms",
            removal=removal,
        )
        for alarm in self.alarms:
            alarm.add_alarm_action(cw_actions.SnsAction(self.alarm_topic))
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
            after=[self.group],
            log_retention=log_retention,
            removal=removal,
        )

        CfnOutput(self, "HostName", value=self.host_name)
        CfnOutput(self, "AlarmTopicArn", value=self.alarm_topic.topic_arn)
        CfnOutput(self, "AutoScalingGroupName", value=self.group.auto_scaling_group_name)
        CfnOutput(self, "DatabaseSecretArn", value=db_secret.secret_arn)
        CfnOutput(self, "ClientCredentialsSecretArn", value=self.client_secret.secret_arn)
        CfnOutput(self, "AdminCredentialsSecretArn", value=self.admin_secret.secret_arn)

    def _alarms(self, cpu_percent: int, disk_percent: int) -> list[cloudwatch.Alarm]:
        group = {"AutoScalingGroupName": self.group.auto_scaling_group_name}

        def alarm(
            id: str, metric: cloudwatch.Metric, threshold: float, description: str
        ) -> cloudwatch.Alarm:
            return metric.create_alarm(
                self,
                id,
                threshold=threshold,
                evaluation_periods=3,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                alarm_description=description,
            )

        return [
            alarm(
                "StatusCheckAlarm",
                cloudwatch.Metric(
                    namespace="AWS/EC2",
                    metric_name="StatusCheckFailed",
                    dimensions_map=group,
                    statistic="Maximum",
                    period=Duration.minutes(1),
                ),
                1,
                "The MLflow instance fails its EC2 status checks (the group replaces it).",
            ),
            alarm(
                "CpuAlarm",
                cloudwatch.Metric(
                    namespace="AWS/EC2",
                    metric_name="CPUUtilization",
                    dimensions_map=group,
                    statistic="Average",
                    period=Duration.minutes(5),
                ),
                cpu_percent,
                "The MLflow instance is CPU-bound; consider a larger tracking.ec2.instance_type.",
            ),
            alarm(
                "DiskAlarm",
                cloudwatch.Metric(
                    namespace="CWAgent",
                    metric_name="disk_used_percent",
                    dimensions_map=group,
                    statistic="Maximum",
                    period=Duration.minutes(5),
                ),
                disk_percent,
                "The MLflow instance's root volume is filling up (tracking.ec2.volume_gib).",
            ),
        ]

    @property
    def tracking_uri(self) -> str:
        return f"http://{self.host_name}:{MLFLOW_PORT}"

    @property
    def client_environment(self) -> Mapping[str, str]:
        """The URI and the basic-auth client credentials secret."""
        return {
            TRACKING_URI_ENV: self.tracking_uri,
            CREDENTIALS_SECRET_ENV: self.client_secret.secret_arn,
        }

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
    def connections(self) -> ec2.Connections | None:
        """The instance on the MLflow port (see ``TrackingBackend.connections``)."""
        return self._connections

    def grant_use(self, grantee: iam.IGrantable) -> iam.Grant:
        """Read the client credentials secret and the artifacts prefix and key."""
        secret = self.client_secret.grant_read(grantee)
        return secret.combine(self._artifacts.grant_read_write(grantee))
