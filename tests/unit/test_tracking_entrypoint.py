"""The self-hosted MLflow entrypoint (containers/tracking/entrypoint.py): pure parts."""

from __future__ import annotations

import configparser
import importlib.util
import sys
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
