"""Start the emulator (tests/emulator/server.py), run the CDK CLI against it, read it back.

Everything runs offline on this machine: the moto server on a free 127.0.0.1 port, the
project's CDK CLI (node_modules/.bin/cdk) with AWS_ENDPOINT_URL pointing at it, and a
stand-in ``docker`` (tests/emulator/docker) for the image assets.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import psutil

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
CDK = ROOT / "node_modules" / ".bin" / "cdk"

# moto's default account; the CLI learns it from STS GetCallerIdentity, so the app is
# synthesized for the same one. The access key is used only here: the CLI caches
# access key -> account, and a key shared with another setup could map to another account.
ACCOUNT = "123456789012"
REGION = "eu-west-1"
ACCESS_KEY = "AKIAMLOPSEMULATOR001"
START_TIMEOUT_S = 60
CLI_TIMEOUT_S = 600


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class Emulator:
    """A running emulator and the environment every client of it uses."""

    port: int
    work: Path
    log: Path
    pid: int

    def server_cpu(self) -> float:
        """CPU seconds the emulator process has used so far."""
        times = psutil.Process(self.pid).cpu_times()
        return float(times.user + times.system)

    @property
    def endpoint(self) -> str:
        # "localhost", not 127.0.0.1: moto reads a TemplateURL (templates over 50 KiB go
        # through the bootstrap bucket) only when its host is localhost.
        return f"http://localhost:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        keep = ("PATH", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")
        home = self.work / "home"
        home.mkdir(exist_ok=True)
        # The app's jsii runtime keeps unpacked libraries under ~/.cache: share the user's
        # (unpacking aws-cdk-lib again costs ~10 s of CPU), keep the rest of HOME apart.
        jsii_cache = os.environ.get(
            "JSII_RUNTIME_PACKAGE_CACHE_ROOT",
            str(Path.home() / ".cache" / "aws" / "jsii" / "package-cache"),
        )
        return {
            **{name: os.environ[name] for name in keep if name in os.environ},
            "HOME": str(home),  # the CLI's caches (~/.cdk: access key -> account) stay in this run
            "JSII_RUNTIME_PACKAGE_CACHE_ROOT": jsii_cache,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": "emulator",  # a dummy for the emulator
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_CONFIG_FILE": str(home / "aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(home / "aws-credentials"),
            "AWS_EC2_METADATA_DISABLED": "true",
            "CDK_DEFAULT_ACCOUNT": ACCOUNT,
            "CDK_DEFAULT_REGION": REGION,
            "CDK_DOCKER": str(HERE / "docker"),
            "EMULATOR_PYTHON": sys.executable,
            "EMULATOR_DOCKER_STATE": str(self.work / "docker"),
            "CDK_DISABLE_CLI_TELEMETRY": "true",
            "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
            "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
            "AWS_SDK_JS_SUPPRESS_MAINTENANCE_MODE_MESSAGE": "1",
            "NODE_NO_WARNINGS": "1",
        }

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key="emulator",  # a dummy for the emulator
        )

    @property
    def project(self) -> Path:
        """The CLI's working directory: the project's cdk.json and this run's lookups.

        The CLI reads cdk.json from its working directory and writes the lookups it makes to
        cdk.context.json there; a directory of its own keeps the worktree untouched. The
        availability-zone lookup is answered in advance with the emulator's own answer
        (DescribeAvailabilityZones), which saves the CLI a second synthesis of the app.
        """
        project = self.work / "project"
        if not project.exists():
            project.mkdir()
            (project / "cdk.json").write_text((ROOT / "cdk.json").read_text())
            zones = [f"{REGION}{suffix}" for suffix in "abc"]
            lookups = {f"availability-zones:account={ACCOUNT}:region={REGION}": zones}
            (project / "cdk.context.json").write_text(json.dumps(lookups, indent=2))
        return project

    def cdk(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run the project's CDK CLI; fail with its output when it fails."""
        result = subprocess.run(
            [str(CDK), *args],
            cwd=self.project,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT_S,
            check=False,
        )
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).splitlines()[-40:])
            raise AssertionError(f"cdk {' '.join(args[:2])} failed:\n{tail}")
        return result


