"""The server's database credentials rotated with alternating users, on a REAL database.

The tracking server (containers/tracking/entrypoint.py) runs as its own database user, made at
first start with the master credentials; Secrets Manager rotates that user's secret with the
alternating-users scheme. This test does to a real PostgreSQL (pgserver, as Aurora PostgreSQL)
and MariaDB (as RDS MySQL) what the multi-user rotation functions do in their setSecret step
(aws-samples/aws-secrets-manager-rotation-lambdas, SecretsManagerRDSPostgreSQLRotationMultiUser
and SecretsManagerRDSMySQLRotationMultiUser, logged in as the master):

- first rotation: create ``<user>_clone`` with the new password; PostgreSQL ``GRANT <user> TO
  <clone>``, MySQL the current user's ``SHOW GRANTS`` replayed for the clone;
- second rotation: ``ALTER USER <user>`` (the other one again) to a new password.

and checks: after the first rotation the RUNNING server (old credentials) still serves, the old
credentials still open new connections, and a server restarted with the new secret serves; after
the second rotation that server still serves while the first credentials are refused.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.synth import DEPLOY_REGION
from tests.tracking.databases import Database, mariadb, mariadb_installed, postgres
from tests.tracking.test_self_hosted_server import TIMEOUT, running_server, s3_endpoint

pytestmark = pytest.mark.real_database

__all__ = ["s3_endpoint"]  # the fixture, used by name

MASTER = {"username": "mlflow", "password": "master-Pa55word"}
SERVER_USER = "mlflow_server"  # mlops_cdk.constructs.secret_rotation.SERVER_DB_USER
BUCKET = "db-rotation-artifacts"
ADMIN = ("admin", "admin-password-0123456789")
CLIENT = ("mlflow-client", "client-password-0123456789")


def _connect(db: Database, username: str, password: str) -> Any:
    if db.engine == "postgresql":
        import psycopg2  # type: ignore[import-untyped]  # noqa: PLC0415

        connection = psycopg2.connect(
            host=db.host, port=db.port, user=username, password=password, dbname=db.name
        )
        connection.autocommit = True
        return connection
    import pymysql  # type: ignore[import-untyped]  # noqa: PLC0415

    return pymysql.connect(
        host=db.host, port=db.port, user=username, password=password, database=db.name,
        autocommit=True,
    )  # fmt: skip


def _can_connect(db: Database, username: str, password: str) -> bool:
    try:
        _connect(db, username, password).close()
    except Exception:  # either driver's authentication error
        return False
    return True


def _first_rotation(db: Database, new_password: str) -> str:
    """The multi-user function's setSecret when the clone does not exist yet."""
    clone = f"{SERVER_USER}_clone"
    master = _connect(db, MASTER["username"], MASTER["password"])
    with master.cursor() as cursor:
        if db.engine == "postgresql":
            cursor.execute(f'CREATE ROLE "{clone}" WITH LOGIN PASSWORD %s', (new_password,))
            cursor.execute(f'GRANT "{SERVER_USER}" TO "{clone}"')
        else:
            cursor.execute(f"CREATE USER '{clone}'@'%%' IDENTIFIED BY %s", (new_password,))
            cursor.execute(f"SHOW GRANTS FOR '{SERVER_USER}'@'%'")
            for (grant,) in cursor.fetchall():
                if grant.startswith("GRANT USAGE"):
                    continue
                cursor.execute(grant.replace(f"'{SERVER_USER}'@", f"'{clone}'@"))
    master.close()
    return clone


def _second_rotation(db: Database, new_password: str) -> None:
    """setSecret of the next rotation: the first user gets a new password."""
    master = _connect(db, MASTER["username"], MASTER["password"])
    with master.cursor() as cursor:
        if db.engine == "postgresql":
            cursor.execute(f'ALTER USER "{SERVER_USER}" WITH PASSWORD %s', (new_password,))
        else:
            cursor.execute(f"ALTER USER '{SERVER_USER}'@'%%' IDENTIFIED BY %s", (new_password,))
    master.close()


def _server_env(db: Database, username: str, password: str) -> dict[str, str]:
    """What the task definition (or the ec2 unit) gives the server: the server user's secret
    as DB_USERNAME/DB_PASSWORD, the master secret as DB_MASTER_*."""
    return {
        "DB_ENGINE": db.engine,
        "DB_HOST": db.host,
        "DB_PORT": str(db.port),
        "DB_NAME": db.name,
        "DB_USERNAME": username,
        "DB_PASSWORD": password,
        "DB_MASTER_USERNAME": MASTER["username"],
        "DB_MASTER_PASSWORD": MASTER["password"],
        "MLFLOW_ARTIFACTS_DESTINATION": f"s3://{BUCKET}/mlflow",
        "MLFLOW_AUTH": "basic",
        "MLFLOW_AUTH_ADMIN_USERNAME": ADMIN[0],
        "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN[1],
        "MLFLOW_CLIENT_USERNAME": CLIENT[0],
        "MLFLOW_CLIENT_PASSWORD": CLIENT[1],
        "MLFLOW_WORKERS": "1",
    }


