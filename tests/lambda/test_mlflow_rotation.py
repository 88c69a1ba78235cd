"""The MLflow users' rotation function against a REAL MLflow server with basic auth.

The server is containers/tracking/entrypoint.py (as the image and the ec2 unit run it) on a
real PostgreSQL (pgserver), with the admin and client users bootstrapped from their secrets.
Secrets Manager is moto's server, which also stands in for S3. What Secrets Manager itself does
when a rotation starts is emulated here: it attaches AWSPENDING to a new, empty version under
the rotation's token and turns RotationEnabled on (RotateSecret API reference: "the AWSPENDING
staging label might be attached to an empty secret version"), then invokes the function with
each step in order (rotate-secrets_lambda-functions.html). moto's RotateSecret would run the
function in Docker, which this machine does not have.
"""

from __future__ import annotations

import json
import string
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import mlflow_rotation
import pytest
import requests
from mlflow_rotation import RotationError

from tests.synth import DEPLOY_REGION
from tests.tracking.databases import LOOPBACK, free_port, moto_server, postgres
from tests.tracking.test_self_hosted_server import TIMEOUT, _aws_env, running_server

ACCOUNT = "123456789012"  # moto's default account
STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")
BUCKET = "rotation-artifacts"


# In one xdist worker: one real MLflow server (module fixtures), shared by the tests of this module.
pytestmark = [pytest.mark.xdist_group("mlflow-rotation"), pytest.mark.real_database]


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    """One moto server (Secrets Manager and S3) for the module."""
    with moto_server(timeout=TIMEOUT) as endpoint:
        yield endpoint


@pytest.fixture(scope="module")
def aws(moto_endpoint: str) -> Iterator[dict[str, str]]:
    env = {**_aws_env(moto_endpoint), "AWS_ENDPOINT_URL_SECRETS_MANAGER": moto_endpoint}
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        yield env


def _secrets() -> Any:
    return boto3.client("secretsmanager", region_name=DEPLOY_REGION)


def _user_secret(name: str, username: str) -> tuple[str, str]:
    password = uuid.uuid4().hex
    arn = _secrets().create_secret(
        Name=name, SecretString=json.dumps({"username": username, "password": password})
    )["ARN"]
    return arn, password


