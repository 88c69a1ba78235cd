"""Real database servers for the tracking server tests, started in a temporary directory.

PostgreSQL comes from the ``pgserver`` wheel (its bundled server binaries; requirements-dev.txt),
MariaDB from Debian's ``mariadb-server`` package when it is installed (the Makefile installs it
where apt-get is available). Each listens on a free loopback port with password authentication,
and holds one database owned by the user the template names, with the privileges RDS and Aurora
give their master user (create users and grant them the database).
"""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

LOOPBACK = "127.0.0.1"
# An unprivileged system user to run the servers as when the tests run as root (CI does):
# PostgreSQL refuses to start as root. pgserver creates the same user for the same reason.
POSTGRES_SYSTEM_USER = "pgserver"
MARIADB_SYSTEM_USER = "mysql"  # created by Debian's mariadb-server package
MARIADB_SERVER = "/usr/sbin/mariadbd"
MARIADB_INSTALL_DB = "/usr/bin/mariadb-install-db"


@dataclass(frozen=True)
class Database:
    """Where a test database listens and the credentials of its owner."""

    engine: str  # "postgresql" or "mysql", as the entrypoint's DB_ENGINE
    host: str
    port: int
    name: str
    username: str
    password: str


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


@contextmanager
def moto_server(*, timeout: float) -> Iterator[str]:
    """A moto server on loopback, empty while in use (moto keeps its state per process: it is
    reset on the way in and out); yields its endpoint URL."""
    import requests  # noqa: PLC0415
    from moto.server import ThreadedMotoServer  # noqa: PLC0415

    port = free_port()
    server = ThreadedMotoServer(ip_address=LOOPBACK, port=port, verbose=False)
    server.start()
    endpoint = f"http://{LOOPBACK}:{port}"
    requests.post(f"{endpoint}/moto-api/reset", timeout=timeout).raise_for_status()
    try:
        yield endpoint
    finally:
        requests.post(f"{endpoint}/moto-api/reset", timeout=timeout)
        server.stop()


def _as_root() -> bool:
    return os.geteuid() == 0


def _private_dir(prefix: str, owner: str | None) -> Path:
    """A 0700 directory under /tmp owned by ``owner`` (the server refuses group/other access)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    if owner is not None:
        shutil.chown(path, owner, owner)
    return path


def _wait_for_port(port: int, log: Path, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex((LOOPBACK, port)) == 0:
                return
        time.sleep(0.2)
    detail = log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"
    raise TimeoutError(f"database on port {port} did not start in {seconds} s:\n{detail}")


def _pg_command(name: str) -> Callable[..., str]:
    """pgserver's wrapper of one bundled PostgreSQL program (created at import, untyped)."""
    from pgserver import _commands  # noqa: PLC0415

    command: Callable[..., str] = getattr(_commands, name)
    return command


@contextmanager
def postgres(*, name: str, username: str, password: str) -> Iterator[Database]:
    """A real PostgreSQL server (pgserver's binaries) with ``name`` owned by ``username``."""
    import psycopg2  # type: ignore[import-untyped]  # noqa: PLC0415 (only these tests need it)
    from pgserver import _commands as pg  # noqa: PLC0415
    from pgserver import utils as pg_utils  # noqa: PLC0415

    initdb, pg_ctl = _pg_command("initdb"), _pg_command("pg_ctl")

    user = None
    if _as_root():
        user = POSTGRES_SYSTEM_USER
        pg_utils.ensure_user_exists(user)
        pg_utils.ensure_prefix_permissions(pg.POSTGRES_BIN_PATH)
        read_execute = stat.S_IRGRP | stat.S_IROTH | stat.S_IXGRP | stat.S_IXOTH
        pg_utils.ensure_folder_permissions(pg.POSTGRES_BIN_PATH, read_execute)
        pg_utils.ensure_folder_permissions(pg.POSTGRES_BIN_PATH.parent / "lib", read_execute)
    root = _private_dir("mlflow-pg-", user)
    data, log = root / "data", root / "server.log"
    superuser_password = "postgres-superuser-test"
    password_file = root / "superuser-password"
    password_file.write_text(superuser_password)
    if user is not None:
        shutil.chown(password_file, user, user)
    port = free_port()
    initdb(
        [
            "--auth=scram-sha-256",  # password authentication, as on Aurora
            "--encoding=UTF8",
            "--username=postgres",
            f"--pwfile={password_file}",
        ],
        pgdata=data,
        user=user,
        timeout=120,
    )
    pg_ctl(
        ["-w", "-o", f"-h {LOOPBACK} -p {port} -k {root}", "-l", str(log), "start"],
        pgdata=data,
        user=user,
        timeout=120,
    )
    try:
        admin = psycopg2.connect(
            host=LOOPBACK,
            port=port,
            user="postgres",
            password=superuser_password,
            dbname="postgres",
        )
        admin.autocommit = True
        with admin.cursor() as cursor:
            # Aurora's master user may create roles (rds_superuser: CREATEROLE, CREATEDB).
            cursor.execute(
                f'CREATE ROLE "{username}" LOGIN CREATEROLE CREATEDB PASSWORD %s', (password,)
            )
            cursor.execute(f'CREATE DATABASE "{name}" OWNER "{username}"')
        admin.close()
        yield Database("postgresql", LOOPBACK, port, name, username, password)
    finally:
        pg_ctl(["-m", "immediate", "stop"], pgdata=data, user=user, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


def mariadb_installed() -> bool:
    return Path(MARIADB_SERVER).exists() and Path(MARIADB_INSTALL_DB).exists()


@contextmanager
def mariadb(*, name: str, username: str, password: str) -> Iterator[Database]:
    """A real MariaDB server (Debian's mariadb-server) with ``name`` granted to ``username``."""
    import pymysql  # type: ignore[import-untyped]  # noqa: PLC0415

    user = MARIADB_SYSTEM_USER if _as_root() else None
    root = _private_dir("mlflow-mariadb-", user)
    data, log = root / "data", root / "server.log"
    as_user = [f"--user={user}"] if user else []
    subprocess.run(
        [
            MARIADB_INSTALL_DB,
            "--no-defaults",
            f"--datadir={data}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            *as_user,
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    port = free_port()
    server = subprocess.Popen(
        [
            MARIADB_SERVER,
            "--no-defaults",
            f"--datadir={data}",
            f"--socket={root / 'mysqld.sock'}",
            f"--pid-file={root / 'mysqld.pid'}",
            f"--log-error={log}",
            f"--bind-address={LOOPBACK}",
            f"--port={port}",
            "--skip-name-resolve",
            *as_user,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_port(port, log, 60)
        admin = pymysql.connect(host=LOOPBACK, port=port, user="root", password="")
        with admin.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE `{name}`")
            cursor.execute(f"CREATE USER '{username}'@'%%' IDENTIFIED BY %s", (password,))
            # RDS MySQL's master user holds its privileges on *.* WITH GRANT OPTION (it
            # creates users and grants them databases).
            cursor.execute(f"GRANT ALL PRIVILEGES ON *.* TO '{username}'@'%' WITH GRANT OPTION")
        admin.commit()
        admin.close()
        yield Database("mysql", LOOPBACK, port, name, username, password)
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        shutil.rmtree(root, ignore_errors=True)
