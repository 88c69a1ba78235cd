"""The self-hosted tracking server's environment, read from the synthesized template.

Nothing here restates what the template says: the server's variables come from the fargate
task definition's ``Environment`` and ``Secrets`` (ECS injects the secrets' JSON keys), or, in
ec2 mode, from the start-up script the user data writes, run for real with a stand-in ``aws``
command, plus the systemd unit's ``Environment=`` lines. Tokens resolve to the values AWS
would give them (a mixed-case load balancer DNS name, secret ARNs, the artifacts bucket); the
secrets hold values shaped like the template's ``GenerateSecretString`` asks for.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.synth import DEPLOY_ACCOUNT, DEPLOY_REGION, SynthesizedApp
from tests.tracking.cfn import Resolver
from tools.synthesis import exports, templates_by_name

# What AWS names an internal ALB whose logical ID starts with "Fargate" in stack mlops-<env>-
# tracking: "internal-" + up to 32 characters of generated name + "-" + a number. Mixed case.
ALB_DNS_NAME = "internal-mlops-Farga-XMPL1A2B3C4D-1234567890.eu-west-1.elb.amazonaws.com"
# Passwords shaped as Secrets Manager generates them for each template's rules: the
# database's may hold the punctuation RDS leaves in (it excludes what breaks URLs and shells);
# the users' secrets exclude punctuation (one per secret, from its logical ID).
DB_PASSWORD = "Xmpl.db-pass_w0rd^with,punct=30"


def _user_password(logical_id: str) -> str:
    return hashlib.sha256(logical_id.encode()).hexdigest()[:32]


Template = dict[str, Any]


@dataclass(frozen=True)
class Deployment:
    """What one synthesized tracking stack gives the server and its clients."""

    mode: str
    server_env: dict[str, str]  # exactly the variables the server process gets
    tracking_uri: str  # the TrackingUri output clients are given
    secrets: dict[str, dict[str, Any]]  # secret ARN -> its JSON value
    bucket: str  # the artifacts bucket the server proxies to
    memory_mib: int  # what the server runs in: the task's memory, or the instance's

    def secret_named(self, username: str) -> dict[str, Any]:
        """The user secret whose template gives it ``username``."""
        (value,) = (s for s in self.secrets.values() if s.get("username") == username)
        return value


def _secret_arn(logical_id: str) -> str:
    return f"arn:aws:secretsmanager:{DEPLOY_REGION}:{DEPLOY_ACCOUNT}:secret:{logical_id}-XmPl12"


def _physical_id(stack: str, logical_id: str) -> str:
    return f"{stack}-{logical_id}".lower()[:63]


def _imports(app: SynthesizedApp) -> dict[str, str]:
    """Every export of the app whose value is a plain ``Ref``: its physical ID."""
    return {
        name: _physical_id(stack, value["Ref"])
        for name, (stack, value) in exports(templates_by_name(app.assembly)).items()
        if isinstance(value, dict) and set(value) == {"Ref"}
    }


def _template_text(value: Any) -> str:
    """A SecretStringTemplate: a string, or a ``Fn::Join`` naming another secret by ``Ref``
    (a user secret's ``masterarn``)."""
    if isinstance(value, str):
        return value
    separator, parts = value["Fn::Join"]
    return str(separator).join(p if isinstance(p, str) else _secret_arn(p["Ref"]) for p in parts)


def _secrets(
    template: Template, database: Mapping[str, Any]
) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    """Each secret's ``Ref`` (its ARN) and JSON value, the attachment's too."""
    resources: dict[str, Any] = template["Resources"]
    refs: dict[str, str] = {}
    values: dict[str, dict[str, Any]] = {}
    for logical_id, resource in resources.items():
        if resource["Type"] != "AWS::SecretsManager::Secret":
            continue
        generate = resource["Properties"]["GenerateSecretString"]
        value = json.loads(_template_text(generate["SecretStringTemplate"]))
        value[generate["GenerateStringKey"]] = (
            _user_password(logical_id) if generate.get("ExcludePunctuation") else DB_PASSWORD
        )
        refs[logical_id] = _secret_arn(logical_id)
        values[refs[logical_id]] = value
    for logical_id, resource in resources.items():
        if resource["Type"] == "AWS::SecretsManager::SecretTargetAttachment":
            secret_arn = refs[resource["Properties"]["SecretId"]["Ref"]]
            refs[logical_id] = secret_arn  # Ref of an attachment is the secret's ARN
            values[secret_arn] |= dict(database)  # what RDS writes into the secret
    return refs, values


def _resolver(app: SynthesizedApp, template: Template, refs: Mapping[str, str]) -> Resolver:
    stack = app.settings.stack_name("tracking")
    all_refs = {
        "AWS::Region": DEPLOY_REGION,
        "AWS::AccountId": DEPLOY_ACCOUNT,
        "AWS::Partition": "aws",
        "AWS::URLSuffix": "amazonaws.com",
        **{lid: _physical_id(stack, lid) for lid in template["Resources"]},
        **refs,
    }
    attributes = {
        (lid, "DNSName"): ALB_DNS_NAME
        for lid, resource in template["Resources"].items()
        if resource["Type"] == "AWS::ElasticLoadBalancingV2::LoadBalancer"
    }
    return Resolver(refs=all_refs, attributes=attributes, imports=_imports(app))


def deployment(app: SynthesizedApp, database: Mapping[str, Any]) -> Deployment:
    """The server environment and client URI of ``app``'s self-hosted tracking stack.

    ``database`` is what RDS writes into the database secret (host, port; the username and
    password come from the template's secret, so the test creates that user).
    """
    template = app.template_json("tracking")
    mode = app.settings.tracking.mode
    refs, secrets = _secrets(template, database)
    resolve = _resolver(app, template, refs)
    if mode == "fargate":
        env = _fargate_environment(template, resolve, secrets)
    elif mode == "ec2":
        env = _ec2_environment(template, resolve, secrets)
    else:
        raise ValueError(f"tracking.mode={mode!r} runs no self-hosted server")
    artifacts = env["MLFLOW_ARTIFACTS_DESTINATION"]
    bucket = artifacts.removeprefix("s3://").split("/", 1)[0]
    tracking_uri = resolve(template["Outputs"]["TrackingUri"]["Value"])
    return Deployment(mode, env, tracking_uri, secrets, bucket, _memory_mib(template, mode))


def database_credentials(app: SynthesizedApp) -> dict[str, str]:
    """The database owner's username and password as the template's database secret holds them."""
    _refs, secrets = _secrets(app.template_json("tracking"), {})
    # The master secret; the server user's secret (which names it in "masterarn") is the
    # entrypoint's to create in the database.
    (value,) = (
        s for s in secrets.values() if s["password"] == DB_PASSWORD and "masterarn" not in s
    )
    return {"username": value["username"], "password": value["password"]}


# Memory of the instance types the tested variants run (EC2 User Guide, "Instance types").
INSTANCE_MEMORY_MIB = {"t3.micro": 1024, "t3.small": 2048, "t3.medium": 4096, "t3.large": 8192}


def _memory_mib(template: Template, mode: str) -> int:
    """The memory the server process tree shares: the fargate task's, or the ec2 instance's."""
    if mode == "fargate":
        (task,) = (
            r for r in template["Resources"].values() if r["Type"] == "AWS::ECS::TaskDefinition"
        )
        return int(task["Properties"]["Memory"])
    (launch,) = (
        r for r in template["Resources"].values() if r["Type"] == "AWS::EC2::LaunchTemplate"
    )
    instance_type = launch["Properties"]["LaunchTemplateData"]["InstanceType"]
    if instance_type not in INSTANCE_MEMORY_MIB:
        raise AssertionError(f"add {instance_type}'s memory to INSTANCE_MEMORY_MIB")
    return INSTANCE_MEMORY_MIB[instance_type]


def _task_container(template: Template) -> dict[str, Any]:
    (task,) = (r for r in template["Resources"].values() if r["Type"] == "AWS::ECS::TaskDefinition")
    (container,) = task["Properties"]["ContainerDefinitions"]
    return dict(container)


def _fargate_environment(
    template: Template, resolve: Resolver, secrets: Mapping[str, Mapping[str, Any]]
) -> dict[str, str]:
    container = _task_container(template)
    env = {item["Name"]: resolve(item["Value"]) for item in container.get("Environment", [])}
    for item in container.get("Secrets", []):
        # ECS: "<secret ARN>:<json key>:<version stage>:<version id>" injects one JSON key.
        value_from = resolve(item["ValueFrom"])
        arn_parts = value_from.split(":")
        arn, key = ":".join(arn_parts[:7]), arn_parts[7]
        env[item["Name"]] = str(secrets[arn][key])
    return env


def _heredoc(script: str, path: str) -> str:
    match = re.search(rf"^cat > {re.escape(path)} <<'EOF'\n(.*?)\nEOF$", script, re.M | re.S)
    if match is None:
        raise AssertionError(f"the user data writes no {path}")
    return match.group(1)


def user_data(template: Template, resolve: Resolver) -> str:
    (launch,) = (
        r for r in template["Resources"].values() if r["Type"] == "AWS::EC2::LaunchTemplate"
    )
    return resolve(launch["Properties"]["LaunchTemplateData"]["UserData"])


def _ec2_environment(
    template: Template, resolve: Resolver, secrets: Mapping[str, Mapping[str, Any]]
) -> dict[str, str]:
    import tempfile  # noqa: PLC0415

    script = user_data(template, resolve)
    unit = _heredoc(script, "/etc/systemd/system/mlflow.service")
    env: dict[str, str] = {}
    env_file = ""
    for line in unit.splitlines():
        if line.startswith("Environment="):
            name, _, value = line.removeprefix("Environment=").partition("=")
            env[name] = value
        elif line.startswith("EnvironmentFile="):
            env_file = line.removeprefix("EnvironmentFile=").removeprefix("-")
    assert env_file, "the unit reads no EnvironmentFile"
    fetch = _heredoc(script, "/opt/mlflow/bin/fetch-secrets")
    with tempfile.TemporaryDirectory(prefix="fetch-secrets-") as tmp:
        root = Path(tmp)
        output = root / "env"
        assert env_file in fetch, f"fetch-secrets does not write {env_file}"
        (root / "fetch-secrets").write_text(fetch.replace(env_file, str(output)))
        (root / "secrets.json").write_text(
            json.dumps({k: json.dumps(v) for k, v in secrets.items()})
        )
        aws = root / "bin" / "aws"
        aws.parent.mkdir()
        # Stand-in for `aws secretsmanager get-secret-value --secret-id ARN --query
        # SecretString --output text`: prints the secret's string, fails on anything else.
        aws.write_text(
            f"#!{sys.executable}\n"
            "import json, sys\n"
            "args = sys.argv[1:]\n"
            "assert args[:2] == ['secretsmanager', 'get-secret-value'], args\n"
            "assert args[args.index('--query') + 1] == 'SecretString', args\n"
            "assert args[args.index('--output') + 1] == 'text', args\n"
            f"secrets = json.load(open({str(root / 'secrets.json')!r}))\n"
            "print(secrets[args[args.index('--secret-id') + 1]])\n"
        )
        aws.chmod(aws.stat().st_mode | stat.S_IXUSR)
        path = f"{aws.parent}{os.pathsep}{os.environ.get('PATH', '')}"
        subprocess.run(
            ["bash", str(root / "fetch-secrets")],
            env={"PATH": path, "HOME": tmp},
            check=True,
            capture_output=True,
            timeout=60,
        )
        # systemd's EnvironmentFile: KEY=VALUE lines; its values override Environment=.
        for line in output.read_text().splitlines():
            name, _, value = line.partition("=")
            env[name] = value
    return env