@pytest.fixture(scope="module")
def server(
    aws: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """MLflow with basic auth, its users bootstrapped from two secrets; yields what tests need."""
    admin_arn, admin_password = _user_secret("mlflow-admin", "admin")
    client_arn, client_password = _user_secret("mlflow-client", "mlflow-client")
    boto3.client("s3", region_name=DEPLOY_REGION).create_bucket(
        Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": DEPLOY_REGION}
    )
    log = tmp_path_factory.mktemp("server") / "server.log"
    with postgres(name="mlflow", username="mlflow", password="db-password-1") as db:
        env = {
            "DB_ENGINE": db.engine,
            "DB_HOST": db.host,
            "DB_PORT": str(db.port),
            "DB_NAME": db.name,
            "DB_USERNAME": db.username,
            "DB_PASSWORD": db.password,
            "MLFLOW_ARTIFACTS_DESTINATION": f"s3://{BUCKET}/mlflow",
            "MLFLOW_AUTH": "basic",
            "MLFLOW_AUTH_ADMIN_USERNAME": "admin",
            "MLFLOW_AUTH_ADMIN_PASSWORD": admin_password,
            "MLFLOW_CLIENT_USERNAME": "mlflow-client",
            "MLFLOW_CLIENT_PASSWORD": client_password,
            "MLFLOW_WORKERS": "1",
        }
        with running_server(env, aws["AWS_ENDPOINT_URL_S3"], log) as server:
            yield {
                "uri": f"http://{LOOPBACK}:{server.port}",
                "admin": admin_arn,
                "client": client_arn,
                "log": log,
            }


def _start_rotation(arn: str) -> str:
    """What Secrets Manager does before it invokes the function: an empty AWSPENDING version."""
    from moto.secretsmanager.models import FakeSecret, secretsmanager_backends  # noqa: PLC0415

    secret = secretsmanager_backends[ACCOUNT][DEPLOY_REGION].secrets[arn]
    assert isinstance(secret, FakeSecret)
    token = str(uuid.uuid4())
    secret.remove_version_stages_from_old_versions(["AWSPENDING"])
    secret.versions[token] = {
        "version_id": token,
        "version_stages": ["AWSPENDING"],
        "createdate": int(time.time()),
    }
    secret.rotation_requested = secret.rotation_enabled = True
    return token


def _invoke(arn: str, token: str, step: str, uri: str, admin_arn: str) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        patch.setenv("MLFLOW_ADMIN_SECRET_ARN", admin_arn)
        mlflow_rotation.handler({"SecretId": arn, "ClientRequestToken": token, "Step": step})


def _rotate(arn: str, server: dict[str, Any]) -> str:
    token = _start_rotation(arn)
    for step in STEPS:
        _invoke(arn, token, step, server["uri"], server["admin"])
    return token


def _current(arn: str) -> dict[str, str]:
    value: dict[str, str] = json.loads(
        _secrets().get_secret_value(SecretId=arn, VersionStage="AWSCURRENT")["SecretString"]
    )
    return value


def _status(server: dict[str, Any], username: str, password: str) -> int:
    response = requests.post(
        f"{server['uri']}/api/2.0/mlflow/experiments/search",
        json={"max_results": 1},
        auth=(username, password),
        timeout=TIMEOUT,
    )
    return response.status_code


def _log_a_run(server: dict[str, Any], credentials: dict[str, str]) -> None:
    """What a job does with the secret it reads: log a run (params, metrics) with basic auth."""
    from mlflow import MlflowClient  # noqa: PLC0415

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_USERNAME", credentials["username"])
        patch.setenv("MLFLOW_TRACKING_PASSWORD", credentials["password"])
        client = MlflowClient(server["uri"])
        experiment = client.get_experiment_by_name("rotation") or client.get_experiment(
            client.create_experiment("rotation")
        )
        run = client.create_run(experiment.experiment_id)
        client.log_param(run.info.run_id, "rotated", "yes")
        client.log_metric(run.info.run_id, "accuracy", 0.97)
        client.set_terminated(run.info.run_id)
        assert client.get_run(run.info.run_id).data.params == {"rotated": "yes"}


@pytest.mark.slow
def test_a_rotated_client_secret_logs_runs_and_the_old_password_is_refused(
    server: dict[str, Any],
) -> None:
    before = _current(server["client"])
    assert _status(server, before["username"], before["password"]) == 200
    token = _rotate(server["client"], server)
    after = _current(server["client"])
    stages = _secrets().describe_secret(SecretId=server["client"])["VersionIdsToStages"]
    # AWSPENDING may stay on the new version too (RotateSecret API reference).
    assert "AWSCURRENT" in stages[token]
    assert after["username"] == before["username"]
    assert after["password"] != before["password"]
    assert len(after["password"]) == 32 and after["password"].isalnum()
    _log_a_run(server, after)
    assert _status(server, before["username"], before["password"]) == 401


@pytest.mark.slow
def test_a_rotated_admin_secret_still_administers_users(server: dict[str, Any]) -> None:
    """The admin changes its own password (MLflow asks for the current one), then rotates the
    client's with the new admin credentials."""
    before = _current(server["admin"])
    _rotate(server["admin"], server)
    after = _current(server["admin"])
    assert after["password"] != before["password"]
    assert _status(server, "admin", after["password"]) == 200
    assert _status(server, "admin", before["password"]) == 401
    _rotate(server["client"], server)
    _log_a_run(server, _current(server["client"]))


@pytest.mark.slow
def test_the_client_rotates_while_the_admin_rotation_is_half_done(server: dict[str, Any]) -> None:
    """The two schedules may coincide: the admin's setSecret has run (MLflow has the pending
    admin password), its finishSecret not yet; the client's rotation authenticates with it."""
    admin_token = _start_rotation(server["admin"])
    for step in ("createSecret", "setSecret"):
        _invoke(server["admin"], admin_token, step, server["uri"], server["admin"])
    _rotate(server["client"], server)
    _log_a_run(server, _current(server["client"]))
    for step in ("testSecret", "finishSecret"):
        _invoke(server["admin"], admin_token, step, server["uri"], server["admin"])
    admin = _current(server["admin"])
    assert _status(server, admin["username"], admin["password"]) == 200


@pytest.mark.slow
def test_a_failed_set_secret_leaves_the_current_secret_working(server: dict[str, Any]) -> None:
    """setSecret fails (the admin secret it authenticates with is stale; then the server is
    unreachable): AWSCURRENT stays and keeps logging in; a retry of the same rotation finishes."""
    client = _current(server["client"])
    stale_admin, _ = _user_secret("stale-admin", "admin")
    token = _start_rotation(server["client"])
    _invoke(server["client"], token, "createSecret", server["uri"], server["admin"])
    with pytest.raises(
        RotationError, match="update-password for mlflow-client as admin answered 401"
    ):
        _invoke(server["client"], token, "setSecret", server["uri"], stale_admin)
    closed = f"http://{LOOPBACK}:{free_port()}"
    with pytest.raises(RotationError, match="unreachable"):
        _invoke(server["client"], token, "setSecret", closed, server["admin"])
    with pytest.raises(RotationError, match="refuses the pending password"):
        _invoke(server["client"], token, "testSecret", server["uri"], server["admin"])
    assert _current(server["client"]) == client
    _log_a_run(server, client)
    # Secrets Manager retries the rotation with the same token: the pending value is kept.
    for step in STEPS:
        _invoke(server["client"], token, step, server["uri"], server["admin"])
    rotated = _current(server["client"])
    assert rotated["password"] != client["password"]
    _log_a_run(server, rotated)
    assert _status(server, client["username"], client["password"]) == 401


def test_the_function_refuses_a_secret_not_under_rotation(aws: dict[str, str]) -> None:
    arn, _ = _user_secret("not-rotating", "someone")
    token = _secrets().describe_secret(SecretId=arn)["VersionIdsToStages"].popitem()[0]
    with pytest.raises(RotationError, match="not enabled for rotation"):
        _invoke(arn, token, "createSecret", "http://127.0.0.1:9", arn)
    pending = _start_rotation(arn)
    with pytest.raises(RotationError, match="Step='rotate' is not one of"):
        _invoke(arn, pending, "rotate", "http://127.0.0.1:9", arn)
    with pytest.raises(RotationError, match="has no stage for rotation"):
        _invoke(arn, str(uuid.uuid4()), "createSecret", "http://127.0.0.1:9", arn)
    # A version that is already AWSCURRENT: nothing to do (a retried finishSecret).
    _invoke(arn, token, "finishSecret", "http://127.0.0.1:9", arn)


def test_the_function_refuses_a_tracking_uri_that_is_not_http() -> None:
    with pytest.raises(RotationError, match="is not an http"):
        mlflow_rotation.MlflowUsers("arn:aws:sagemaker:eu-west-1:1:mlflow-app/x")


@pytest.mark.slow
def test_the_passwords_never_reach_the_log(
    server: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO")
    _rotate(server["client"], server)
    text = caplog.text + Path(server["log"]).read_text()
    for arn in (server["client"], server["admin"]):
        versions = _secrets().list_secret_version_ids(SecretId=arn)["Versions"]
        for version in versions:
            try:
                value = _secrets().get_secret_value(SecretId=arn, VersionId=version["VersionId"])
            except _secrets().exceptions.ResourceNotFoundException:
                continue
            assert json.loads(value["SecretString"])["password"] not in text


def test_new_passwords_are_what_get_random_password_made() -> None:
    """32 letters and digits, at least one of each kind (GetRandomPassword with
    ExcludePunctuation=True), and not the same twice."""
    passwords = {mlflow_rotation.new_password() for _ in range(500)}
    assert len(passwords) == 500
    for password in passwords:
        assert len(password) == 32
        assert set(password) <= set(string.ascii_letters + string.digits)
        assert any(c.islower() for c in password)
        assert any(c.isupper() for c in password)
        assert any(c.isdigit() for c in password)
    short = {mlflow_rotation.new_password(3) for _ in range(200)}
    assert all(sorted(c.isdigit() + 2 * c.isupper() for c in p) == [0, 1, 2] for p in short)