@contextlib.contextmanager
def running_emulator(work: Path) -> Iterator[Emulator]:
    """Start tests/emulator/server.py on a free port; always stop it, bounded waits."""
    port = _free_port()
    log = work / "emulator.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.emulator.server", str(port)],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"emulator exited with {process.returncode}:\n{log.read_text()}")
            try:
                with urllib.request.urlopen(  # our own loopback server
                    f"http://127.0.0.1:{port}/moto-api/", timeout=2
                ):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"emulator not up after {START_TIMEOUT_S}s") from None
                time.sleep(0.2)
        yield Emulator(port=port, work=work, log=log, pid=process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def bootstrap(emulator: Emulator) -> None:
    """``cdk bootstrap`` into the emulator: the assets bucket, ECR repository and roles."""
    emulator.cdk("bootstrap", f"aws://{ACCOUNT}/{REGION}", "--app", "")


def stack_templates(assembly: Path) -> dict[str, dict[str, Any]]:
    """The stacks of a synthesized cloud assembly by stack name, with their templates."""
    manifest = json.loads((assembly / "manifest.json").read_text())
    templates = {}
    for artifact in manifest["artifacts"].values():
        if artifact["type"] == "aws:cloudformation:stack":
            name = artifact["properties"].get("stackName") or artifact["displayName"]
            template_file = artifact["properties"]["templateFile"]
            templates[name] = json.loads((assembly / template_file).read_text())
    return templates


def _all(pages: Any, key: str) -> list[Any]:
    return [item for page in pages for item in page[key]]


def inventory(emulator: Emulator) -> dict[str, set[str]]:
    """What exists in the emulator, by kind: compared before deploy and after destroy."""
    c = emulator.client
    ec2 = c("ec2")
    cfn = c("cloudformation")
    kms = c("kms")
    keys = {
        key["KeyId"]
        for key in c("kms").list_keys()["Keys"]
        if kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyState"] != "PendingDeletion"
    }
    return {
        "stacks": {
            s["StackName"]
            for s in cfn.list_stacks()["StackSummaries"]
            if s["StackStatus"] != "DELETE_COMPLETE"
        },
        "exports": {e["Name"] for e in cfn.list_exports()["Exports"]},
        "buckets": {b["Name"] for b in c("s3").list_buckets()["Buckets"]},
        "kms keys": keys,
        "iam roles": {r["RoleName"] for r in c("iam").list_roles()["Roles"]},
        "iam policies": {
            p["PolicyName"] for p in c("iam").list_policies(Scope="Local")["Policies"]
        },
        "lambda functions": {f["FunctionName"] for f in c("lambda").list_functions()["Functions"]},
        "log groups": {g["logGroupName"] for g in c("logs").describe_log_groups()["logGroups"]},
        "sqs queues": set(c("sqs").list_queues().get("QueueUrls", [])),
        "sns topics": {t["TopicArn"] for t in c("sns").list_topics()["Topics"]},
        "event rules": {r["Name"] for r in c("events").list_rules()["Rules"]},
        "vpcs": {v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"] if not v["IsDefault"]},
        "subnets": {s["SubnetId"] for s in ec2.describe_subnets()["Subnets"]},
        "security groups": {g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"]},
        "route tables": {r["RouteTableId"] for r in ec2.describe_route_tables()["RouteTables"]},
        "vpc endpoints": {e["VpcEndpointId"] for e in ec2.describe_vpc_endpoints()["VpcEndpoints"]},
        "flow logs": {f["FlowLogId"] for f in ec2.describe_flow_logs()["FlowLogs"]},
        "sagemaker pipelines": {
            p["PipelineName"] for p in c("sagemaker").list_pipelines()["PipelineSummaries"]
        },
        "schedules": {s["Name"] for s in c("scheduler").list_schedules()["Schedules"]},
        "secrets": {s["Name"] for s in c("secretsmanager").list_secrets()["SecretList"]},
    }
