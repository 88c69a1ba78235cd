"""RDS enhanced monitoring of the MLflow databases (OS metrics every 60 s in CloudWatch Logs,
``RDSOSMetrics``): checkov CKV_AWS_118. RDS publishes them with a monitoring role that CDK
creates with AWS's managed ``AmazonRDSEnhancedMonitoringRole`` policy (RDS user guide,
"Setting up and enabling Enhanced Monitoring")."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_rds as rds

from mlops_cdk.nag import ack

MONITORING_INTERVAL = Duration.seconds(60)
POLICY = "arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"


def ack_monitoring_role(database: rds.DatabaseCluster | rds.DatabaseInstance) -> None:
    """The monitoring role CDK makes for ``monitoring_interval`` uses AWS's managed policy."""
    ack(
        database.node.find_child("MonitoringRole"),
        f"AwsSolutions-IAM4[Policy::{POLICY}]",
        "AWS's managed policy for RDS enhanced monitoring: only lets RDS write OS metrics to "
        "its RDSOSMetrics log group, kept current by AWS.",
    )
