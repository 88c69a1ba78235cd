"""The self-hosted tracking server as the template deploys it, run for real.

containers/tracking/entrypoint.py runs as a process with exactly the environment the
synthesized template gives it (fargate: the task definition's environment and secrets; ec2:
the user data's secrets script and systemd unit), against a real database of the engine the
mode deploys (PostgreSQL for fargate's Aurora, MariaDB for ec2's RDS MySQL), with artifacts
proxied to an S3 emulator (moto) bucket of the template's name. A client then reaches it
under the host name the template gives clients (the load balancer's mixed-case DNS name,
routed to the loopback port the way the load balancer forwards) and creates an experiment,
logs a run with a model, registers it and sets an alias, with the client credentials the
template's secret holds.

What the harness sets besides the template's values (the container image or AWS gives them):
the listen port and address (loopback), AWS credentials and the S3 emulator's endpoint.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
import requests

from tests.conftest import synthesized
from tests.synth import DEPLOY_REGION, ROOT
from tests.tracking.databases import (
    LOOPBACK,
    Database,
    free_port,
    mariadb,
    mariadb_installed,
    moto_server,
    postgres,
)
from tests.tracking.deployment import Deployment, database_credentials, deployment

pytestmark = pytest.mark.real_database

ENTRYPOINT = ROOT / "containers" / "tracking" / "entrypoint.py"
START_SECONDS = 240
TIMEOUT = 60  # seconds per request: CI shares two cores
MODEL_NAME = "iris-model"
MEMORY_SHARE = 0.75  # of the task's (or instance's) memory the idle server may take

DatabaseFactory = Callable[..., AbstractContextManager[Database]]


@pytest.fixture
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server on loopback, empty."""
    with moto_server(timeout=TIMEOUT) as endpoint:
        yield endpoint


def _aws_env(endpoint: str) -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": DEPLOY_REGION,
        "AWS_ENDPOINT_URL_S3": endpoint,
        "MLFLOW_S3_ENDPOINT_URL": endpoint,
    }


@dataclass(frozen=True)
class ServerProcess:
    """A running entrypoint: where it listens, and its process (MLflow's are its children)."""

    port: int
    pid: int

    def memory_by_process(self) -> dict[str, float]:
        """Proportional set size (MiB: pages they share counted once) of the process and each
        descendant, by pid and command: what they take of the container's or instance's memory."""
        import psutil  # noqa: PLC0415

        root = psutil.Process(self.pid)
        return {
            f"{p.pid} {' '.join(p.cmdline()[1:4])}": p.memory_full_info().pss / 2**20
            for p in [root, *root.children(recursive=True)]
        }


@contextmanager
def running_server(server_env: dict[str, str], endpoint: str, log: Path) -> Iterator[ServerProcess]:
    """The entrypoint as a process with the template's environment, serving."""
    port = free_port()
    env = {
        **server_env,
        # The harness: where to listen (loopback, a free port), and what the image or the
        # task role gives the process in AWS (PATH, HOME, AWS credentials).
        "MLFLOW_PORT": str(port),
        "MLFLOW_HOST": LOOPBACK,
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(log.parent),
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "1",
        "PYTHONUNBUFFERED": "1",
        **_aws_env(endpoint),
    }
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, str(ENTRYPOINT)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its workers die with it
        )
    try:
        deadline = time.monotonic() + START_SECONDS
        while True:
            if process.poll() is not None:
                raise AssertionError(
                    f"the server exited with {process.returncode}:\n{log.read_text()[-3000:]}"
                )
            try:
                if requests.get(f"http://{LOOPBACK}:{port}/health", timeout=10).ok:
                    break
            except requests.RequestException:  # not listening yet, or busy starting
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"no /health in {START_SECONDS} s:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield ServerProcess(port, process.pid)
    finally:
        _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group (MLflow and its workers), SIGKILL after 30 s."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@contextmanager
