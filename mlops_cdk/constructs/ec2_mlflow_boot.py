"""The MLflow instance's boot script (EC2 user data): install, configure and start MLflow.

At every boot: install Python, MLflow and the CloudWatch agent, fetch the server's secrets into
a root-only runtime file at each service start, register the instance's private IP under the
tracking host name, start MLflow as a systemd service and wait until it answers. The caller
adds the cfn-signal on exit (``UserData.add_signal_on_exit_command``).
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Stack
from aws_cdk import aws_ec2 as ec2

from mlops_cdk.constructs.secret_rotation import RESTART_DAYS
from mlops_cdk.constructs.self_hosted_mlflow import DATABASE_NAME, MLFLOW_PORT


def boot_user_data(
    *,
    stack: Stack,
    entrypoint_url: str,
    secret_arns: Mapping[str, str],
    zone_id: str,
    host_name: str,
    artifact_uri: str,
    mlflow_version: str,
    log_group_name: str,
) -> ec2.UserData:
    """The user data of the MLflow instance: success is MLflow answering on its port.

    ``secret_arns``: the database master (``DB``), the server's own database user (``SERVER``),
    admin (``ADMIN``) and client (``CLIENT``) secrets.
    """
    user_data = ec2.UserData.for_linux()
    user_data.add_commands(
        # cfn-signal comes with aws-cfn-bootstrap, which not every AL2023 AMI has installed
        # (CloudFormation helper scripts reference). Outside `set -e`: even a boot whose
        # package installs fail reaches the signal below if the helper was already there.
        "dnf install -y aws-cfn-bootstrap || true",
        *_install_commands(
            entrypoint_url=entrypoint_url,
            secret_arns=secret_arns,
            region=stack.region,
            zone_id=zone_id,
            host_name=host_name,
            artifact_uri=artifact_uri,
            mlflow_version=mlflow_version,
        ),
        *_agent_commands(stack, log_group_name),
        # Success is MLflow answering on its port, not the script reaching its end.
        f"for i in $(seq 60); do curl -fsS -o /dev/null -H 'Host: {host_name}:{MLFLOW_PORT}' "
        f"http://127.0.0.1:{MLFLOW_PORT}/health && break; sleep 10; done",
        f"curl -fsS -o /dev/null -H 'Host: {host_name}:{MLFLOW_PORT}' "
        f"http://127.0.0.1:{MLFLOW_PORT}/health",
    )
    return user_data


def _install_commands(
    *,
    entrypoint_url: str,
    secret_arns: Mapping[str, str],
    region: str,
    zone_id: str,
    host_name: str,
    artifact_uri: str,
    mlflow_version: str,
) -> list[str]:
    secrets = secret_arns
    # Fetches the secrets into a root-only tmpfs file at every (re)start; nothing on disk.
    start = "\n".join(
        [
            "#!/bin/bash",
            "set -euo pipefail",
            "umask 077",
            f"export AWS_DEFAULT_REGION={region}",
            *[
                f'{key}=$(aws secretsmanager get-secret-value --secret-id "{arn}" --query SecretString --output text)'
                for key, arn in secrets.items()
            ],
            "{",
            "  echo DB_ENGINE=mysql",
            f"  echo DB_NAME={DATABASE_NAME}",
            '  echo "DB_HOST=$(jq -r .host <<<"$DB")"',
            '  echo "DB_PORT=$(jq -r .port <<<"$DB")"',
            '  echo "DB_USERNAME=$(jq -r .username <<<"$SERVER")"',
            '  echo "DB_PASSWORD=$(jq -r .password <<<"$SERVER")"',
            '  echo "DB_MASTER_USERNAME=$(jq -r .username <<<"$DB")"',
            '  echo "DB_MASTER_PASSWORD=$(jq -r .password <<<"$DB")"',
            '  echo "MLFLOW_AUTH_ADMIN_USERNAME=$(jq -r .username <<<"$ADMIN")"',
            '  echo "MLFLOW_AUTH_ADMIN_PASSWORD=$(jq -r .password <<<"$ADMIN")"',
            '  echo "MLFLOW_CLIENT_USERNAME=$(jq -r .username <<<"$CLIENT")"',
            '  echo "MLFLOW_CLIENT_PASSWORD=$(jq -r .password <<<"$CLIENT")"',
            "} > /run/mlflow/env",
        ]
    )
    register = "\n".join(
        [
            "#!/bin/bash",
            "set -euo pipefail",
            "TOKEN=$(curl -sS -X PUT http://169.254.169.254/latest/api/token -H 'X-aws-ec2-metadata-token-ttl-seconds: 60')",
            'IP=$(curl -sS -H "X-aws-ec2-metadata-token: $TOKEN" http://169.254.169.254/latest/meta-data/local-ipv4)',
            'CHANGE=\'{"Changes":[{"Action":"UPSERT","ResourceRecordSet":{"Name":"%s","Type":"A","TTL":30,"ResourceRecords":[{"Value":"%s"}]}}]}\'',
            f'aws route53 change-resource-record-sets --hosted-zone-id "{zone_id}" '
            f'--change-batch "$(printf "$CHANGE" "{host_name}" "$IP")"',
        ]
    )
    unit = "\n".join(
        [
            "[Unit]",
            "Description=MLflow tracking server",
            "After=network-online.target",
            "Wants=network-online.target",
            "[Service]",
            "User=mlflow",
            "RuntimeDirectory=mlflow",
            "RuntimeDirectoryMode=0700",
            # "+": fetch as root into the root-only file systemd reads before ExecStart.
            "ExecStartPre=+/opt/mlflow/bin/fetch-secrets",
            "EnvironmentFile=-/run/mlflow/env",
            f"Environment=MLFLOW_ARTIFACTS_DESTINATION={artifact_uri}",
            f"Environment=MLFLOW_PORT={MLFLOW_PORT}",
            "Environment=MLFLOW_AUTH=basic",
            f"Environment=MLFLOW_SERVER_ALLOWED_HOSTS={host_name},{host_name}:{MLFLOW_PORT}",
            "Environment=MLFLOW_DISABLE_TELEMETRY=true",
            f"Environment=AWS_DEFAULT_REGION={region}",
            "ExecStart=/opt/mlflow/venv/bin/python /opt/mlflow/entrypoint.py",
            "Restart=always",
            "RestartSec=10",
            # Restart (and fetch the secrets again) weekly: rotated database credentials
            # (constructs/secret_rotation.py, RESTART_DAYS).
            f"RuntimeMaxSec={RESTART_DAYS}d",
            "StandardOutput=append:/var/log/mlflow/mlflow.log",
            "StandardError=append:/var/log/mlflow/mlflow.log",
            "[Install]",
            "WantedBy=multi-user.target",
        ]
    )
    return [
        "set -euxo pipefail",
        "dnf install -y python3.11 python3.11-pip jq amazon-cloudwatch-agent",
        "useradd --system --home-dir /opt/mlflow mlflow || true",
        "mkdir -p /opt/mlflow/bin /var/log/mlflow && chown mlflow /opt/mlflow /var/log/mlflow",
        "python3.11 -m venv /opt/mlflow/venv",
        f'/opt/mlflow/venv/bin/pip install --no-cache-dir "mlflow[auth]=={mlflow_version}" '
        '"PyMySQL==1.1.2" "boto3==1.44.8"',
        f"aws s3 cp {entrypoint_url} /opt/mlflow/entrypoint.py",
        f"cat > /opt/mlflow/bin/fetch-secrets <<'EOF'\n{start}\nEOF",
        f"cat > /opt/mlflow/bin/register-dns <<'EOF'\n{register}\nEOF",
        "chmod 0755 /opt/mlflow/bin/fetch-secrets /opt/mlflow/bin/register-dns",
        "/opt/mlflow/bin/register-dns",
        f"cat > /etc/systemd/system/mlflow.service <<'EOF'\n{unit}\nEOF",
        "systemctl daemon-reload",
        "systemctl enable --now mlflow.service",
    ]


def _agent_commands(stack: Stack, log_group_name: str) -> list[str]:
    config = {
        "agent": {"metrics_collection_interval": 60},
        "metrics": {
            "namespace": "CWAgent",
            "append_dimensions": {"AutoScalingGroupName": "${aws:AutoScalingGroupName}"},
            "aggregation_dimensions": [["AutoScalingGroupName"]],
            "metrics_collected": {
                "disk": {"measurement": ["used_percent"], "resources": ["/"]},
                "mem": {"measurement": ["used_percent"]},
            },
        },
        "logs": {
            "logs_collected": {
                "files": {
                    "collect_list": [
                        {
                            "file_path": "/var/log/mlflow/mlflow.log",
                            "log_group_name": log_group_name,
                            "log_stream_name": "{instance_id}/mlflow",
                        },
                        {
                            "file_path": "/var/log/cloud-init-output.log",
                            "log_group_name": log_group_name,
                            "log_stream_name": "{instance_id}/cloud-init",
                        },
                    ]
                }
            }
        },
    }
    path = "/opt/aws/amazon-cloudwatch-agent/etc/amazon-cloudwatch-agent.json"
    return [
        f"cat > {path} <<'EOF'\n{stack.to_json_string(config)}\nEOF",
        "/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl -a fetch-config "
        f"-m ec2 -s -c file:{path}",
    ]
