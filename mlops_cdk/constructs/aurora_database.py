"""The fargate mode's tracking database: Aurora Serverless v2 PostgreSQL in the private subnets."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_kms as kms
from aws_cdk import aws_rds as rds
from constructs import Construct

from mlops_cdk.constructs.database_monitoring import MONITORING_INTERVAL
from mlops_cdk.constructs.self_hosted_mlflow import DATABASE_NAME
from mlops_cdk.settings import FargateTrackingSettings


def aurora_database(
    scope: Construct,
    *,
    vpc: ec2.IVpc,
    subnets: ec2.SubnetSelection,
    settings: FargateTrackingSettings,
    secrets_key: kms.IKey,
    removal: RemovalPolicy,
) -> rds.DatabaseCluster:
    """Aurora Serverless v2 PostgreSQL; 0 ACU min capacity pauses it when idle.

    Its security group admits nothing until a client is let in through ``connections``.
    """
    security_group = ec2.SecurityGroup(
        scope,
        "DatabaseSecurityGroup",
        vpc=vpc,
        description="MLflow database",
        allow_all_outbound=False,
    )
    return rds.DatabaseCluster(
        scope,
        "Database",
        engine=rds.DatabaseClusterEngine.aurora_postgres(
            version=rds.AuroraPostgresEngineVersion.VER_17_7
        ),
        credentials=rds.Credentials.from_generated_secret("mlflow", encryption_key=secrets_key),
        default_database_name=DATABASE_NAME,
        writer=rds.ClusterInstance.serverless_v2("Writer"),
        readers=(
            [rds.ClusterInstance.serverless_v2("Reader", scale_with_writer=True)]
            if settings.db_multi_az
            else None
        ),
        serverless_v2_min_capacity=settings.db_min_capacity,
        serverless_v2_max_capacity=settings.db_max_capacity,
        vpc=vpc,
        vpc_subnets=subnets,
        security_groups=[security_group],
        storage_encrypted=True,
        iam_authentication=True,
        monitoring_interval=MONITORING_INTERVAL,
        backup=rds.BackupProps(retention=Duration.days(settings.db_backup_days)),
        # Deletion protection with RETAIN, not SNAPSHOT: CloudFormation applies the
        # DeletionPolicy also when it rolls back a failed create, and a protected cluster it
        # must delete fails that rollback (ROLLBACK_FAILED); RETAIN keeps it instead
        # (docs/tracking.md, "A failed first deploy in prod").
        deletion_protection=removal == RemovalPolicy.RETAIN,
        removal_policy=removal,
    )
