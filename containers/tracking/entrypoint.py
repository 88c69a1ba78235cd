"""Start a self-hosted MLflow tracking server: migrate the database safely, then serve.

Reads its configuration from the environment, where ECS (fargate mode) or the systemd unit
(ec2 mode) put it. Database and user credentials come from Secrets Manager: ECS injects them as
container secrets; they never appear in a template or task definition.

    DB_ENGINE            postgresql (default) or mysql
    DB_HOST DB_PORT DB_NAME DB_USERNAME DB_PASSWORD   the server's own database user
    DB_MASTER_USERNAME DB_MASTER_PASSWORD   optional: the database owner. With them, the schema
                         is migrated and the users bootstrapped as the owner, the server user is
                         created if missing and granted what MLflow reads and writes, and only
                         then does the server run, as its own user (secret rotation with
                         alternating users: docs/tracking.md, "Secret rotation")
    MLFLOW_ARTIFACTS_DESTINATION   s3://bucket/prefix the server proxies artifacts to
    MLFLOW_AUTH          basic (MLflow basic auth) or none (e.g. behind ALB OIDC)
    MLFLOW_AUTH_ADMIN_USERNAME MLFLOW_AUTH_ADMIN_PASSWORD   bootstrap admin (basic auth)
    MLFLOW_CLIENT_USERNAME MLFLOW_CLIENT_PASSWORD           the shared client user (basic auth)
    MLFLOW_SERVER_ALLOWED_HOSTS  the Host header values MLflow accepts (compared as written:
                         the entrypoint adds each name's lower-case form, see allowed_hosts)
    MLFLOW_FLASK_SERVER_SECRET_KEY  the CSRF signing key of the basic-auth app (default:
                         derived from the admin password, so every task has the same one)
    MLFLOW_HOST (0.0.0.0)  MLFLOW_PORT (5000)  MLFLOW_WORKERS (2)
    MLFLOW_SERVER_ENABLE_JOB_EXECUTION (false here; MLflow's default is true): see
                         server_environment

Several tasks may start at once (rolling deploys, autoscaling): schema creation and migration
run under a database-wide lock, so exactly one process migrates and the others wait.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import os
import sys
import tempfile
from collections.abc import Iterator, Mapping
from urllib.parse import quote_plus

LOCK_NAME = "mlflow-schema-migration"
LOCK_KEY = 727_274_001  # any fixed 64-bit integer: the PostgreSQL advisory lock id
DRIVERS = {"postgresql": "postgresql+psycopg2", "mysql": "mysql+pymysql"}

log = logging.getLogger("mlflow-entrypoint")


class ConfigurationError(Exception):
    """A required environment variable is missing or wrong."""


def require(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "")
    if not value:
        raise ConfigurationError(f"environment variable {name} is required")
    return value


def database_uri(env: Mapping[str, str], prefix: str = "DB_") -> str:
    """SQLAlchemy URI from the DB_* variables (user and password URL-quoted).

    ``prefix="DB_MASTER_"`` takes the user and password of the database owner instead.
    """
    engine = env.get("DB_ENGINE", "postgresql")
    if engine not in DRIVERS:
        raise ConfigurationError(f"DB_ENGINE={engine!r} is not one of {', '.join(DRIVERS)}")
    user = quote_plus(require(env, f"{prefix}USERNAME"))
    password = quote_plus(require(env, f"{prefix}PASSWORD"))
    host, port, name = require(env, "DB_HOST"), require(env, "DB_PORT"), require(env, "DB_NAME")
    return f"{DRIVERS[engine]}://{user}:{password}@{host}:{port}/{name}"


def server_command(env: Mapping[str, str], backend_uri: str) -> list[str]:
    """The ``mlflow server`` command line: artifacts proxied to S3, optional basic auth."""
    auth = env.get("MLFLOW_AUTH", "basic")
    if auth not in ("basic", "none"):
        raise ConfigurationError(f"MLFLOW_AUTH={auth!r} is not one of basic, none")
    command = [
        sys.executable,  # the interpreter MLflow is installed in (image or venv), no PATH needed
        "-m",
        "mlflow",
        "server",
        f"--host={env.get('MLFLOW_HOST', '0.0.0.0')}",  # noqa: S104 (the task's or instance's port)
        f"--port={env.get('MLFLOW_PORT', '5000')}",
        f"--workers={env.get('MLFLOW_WORKERS', '2')}",
        f"--backend-store-uri={backend_uri}",
        "--serve-artifacts",
        f"--artifacts-destination={require(env, 'MLFLOW_ARTIFACTS_DESTINATION')}",
    ]
    if auth == "basic":
        command.append("--app-name=basic-auth")
    return command


def allowed_hosts(value: str) -> str:
    """MLFLOW_SERVER_ALLOWED_HOSTS with each host name also in lower case.

    Host names are case-insensitive (RFC 9110 section 4.2.3), but MLflow compares the Host
    header with each allowed entry by ``==`` or, for entries with ``*``, by ``fnmatch`` (which
    is case-sensitive on POSIX): mlflow/server/security_utils.py, is_allowed_host_header.
    Clients lower-case the host (urllib3, which requests and the MLflow client use, normalizes
    it; so do browsers), and AWS reports a load balancer's DNS name in mixed case
    (``internal-mlops-Farga-...``): without the lower-case form every API call gets 403 while
    ``/health``, which the check exempts, stays green. The name as written stays allowed for
    clients that send it verbatim (curl with the name pasted from the console).
    """
    hosts: list[str] = []
    for entry in value.split(","):
        host = entry.strip()
        for form in (host, host.lower()):
            if form and form not in hosts:
                hosts.append(form)
    return ",".join(hosts)


def flask_secret_key(env: Mapping[str, str]) -> str:
    """The basic-auth app's CSRF signing key: set, or derived from the admin password.

    MLflow's basic-auth app refuses to start without MLFLOW_FLASK_SERVER_SECRET_KEY (CSRF
    protection) and needs the same key in every server behind the load balancer
    (mlflow/server/auth/__init__.py, get_flask_server_secret_key). An HMAC of the admin
    password is the same in every task, changes when the password is rotated, and reveals
    nothing about the password.
    """
    if key := env.get("MLFLOW_FLASK_SERVER_SECRET_KEY", ""):
        return key
    password = require(env, "MLFLOW_AUTH_ADMIN_PASSWORD").encode()
    return hmac.new(password, b"mlflow-flask-server-secret-key", hashlib.sha256).hexdigest()


def auth_config(backend_uri: str) -> str:
    """basic_auth.ini: users live in the same database (own tables, own alembic version table)."""
    return (
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = {backend_uri.replace('%', '%%')}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )


@contextlib.contextmanager
def migration_lock(engine: object, dialect: str) -> Iterator[None]:
    """Hold a database-wide lock (PostgreSQL advisory lock, MySQL GET_LOCK) while migrating."""
    import sqlalchemy  # noqa: PLC0415 (lazy: the pure helpers need no database libraries)

    assert isinstance(engine, sqlalchemy.engine.Engine)
    with engine.connect() as connection:
        if dialect == "postgresql":
            connection.execute(sqlalchemy.text(f"SELECT pg_advisory_lock({LOCK_KEY})"))
        else:
            connection.execute(sqlalchemy.text(f"SELECT GET_LOCK('{LOCK_NAME}', 600)"))
        try:
            yield
        finally:
            if dialect == "postgresql":
                connection.execute(sqlalchemy.text(f"SELECT pg_advisory_unlock({LOCK_KEY})"))
            else:
                connection.execute(sqlalchemy.text(f"SELECT RELEASE_LOCK('{LOCK_NAME}')"))


def migrate(backend_uri: str, env: Mapping[str, str]) -> None:
    """Create or upgrade the tracking schema (and the auth schema and users) under the lock."""
    from mlflow.store.db.utils import (  # noqa: PLC0415 (lazy, as above)
        _all_tables_exist,
        _initialize_tables,
        _upgrade_db,
        create_sqlalchemy_engine_with_retry,
    )

    engine = create_sqlalchemy_engine_with_retry(backend_uri)  # waits for a paused database
    with migration_lock(engine, engine.dialect.name):
        if _all_tables_exist(engine):
            log.info("upgrading the MLflow schema (a no-op when current)")
            _upgrade_db(engine)  # what `mlflow db upgrade` runs
        else:
            log.info("creating the MLflow schema")
            _initialize_tables(engine)
        if env.get("MLFLOW_AUTH", "basic") == "basic":
            bootstrap_users(backend_uri, env)
    engine.dispose()


AUTH_USER_FOREIGN_KEY = "fk_user_id"
AUTH_FIRST_TABLE = "experiment_permissions"  # keeps the name MLflow gives it


@contextlib.contextmanager
def unique_foreign_key_names(backend_uri: str) -> Iterator[None]:
    """On MySQL, give each auth table's foreign key to ``users`` its own name.

    MLflow's auth schema names the foreign key of both experiment_permissions and
    registered_model_permissions ``fk_user_id`` (mlflow/server/auth/db/migrations/versions/
    8606fa83a998_initial_migration.py). PostgreSQL scopes constraint names to a table; MySQL
    and MariaDB require them unique in the database, so the second CREATE TABLE fails and the
    server never starts (mlflow/mlflow#9642, #10964, open). Renaming the second one while the
    tables are created changes nothing MLflow relies on: no later migration names it.
    """
    import sqlalchemy  # noqa: PLC0415 (lazy, as above)

    if not backend_uri.startswith("mysql"):
        yield
        return

    def rename(table: sqlalchemy.Table, connection: object, **_: object) -> None:
        if table.name == AUTH_FIRST_TABLE:
            return
        for constraint in table.constraints:
            is_foreign_key = isinstance(constraint, sqlalchemy.ForeignKeyConstraint)
            if is_foreign_key and constraint.name == AUTH_USER_FOREIGN_KEY:
                constraint.name = f"fk_{table.name}_user_id"  # 64 characters at most

    sqlalchemy.event.listen(sqlalchemy.Table, "before_create", rename)
    try:
        yield
    finally:
        sqlalchemy.event.remove(sqlalchemy.Table, "before_create", rename)


CLONE_SUFFIX = "_clone"
# What the server user may do: read and write MLflow's rows, never change the schema (the
# entrypoint migrates as the owner before the server starts).
POSTGRES_GRANTS = (
    'GRANT CONNECT ON DATABASE "{database}" TO "{user}"',
    'GRANT USAGE ON SCHEMA public TO "{user}"',
    'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO "{user}"',
    'GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO "{user}"',
)
MYSQL_GRANTS = ("GRANT SELECT, INSERT, UPDATE, DELETE ON `{database}`.* TO '{user}'@'%'",)


def _identifier(name: str) -> str:
    """A user or database name safe to put in quotes in DDL (they are set by the template)."""
    if not name or not all(c.isalnum() or c in "_-" for c in name):
        raise ConfigurationError(f"database name or user {name!r} is not [A-Za-z0-9_-]+")
    return name


def grant_server_user(owner_uri: str, env: Mapping[str, str]) -> None:
    """Create the server's database user if it does not exist, and grant it MLflow's tables.

    The secret rotation with alternating users (Secrets Manager's multi-user rotation function
    for RDS PostgreSQL/MySQL) logs in with the secret's current user before it makes the other
    one, so that user must exist first: the entrypoint makes it from the secret at first
    start. The function then creates ``<user>_clone`` as a member of the user (PostgreSQL,
    ``GRANT <user> TO <clone>``) or with a copy of its grants (MySQL, ``SHOW GRANTS``), so the
    grants go to the base name, and on MySQL to the current name as well. Granting again at
    every start covers tables a new MLflow version's migration added.
    """
    import sqlalchemy  # noqa: PLC0415 (lazy, as above)
    from mlflow.store.db.utils import create_sqlalchemy_engine_with_retry  # noqa: PLC0415

    user, password = _identifier(require(env, "DB_USERNAME")), require(env, "DB_PASSWORD")
    base = user.removesuffix(CLONE_SUFFIX)
    database = _identifier(require(env, "DB_NAME"))
    engine = create_sqlalchemy_engine_with_retry(owner_uri)
    postgres = engine.dialect.name == "postgresql"
    exists = (
        "SELECT 1 FROM pg_roles WHERE rolname = :user"
        if postgres
        else "SELECT 1 FROM mysql.user WHERE User = :user"
    )
    with engine.begin() as connection:
        for name in dict.fromkeys([base, user]):
            if connection.execute(sqlalchemy.text(exists), {"user": name}).first() is None:
                if name != user:
                    continue  # the base user of a clone is the rotation function's to make
                create = (
                    f'CREATE ROLE "{name}" WITH LOGIN PASSWORD :password'
                    if postgres
                    else f"CREATE USER '{name}'@'%' IDENTIFIED BY :password"
                )
                connection.execute(sqlalchemy.text(create), {"password": password})
                log.info("created database user %s", name)
            if postgres and name != base:
                continue  # a PostgreSQL clone inherits the base user's grants
            for grant in POSTGRES_GRANTS if postgres else MYSQL_GRANTS:
                connection.execute(sqlalchemy.text(grant.format(database=database, user=name)))
    engine.dispose()


def bootstrap_users(backend_uri: str, env: Mapping[str, str]) -> None:
    """Create the admin and the client user, or reset their passwords to the secrets' values."""
    from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore  # noqa: PLC0415

    store = SqlAlchemyStore()
    with unique_foreign_key_names(backend_uri):
        store.init_db(backend_uri)  # runs the auth migrations
    users = [
        (
            require(env, "MLFLOW_AUTH_ADMIN_USERNAME"),
            require(env, "MLFLOW_AUTH_ADMIN_PASSWORD"),
            True,
        ),
        (require(env, "MLFLOW_CLIENT_USERNAME"), require(env, "MLFLOW_CLIENT_PASSWORD"), False),
    ]
    for username, password, is_admin in users:
        if not store.has_user(username):
            store.create_user(username, password, is_admin=is_admin)
            log.info("created user %s", username)
        elif not store.authenticate_user(username, password):
            store.update_user(username, password=password)  # the secret was rotated
            log.info("updated the password of user %s", username)


# MLflow 3 starts a job runner beside every server (GenAI scorers, prompt optimisation, trace
# rollups: mlflow/environment_variables.py, MLFLOW_SERVER_ENABLE_JOB_EXECUTION, default true):
# eight more Python processes of about 180 MiB each, about 1.4 GiB, which with the server's
# own 600 MiB overflows the 2 GiB task or t3.small (tests/tracking/test_self_hosted_server.py
# measures it). Its periodic tasks would also run once per task, where MLflow asks for one
# instance only (MLFLOW_SERVER_JOB_ENABLE_PERIODIC_TASKS). The platform's jobs log runs and
# models through the API and use none of it.
JOB_EXECUTION_DEFAULT = "false"


def server_environment(env: Mapping[str, str], backend_uri: str) -> dict[str, str]:
    """What the server process gets: ``env`` without the owner's credentials, plus the
    settings derived here (host names, job runner, basic auth's config and key)."""
    child_env = {k: v for k, v in env.items() if not k.startswith("DB_MASTER_")}
    child_env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", JOB_EXECUTION_DEFAULT)
    if env.get("MLFLOW_SERVER_ALLOWED_HOSTS"):
        child_env["MLFLOW_SERVER_ALLOWED_HOSTS"] = allowed_hosts(env["MLFLOW_SERVER_ALLOWED_HOSTS"])
    if env.get("MLFLOW_AUTH", "basic") == "basic":
        fd, path = tempfile.mkstemp(prefix="basic_auth", suffix=".ini")  # mode 0600
        with os.fdopen(fd, "w") as handle:
            handle.write(auth_config(backend_uri))
        child_env["MLFLOW_AUTH_CONFIG_PATH"] = path
        child_env["MLFLOW_FLASK_SERVER_SECRET_KEY"] = flask_secret_key(env)
    return child_env


def main(env: Mapping[str, str] = os.environ) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    separate_owner = bool(env.get("DB_MASTER_USERNAME"))
    try:
        backend_uri = database_uri(env)
        owner_uri = database_uri(env, "DB_MASTER_") if separate_owner else backend_uri
        command = server_command(env, backend_uri)
        if separate_owner:
            _identifier(require(env, "DB_USERNAME"))
    except ConfigurationError as err:
        sys.exit(f"mlflow-entrypoint: {err}")
    migrate(owner_uri, env)
    if separate_owner:
        grant_server_user(owner_uri, env)
    # The server holds only its own user's credentials.
    child_env = server_environment(env, backend_uri)
    log.info("starting: %s", " ".join(c for c in command if "store-uri" not in c))
    os.execvpe(command[0], command, child_env)  # noqa: S606 (replace this process: signals reach MLflow)


if __name__ == "__main__":
    main()
