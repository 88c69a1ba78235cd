"""The self-hosted MLflow entrypoint (containers/tracking/entrypoint.py): pure parts."""

from __future__ import annotations

import configparser
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.synth import ROOT


def load_entrypoint() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "tracking_entrypoint", ROOT / "containers" / "tracking" / "entrypoint.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


entrypoint = load_entrypoint()

ENV = {
    "DB_HOST": "db.internal",
    "DB_PORT": "5432",
    "DB_NAME": "mlflow",
    "DB_USERNAME": "mlflow",
    "DB_PASSWORD": "p@ss:w/rd%",
    "MLFLOW_ARTIFACTS_DESTINATION": "s3://bucket/mlflow",
}


def test_database_uri_quotes_the_password() -> None:
    assert entrypoint.database_uri(ENV) == (
        "postgresql+psycopg2://mlflow:p%40ss%3Aw%2Frd%25@db.internal:5432/mlflow"
    )
    assert entrypoint.database_uri({**ENV, "DB_ENGINE": "mysql"}).startswith("mysql+pymysql://")


def test_missing_or_bad_settings_are_named() -> None:
    with pytest.raises(entrypoint.ConfigurationError, match="DB_PASSWORD is required"):
        entrypoint.database_uri({**ENV, "DB_PASSWORD": ""})
    with pytest.raises(entrypoint.ConfigurationError, match="DB_ENGINE='sqlite'"):
        entrypoint.database_uri({**ENV, "DB_ENGINE": "sqlite"})
    with pytest.raises(entrypoint.ConfigurationError, match="MLFLOW_AUTH='ldap'"):
        entrypoint.server_command({**ENV, "MLFLOW_AUTH": "ldap"}, "uri")


def test_server_proxies_artifacts_and_uses_basic_auth_by_default() -> None:
    command = entrypoint.server_command(ENV, "postgresql+psycopg2://u:p@h:5432/mlflow")
    assert command[:4] == [sys.executable, "-m", "mlflow", "server"]
    assert "--serve-artifacts" in command
    assert "--artifacts-destination=s3://bucket/mlflow" in command
    assert "--app-name=basic-auth" in command
    unauthenticated = entrypoint.server_command({**ENV, "MLFLOW_AUTH": "none"}, "uri")
    assert not any(part.startswith("--app-name") for part in unauthenticated)


def test_auth_config_keeps_users_in_the_same_database() -> None:
    uri = entrypoint.database_uri(ENV)
    parser = configparser.ConfigParser()
    parser.read_string(entrypoint.auth_config(uri))
    assert parser["mlflow"]["database_uri"] == uri  # '%' survives configparser interpolation
    assert parser["mlflow"]["default_permission"] == "READ"


def test_the_owner_migrates_and_the_server_runs_as_its_own_user(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With DB_MASTER_*: migrations and grants as the owner; the server process gets only the
    server user's URI and no master credentials (secret rotation, docs/tracking.md)."""
    calls: list[tuple[str, str]] = []
    monkeypatch.setattr(entrypoint, "migrate", lambda uri, env: calls.append(("migrate", uri)))
    monkeypatch.setattr(
        entrypoint, "grant_server_user", lambda uri, env: calls.append(("grant", uri))
    )
    started: dict[str, object] = {}

    def execvpe(file: str, args: list[str], env: dict[str, str]) -> None:
        started.update(args=args, env=env)

    monkeypatch.setattr(entrypoint.os, "execvpe", execvpe)
    env = {
        **ENV,
        "DB_USERNAME": "mlflow_server_clone",
        "DB_PASSWORD": "server",
        "DB_MASTER_USERNAME": "mlflow",
        "DB_MASTER_PASSWORD": "master",
        "MLFLOW_AUTH_ADMIN_PASSWORD": "admin",
    }
    entrypoint.main(env)
    owner = "postgresql+psycopg2://mlflow:master@db.internal:5432/mlflow"
    assert calls == [("migrate", owner), ("grant", owner)]
    args, child = started["args"], started["env"]
    assert isinstance(args, list) and isinstance(child, dict)
    server = "postgresql+psycopg2://mlflow_server_clone:server@db.internal:5432/mlflow"
    assert f"--backend-store-uri={server}" in args
    assert not any(key.startswith("DB_MASTER_") for key in child)
    auth_config = Path(child["MLFLOW_AUTH_CONFIG_PATH"])
    assert "master" not in repr(args) + auth_config.read_text()
    auth_config.unlink()


def test_a_user_name_that_cannot_be_quoted_is_refused() -> None:
    with pytest.raises(entrypoint.ConfigurationError, match=r"'a\"b' is not"):
        entrypoint._identifier('a"b')


def test_the_server_starts_without_mlflows_job_runner_unless_asked() -> None:
    """MLflow's job runner is eight more processes (~1.4 GiB) the platform never uses."""
    env = {**ENV, "MLFLOW_AUTH": "none"}
    assert entrypoint.server_environment(env, "uri")["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == (
        "false"
    )
    asked = {**env, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "true"}
    assert entrypoint.server_environment(asked, "uri")["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == (
        "true"
    )