def _use(port: int, name: str) -> None:
    """A client's writes and reads through the server (new database connections included)."""
    base = f"http://127.0.0.1:{port}/api/2.0/mlflow"
    created = requests.post(
        f"{base}/experiments/create", json={"name": name}, auth=CLIENT, timeout=TIMEOUT
    )
    assert created.status_code == 200, created.text[:300]
    experiment_id = created.json()["experiment_id"]
    run = requests.post(
        f"{base}/runs/create", json={"experiment_id": experiment_id}, auth=CLIENT, timeout=TIMEOUT
    )
    assert run.status_code == 200, run.text[:300]
    run_id = run.json()["run"]["info"]["run_id"]
    logged = requests.post(
        f"{base}/runs/log-metric",
        json={"run_id": run_id, "key": "accuracy", "value": 0.97, "timestamp": 0},
        auth=CLIENT,
        timeout=TIMEOUT,
    )
    assert logged.status_code == 200, logged.text[:300]
    found = requests.post(
        f"{base}/experiments/search", json={"max_results": 100}, auth=CLIENT, timeout=TIMEOUT
    )
    assert found.status_code == 200, found.text[:300]
    assert name in {e["name"] for e in found.json()["experiments"]}


DatabaseFactory = Callable[..., AbstractContextManager[Database]]
ENGINES = [
    pytest.param(postgres, id="postgresql"),
    pytest.param(mariadb, id="mariadb"),
]


@pytest.mark.slow
@pytest.mark.parametrize("database", ENGINES)
def test_servers_keep_working_through_two_alternating_user_rotations(
    database: DatabaseFactory,
    s3_endpoint: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if database is mariadb and not mariadb_installed():
        pytest.skip("MariaDB is not installed (apt-get install mariadb-server): unverified")
    import boto3  # noqa: PLC0415

    from tests.tracking.test_self_hosted_server import _aws_env  # noqa: PLC0415

    for key, value in _aws_env(s3_endpoint).items():
        monkeypatch.setenv(key, value)
    boto3.client("s3", region_name=DEPLOY_REGION).create_bucket(
        Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": DEPLOY_REGION}
    )
    first = "server-Pa55word-1"
    with database(name="mlflow", **MASTER) as db:
        env = _server_env(db, SERVER_USER, first)
        with running_server(env, s3_endpoint, tmp_path / "a.log") as server:
            _use(server.port, "before-rotation")
            # The server runs as its own user, which cannot change the schema.
            assert _can_connect(db, SERVER_USER, first)
            clone = _first_rotation(db, "server-Pa55word-2")
            assert _can_connect(db, SERVER_USER, first), "old credentials must stay valid"
            _use(server.port, "running-server-after-rotation")
        # A restarted server (a new task, the ec2 unit's restart) reads the new secret.
        env = _server_env(db, clone, "server-Pa55word-2")
        with running_server(env, s3_endpoint, tmp_path / "b.log") as server:
            _use(server.port, "restarted-server-after-rotation")
            _second_rotation(db, "server-Pa55word-3")
            assert not _can_connect(db, SERVER_USER, first)
            assert _can_connect(db, clone, "server-Pa55word-2")
            _use(server.port, "running-server-after-second-rotation")
        log = (tmp_path / "a.log").read_text() + (tmp_path / "b.log").read_text()
        assert MASTER["password"] not in log


@pytest.mark.slow
def test_the_server_user_cannot_change_the_schema() -> None:
    """Least privilege: the server's user reads and writes rows; only the owner migrates."""
    from tests.unit.test_tracking_entrypoint import entrypoint  # noqa: PLC0415

    with postgres(name="mlflow", **MASTER) as db:
        env = _server_env(db, SERVER_USER, "server-Pa55word-1")
        owner_uri = entrypoint.database_uri(env, "DB_MASTER_")
        entrypoint.migrate(owner_uri, env)
        entrypoint.grant_server_user(owner_uri, env)
        entrypoint.grant_server_user(owner_uri, env)  # idempotent (every start)
        connection = _connect(db, SERVER_USER, "server-Pa55word-1")
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM experiments")
            assert cursor.fetchone()[0] >= 0  # the server user reads MLflow's tables
            with pytest.raises(Exception, match=r"must be owner|permission denied"):
                cursor.execute("ALTER TABLE experiments ADD COLUMN x integer")
        connection.close()
