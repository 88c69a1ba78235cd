"""Every self-hosted variant: the environment the template gives the server is complete, and
the server accepts the Host header its clients send.

The pure counterpart of test_self_hosted_server.py over the whole matrix (every env, both
synthesized forms, every egress path): the environment is read from each template exactly as
the real-process test reads it, then checked with the entrypoint's own functions and MLflow's
own host check (mlflow/server/security_utils.py, is_allowed_host_header).
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlsplit

import pytest
from mlflow.server.security_utils import is_allowed_host_header
from urllib3.util import parse_url

from tests.matrix import VARIANTS, Variant, variant_params
from tests.tracking.deployment import deployment
from tests.unit.test_tracking_entrypoint import entrypoint

SELF_HOSTED = tuple(v for v in VARIANTS if v.mode in ("fargate", "ec2"))


def client_host_header(tracking_uri: str) -> str:
    """The Host header an HTTP client built on urllib3 (requests, the MLflow client) sends."""
    url = parse_url(tracking_uri)  # urllib3 normalizes the host name to lower case
    assert url.host is not None
    default_port = {"http": 80, "https": 443}[url.scheme or "http"]
    return url.host if url.port in (None, default_port) else f"{url.host}:{url.port}"


@pytest.mark.parametrize("variant", variant_params(SELF_HOSTED))
def test_the_server_accepts_its_clients_host_header(variant: Variant) -> None:
    deployed = deployment(variant.app(), {"host": "db.internal", "port": 3306})
    env = deployed.server_env
    # The entrypoint finds everything it needs (it exits with one line otherwise).
    uri = entrypoint.database_uri(env)
    command = entrypoint.server_command(env, uri)
    assert "--app-name=basic-auth" in command
    for name in ("MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_CLIENT_USERNAME", "MLFLOW_CLIENT_PASSWORD"):
        assert env[name], name
    # What the server compares the Host header with, after the entrypoint's normalization.
    allowed = entrypoint.allowed_hosts(env["MLFLOW_SERVER_ALLOWED_HOSTS"]).split(",")
    for host in (client_host_header(deployed.tracking_uri), urlsplit(deployed.tracking_uri).netloc):
        assert is_allowed_host_header(allowed, host), (
            f"{variant.id}: clients of {deployed.tracking_uri} send Host: {host}; the server "
            f"allows {allowed}"
        )


def test_allowed_hosts_adds_each_lower_case_form_once() -> None:
    value = " internal-Mlops-ABC.eu-west-1.elb.amazonaws.com ,mlflow.example.com,mlflow.example.com:5000"
    assert entrypoint.allowed_hosts(value).split(",") == [
        "internal-Mlops-ABC.eu-west-1.elb.amazonaws.com",
        "internal-mlops-abc.eu-west-1.elb.amazonaws.com",
        "mlflow.example.com",
        "mlflow.example.com:5000",
    ]
    # MLflow's own check, before and after: the lower-case Host header is refused, then allowed.
    host = "internal-mlops-abc.eu-west-1.elb.amazonaws.com"
    assert not is_allowed_host_header(["internal-Mlops-ABC.eu-west-1.elb.amazonaws.com"], host)
    assert is_allowed_host_header(entrypoint.allowed_hosts(value).split(","), host)


def test_the_flask_secret_key_is_shared_by_every_task_and_reveals_no_password() -> None:
    env = {"MLFLOW_AUTH_ADMIN_PASSWORD": "admin-password"}
    key = entrypoint.flask_secret_key(env)
    assert key == entrypoint.flask_secret_key(dict(env))  # same secret, same key in every task
    assert "admin-password" not in key and len(key) == 64
    expected = hmac.new(b"admin-password", b"mlflow-flask-server-secret-key", hashlib.sha256)
    assert key == expected.hexdigest()
    assert entrypoint.flask_secret_key({**env, "MLFLOW_FLASK_SERVER_SECRET_KEY": "set"}) == "set"
    with pytest.raises(entrypoint.ConfigurationError, match="MLFLOW_AUTH_ADMIN_PASSWORD"):
        entrypoint.flask_secret_key({})