def routed(host: str, port: int, to_port: int, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Resolve ``host:port`` to the loopback server, as DNS and the load balancer would.

    Only this process's name lookups change: the client still puts ``host`` (as its HTTP
    library writes it) in the Host header, and connects to what the lookup returned.
    """
    real = socket.getaddrinfo

    def getaddrinfo(name: Any, service: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(name, str) and name.lower() == host.lower() and int(service) == port:
            return real(LOOPBACK, to_port, *args, **kwargs)
        return real(name, service, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(socket, "getaddrinfo", getaddrinfo)
        patch.setenv("NO_PROXY", "*")
        yield


def _exercise(deployed: Deployment, server_port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a training job does: experiment, run with a model, registration, alias."""
    import mlflow  # noqa: PLC0415
    from mlflow import MlflowClient  # noqa: PLC0415
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri  # noqa: PLC0415
    from sklearn.linear_model import LogisticRegression  # noqa: PLC0415

    uri = urlsplit(deployed.tracking_uri)
    assert uri.hostname is not None
    client_secret = deployed.secret_named(deployed.server_env["MLFLOW_CLIENT_USERNAME"])
    health = f"http://{LOOPBACK}:{server_port}/health"
    assert uri.scheme == "http", "an https tracking URI needs the test to terminate TLS"
    with routed(uri.hostname, uri.port or 80, server_port, monkeypatch), monkeypatch.context() as m:
        m.setenv("MLFLOW_TRACKING_USERNAME", client_secret["username"])
        m.setenv("MLFLOW_TRACKING_PASSWORD", client_secret["password"])
        api = f"{deployed.tracking_uri}/api/2.0/mlflow/experiments/search"
        auth = (client_secret["username"], client_secret["password"])
        listing = requests.post(api, json={"max_results": 1}, auth=auth, timeout=TIMEOUT)
        assert listing.status_code == 200, (
            f"POST {api} (Host: {uri.hostname}, as the client library writes it) -> "
            f"{listing.status_code} {listing.text.strip()[:200]!r}; /health -> "
            f"{requests.get(health, timeout=TIMEOUT).status_code}; server allows "
            f"MLFLOW_SERVER_ALLOWED_HOSTS={deployed.server_env['MLFLOW_SERVER_ALLOWED_HOSTS']}"
        )
        # Basic auth is on: a wrong password is refused.
        wrong = requests.post(api, json={}, auth=(auth[0], "wrong"), timeout=TIMEOUT)
        assert wrong.status_code == 401
        client = MlflowClient(deployed.tracking_uri)
        experiment_id = client.create_experiment("server-check")
        with _use_tracking_uri(deployed.tracking_uri):
            with mlflow.start_run(experiment_id=experiment_id) as run:
                mlflow.log_param("C", 1.0)
                mlflow.log_metric("accuracy", 0.97)
                model = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
                info = mlflow.sklearn.log_model(
                    model,
                    name="model",
                    registered_model_name=MODEL_NAME,
                    serialization_format="cloudpickle",
                    pip_requirements=["scikit-learn"],
                )
            version = info.registered_model_version
            assert version is not None
            client.set_registered_model_alias(MODEL_NAME, "production", str(version))
            champion = client.get_model_version_by_alias(MODEL_NAME, "production")
            assert champion.run_id == run.info.run_id
            loaded = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@production")
            assert list(loaded.predict([[0.0], [3.0]])) == [0, 1]
        # Artifacts went through the server's proxy to the template's bucket and prefix.
        s3 = boto3.client("s3", region_name=DEPLOY_REGION)
        prefix = deployed.server_env["MLFLOW_ARTIFACTS_DESTINATION"].split("/", 3)[3]
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=deployed.bucket)["Contents"]]
        assert any(k.startswith(f"{prefix}/") and k.endswith("model.pkl") for k in keys), keys
        # The host check is on (this run passed because the names match, not because it is off).
        stranger = requests.get(
            f"http://{LOOPBACK}:{server_port}/api/2.0/mlflow/experiments/search",
            headers={"Host": "attacker.example"},
            auth=auth,
            timeout=TIMEOUT,
        )
        assert stranger.status_code == 403


@dataclass(frozen=True)
class Case:
    env: str
    overrides: dict[str, str]
    database: DatabaseFactory


# Each self-hosted mode once, with the engine it deploys (Aurora PostgreSQL, RDS MySQL).
CASES = [
    pytest.param(Case("prod", {}, postgres), id="fargate-prod-postgresql"),
    pytest.param(Case("prod", {"tracking.mode": "ec2"}, mariadb), id="ec2-prod-mariadb"),
]


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
def test_the_deployed_server_serves_clients_through_its_host_name(
    case: Case, s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = case.database
    if database is mariadb and not mariadb_installed():
        pytest.skip("MariaDB is not installed (apt-get install mariadb-server): ec2 unverified")
    app = synthesized(case.env, form="deployed", **case.overrides)
    credentials = database_credentials(app)
    with database(name="mlflow", **credentials) as db:
        deployed = deployment(app, {"host": db.host, "port": db.port, "engine": db.engine})
        assert deployed.server_env["DB_ENGINE"] == db.engine
        for key, value in _aws_env(s3_endpoint).items():
            monkeypatch.setenv(key, value)
        boto3.client("s3", region_name=DEPLOY_REGION).create_bucket(
            Bucket=deployed.bucket,
            CreateBucketConfiguration={"LocationConstraint": DEPLOY_REGION},
        )
        with running_server(deployed.server_env, s3_endpoint, tmp_path / "server.log") as server:
            _exercise(deployed, server.port, monkeypatch)
            # It fits where it runs, with a quarter left for request peaks (and, on ec2, the
            # operating system and agents).
            processes = server.memory_by_process()
            used = sum(processes.values())
            budget = deployed.memory_mib * MEMORY_SHARE
            assert used <= budget, (
                f"the server's processes take {used:.0f} MiB of the {deployed.memory_mib} MiB "
                f"{deployed.mode} gives it (at most {budget:.0f}): "
                + "; ".join(f"{mib:.0f} MiB {process}" for process, mib in processes.items())
            )
