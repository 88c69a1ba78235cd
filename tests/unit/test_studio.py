"""Fine-grained assertions on the Studio stack (domain, role, lifecycle config, teardown)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from mlops_cdk.constructs.studio_domain import MLFLOW_ENV_SCRIPT
from mlops_cdk.settings import ConfigError, Settings
from tests.conftest import app_key, synthesized, with_app
from tests.synth import SynthesizedApp
from tools import cdk_json
from tools.cdk_json import ENVIRONMENTS


def _one(app: SynthesizedApp, resource_type: str) -> dict[str, Any]:
    (resource,) = app.template("studio").find_resources(resource_type).values()
    return dict(resource)


def _domain(app: SynthesizedApp) -> dict[str, Any]:
    return dict(_one(app, "AWS::SageMaker::Domain")["Properties"])


def _statements(app: SynthesizedApp, role_prefix: str) -> list[dict[str, Any]]:
    """Every statement of the inline policies attached to the role whose logical ID starts so."""
    template = app.template_json("studio")["Resources"]
    (role_id,) = [
        k
        for k, v in template.items()
        if v["Type"] == "AWS::IAM::Role" and k.startswith(role_prefix)
    ]
    statements: list[dict[str, Any]] = []
    for resource in template.values():
        if (
            resource["Type"] == "AWS::IAM::Policy"
            and {"Ref": role_id} in resource["Properties"]["Roles"]
        ):
            statements += resource["Properties"]["PolicyDocument"]["Statement"]
    return statements


def _actions(statement: dict[str, Any]) -> list[str]:
    actions = statement["Action"]
    return [actions] if isinstance(actions, str) else list(actions)


def _resources(statement: dict[str, Any]) -> list[Any]:
    resources = statement["Resource"]
    return resources if isinstance(resources, list) else [resources]


@pytest.fixture(scope="module")
def public() -> SynthesizedApp:
    return synthesized("staging", **{"studio.network_access": "PublicInternetOnly"})


@pytest.fixture(scope="module")
def retained() -> SynthesizedApp:
    return synthesized("staging", removal_policy="retain")


# -- which environments have it ----------------------------------------------------------------


@pytest.mark.parametrize("env", ENVIRONMENTS)
@pytest.mark.parametrize("enabled", ["true", "false"])
def test_every_environment_synthesizes_with_and_without_studio(env: str, enabled: str) -> None:
    app = synthesized(env, **{"studio.enabled": enabled})
    assert app.has_stack("studio") is (enabled == "true")
    if enabled == "true":
        assert app.has_stack("network"), "a Studio domain's EFS lives in the VPC's subnets"


def test_studio_is_off_in_dev_and_on_in_staging_and_prod() -> None:
    environments = cdk_json.context()["environments"]
    enabled = {
        env: Settings.from_context({"env": env, "environments": environments}, {}).studio.enabled
        for env in ENVIRONMENTS
    }
    assert enabled == {"dev": False, "staging": True, "prod": True}


# -- the domain --------------------------------------------------------------------------------


def test_domain_is_vpc_only_in_the_private_subnets(staging: SynthesizedApp) -> None:
    domain = _domain(staging)
    assert domain["AppNetworkAccessType"] == "VpcOnly"
    assert domain["AuthMode"] == "IAM"
    assert "mlops-staging-network" in json.dumps(domain["VpcId"])
    assert len(domain["SubnetIds"]) == 2
    assert all("privateSubnet" in json.dumps(s) for s in domain["SubnetIds"])


def test_public_internet_only_when_configured(public: SynthesizedApp) -> None:
    assert _domain(public)["AppNetworkAccessType"] == "PublicInternetOnly"


def test_home_efs_and_volumes_use_the_storage_key(staging: SynthesizedApp) -> None:
    key = _domain(staging)["KmsKeyId"]["Fn::ImportValue"]
    assert key.startswith(
        "mlops-staging-storage:ExportsOutputFnGetAttKey"
    )  # StorageStack.key's ARN


@pytest.mark.parametrize("app_settings", ["JupyterLabAppSettings", "CodeEditorAppSettings"])
def test_apps_shut_down_when_idle(staging: SynthesizedApp, app_settings: str) -> None:
    settings = _domain(staging)["DefaultUserSettings"][app_settings]
    assert settings["AppLifecycleManagement"] == {
        "IdleSettings": {
            "LifecycleManagement": "ENABLED",
            "IdleTimeoutInMinutes": 60,
            "MinIdleTimeoutInMinutes": 60,
            "MaxIdleTimeoutInMinutes": 480,
        }
    }
    assert settings["DefaultResourceSpec"] == {"InstanceType": "ml.t3.medium"}


def test_idle_timeout_follows_the_setting() -> None:
    app = synthesized("staging", **{"studio.idle_timeout_minutes": "120"})
    idle = _domain(app)["DefaultUserSettings"]["JupyterLabAppSettings"]["AppLifecycleManagement"]
    assert idle["IdleSettings"]["IdleTimeoutInMinutes"] == 120


@pytest.mark.parametrize(
    "app_settings, app_type",
    [("JupyterLabAppSettings", "JupyterLab"), ("CodeEditorAppSettings", "CodeEditor")],
)
def test_every_app_start_exports_the_tracking_uri(
    staging: SynthesizedApp, app_settings: str, app_type: str
) -> None:
    arn = _domain(staging)["DefaultUserSettings"][app_settings]["BuiltInLifecycleConfigArn"]
    config_id = arn["Fn::GetAtt"][0]
    config = staging.template_json("studio")["Resources"][config_id]["Properties"]
    assert config["StudioLifecycleConfigAppType"] == app_type
    script = json.dumps(config["StudioLifecycleConfigContent"]["Fn::Base64"])
    assert "MLFLOW_TRACKING_URI" in script
    # The script reads this stack's parameter; the parameter holds the tracking stack's URI,
    # resolved at deploy time (no copy-paste), and may change without a new script.
    (parameter_id,) = staging.template("studio").find_resources("AWS::SSM::Parameter")
    assert {"Ref": parameter_id} in config["StudioLifecycleConfigContent"]["Fn::Base64"][
        "Fn::Join"
    ][1]
    assert "mlops-staging-tracking" not in script
    assert "mlops-staging-tracking" in _mlflow_settings(staging)


def _mlflow_settings(app: SynthesizedApp) -> str:
    """The SSM parameter value the lifecycle script reads (tokens as CloudFormation JSON)."""
    parameter = _one(app, "AWS::SSM::Parameter")["Properties"]
    return json.dumps(parameter["Value"])


def test_notebooks_authenticate_to_a_self_hosted_mlflow(prod: SynthesizedApp) -> None:
    assert prod.settings.tracking.mode == "fargate"  # basic auth with the client user
    settings = _mlflow_settings(prod)
    assert '\\"secret_arn\\":\\"' in settings and "ClientSecret" in settings
    reads = [s for s in _statements(prod, "DomainExecutionRole") if "secretsmanager" in str(s)]
    assert any("ClientSecret" in json.dumps(s["Resource"]) for s in reads)


def test_notebooks_sign_requests_to_sagemaker_mlflow_with_no_secret(
    staging: SynthesizedApp,
) -> None:
    assert staging.settings.tracking.mode == "serverless"  # SageMaker's MLflow: the role signs
    assert '\\"secret_arn\\":\\"\\"' in _mlflow_settings(staging)


def test_the_execution_role_reads_the_mlflow_settings(staging: SynthesizedApp) -> None:
    (parameter_id,) = staging.template("studio").find_resources("AWS::SSM::Parameter")
    reads = [
        s for s in _statements(staging, "DomainExecutionRole") if "ssm:GetParameter" in s["Action"]
    ]
    assert parameter_id in json.dumps(reads)


@pytest.fixture
def moto_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A moto server: the lifecycle script's own python3 process calls AWS through it."""
    server = ThreadedMotoServer(port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    for name, value in {
        "AWS_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }.items():
        monkeypatch.setenv(name, value)
    yield url
    server.stop()


def test_the_lifecycle_script_logs_notebooks_in_without_writing_the_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, moto_server: str
) -> None:
    arn = boto3.client("secretsmanager").create_secret(
        Name="client",
        SecretString=json.dumps({"username": "mlflow-client", "password": "pw-9"}),
    )["ARN"]
    settings = {"uri": "http://mlflow.internal", "secret_arn": arn}
    boto3.client("ssm").put_parameter(Name="mlflow", Value=json.dumps(settings), Type="String")
    script = MLFLOW_ENV_SCRIPT.format(parameter="mlflow", region="eu-west-1")
    env = {**os.environ, "HOME": str(tmp_path)}
    for _ in range(2):  # every app start runs it again
        subprocess.run(["bash", "-c", script], env=env, capture_output=True, check=True)
    startup = tmp_path / ".ipython/profile_default/startup/00-mlflow-tracking-uri.py"
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.setenv(name, "")  # so that the original state is restored afterwards
        monkeypatch.delenv(name)
    exec(compile(startup.read_text(), str(startup), "exec"), {})  # what IPython does
    assert os.environ["MLFLOW_TRACKING_URI"] == "http://mlflow.internal"
    assert os.environ["MLFLOW_TRACKING_USERNAME"] == "mlflow-client"
    assert os.environ["MLFLOW_TRACKING_PASSWORD"] == "pw-9"
    written = "".join(p.read_text() for p in tmp_path.rglob("*") if p.is_file())
    assert "pw-9" not in written
    assert len((tmp_path / ".bashrc").read_text().splitlines()) == 1  # sourced once: idempotent
    shell = subprocess.run(
        ["bash", "-c", ". ~/.mlflow-tracking-uri.sh; echo $MLFLOW_CREDENTIALS_SECRET_ARN"],
        env={"HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert shell.stdout.strip() == arn


def test_the_app_starts_without_mlflow_settings_when_the_parameter_is_unreadable(
    tmp_path: Path, moto_server: str
) -> None:
    script = MLFLOW_ENV_SCRIPT.format(parameter="missing", region="eu-west-1")
    env = {**os.environ, "HOME": str(tmp_path)}
    run = subprocess.run(
        ["bash", "-c", script], env=env, capture_output=True, text=True, check=False
    )
    assert run.returncode == 0
    assert "MLflow settings not read from SSM parameter missing" in run.stderr
    assert not (tmp_path / ".mlflow-tracking-uri.sh").exists()


def test_user_profiles_come_from_config(staging: SynthesizedApp) -> None:
    profiles = staging.template("studio").find_resources("AWS::SageMaker::UserProfile")
    assert sorted(p["Properties"]["UserProfileName"] for p in profiles.values()) == [
        "data-scientist"
    ]
    outputs = staging.template_json("studio")["Outputs"]
    assert outputs["UserProfileNames"]["Value"] == "data-scientist"


def test_outputs_name_the_domain_url_and_role(staging: SynthesizedApp) -> None:
    outputs = staging.template_json("studio")["Outputs"]
    assert {"DomainId", "StudioUrl", "ExecutionRoleArn", "UserProfileNames"} <= set(outputs)
    url = json.dumps(outputs["StudioUrl"]["Value"])
    assert url.startswith('{"Fn::Join": ["", ["https://", {"Fn::GetAtt": [')
    assert '".studio.", {"Ref": "AWS::Region"}, ".sagemaker.aws"' in url


# -- the execution role: MLflow, the data prefixes, its own domain, nothing more ------------------

ALLOWED_EXECUTION_ACTIONS = {
    # MLflow (TrackingBackend.grant_use for the SageMaker modes)
    "sagemaker-mlflow:*",
    "sagemaker:CallMlflowAppApi",
    "sagemaker:DescribeMlflowApp",
    "sagemaker:CreatePresignedMlflowAppUrl",
    "sagemaker:DescribeMlflowTrackingServer",
    "sagemaker:CreatePresignedMlflowTrackingServerUrl",
    # the lifecycle script reads the MLflow settings parameter
    "ssm:GetParameter",
    # S3 and KMS through CDK grants
    "s3:GetObject*",
    "s3:GetBucket*",
    "s3:List*",
    "s3:DeleteObject*",
    "s3:PutObject",
    "s3:PutObjectLegalHold",
    "s3:PutObjectRetention",
    "s3:PutObjectTagging",
    "s3:PutObjectVersionTagging",
    "s3:Abort*",
    "kms:Decrypt",
    "kms:DescribeKey",
    "kms:Encrypt",
    "kms:ReEncrypt*",
    "kms:GenerateDataKey*",
    "kms:CreateGrant",
    # Studio's own UI, within this domain
    "sagemaker:DescribeDomain",
    "sagemaker:DescribeUserProfile",
    "sagemaker:CreateSpace",
    "sagemaker:UpdateSpace",
    "sagemaker:DeleteSpace",
    "sagemaker:DescribeSpace",
    "sagemaker:CreateApp",
    "sagemaker:DeleteApp",
    "sagemaker:DescribeApp",
    "sagemaker:AddTags",
    "sagemaker:ListSpaces",
    "sagemaker:ListApps",
    "sagemaker:ListUserProfiles",
    "logs:CreateLogStream",
    "logs:PutLogEvents",
}


def test_execution_role_can_do_nothing_more(staging: SynthesizedApp) -> None:
    statements = _statements(staging, "DomainExecutionRole")
    actions = {a for s in statements for a in _actions(s)}
    assert actions <= ALLOWED_EXECUTION_ACTIONS, actions - ALLOWED_EXECUTION_ACTIONS
    assert {"sagemaker:CallMlflowAppApi", "s3:PutObject", "sagemaker:CreateSpace"} <= actions
    assert all(s["Effect"] == "Allow" for s in statements)


def test_execution_role_wildcard_resources_are_only_the_list_calls(staging: SynthesizedApp) -> None:
    for statement in _statements(staging, "DomainExecutionRole"):
        if "*" in _resources(statement):
            assert set(_actions(statement)) == {
                "sagemaker:ListSpaces",
                "sagemaker:ListApps",
                "sagemaker:ListUserProfiles",
            }


def test_execution_role_reaches_only_the_granted_data_prefixes(staging: SynthesizedApp) -> None:
    resources = json.dumps(_statements(staging, "DomainExecutionRole"))
    for prefix in (
        "iris/training/*",
        "iris/models/*",
        "iris/inference-input/*",
        "iris/inference-output/*",
        "mlflow/*",
    ):
        assert f'"/{prefix}"' in resources
    writes = [
        s for s in _statements(staging, "DomainExecutionRole") if "s3:PutObject" in _actions(s)
    ]
    written = json.dumps(writes)
    assert "/iris/training/*" in written and "/iris/inference-input/*" in written
    assert "/iris/models/*" not in written and "/iris/inference-output/*" not in written


def test_studio_security_group_is_closed_but_for_itself_and_https(staging: SynthesizedApp) -> None:
    groups = staging.template("studio").find_resources("AWS::EC2::SecurityGroup")
    (group,) = groups.values()
    egress = group["Properties"]["SecurityGroupEgress"]
    assert [(e.get("CidrIp"), e["FromPort"], e["ToPort"]) for e in egress] == [
        ("0.0.0.0/0", 443, 443)
    ]
    assert "SecurityGroupIngress" not in group["Properties"]  # only the self-referencing rule
    (ingress,) = (
        staging.template("studio").find_resources("AWS::EC2::SecurityGroupIngress").values()
    )
    assert ingress["Properties"]["SourceSecurityGroupId"] == ingress["Properties"]["GroupId"]


# -- teardown --------------------------------------------------------------------------------


def _cleanup(app: SynthesizedApp) -> dict[str, Any]:
    return _one(app, "Custom::StudioDomainCleanup")


def test_cleanup_is_deleted_before_the_domain_and_the_profiles(staging: SynthesizedApp) -> None:
    resources = staging.template_json("studio")["Resources"]
    cleanup = _cleanup(staging)
    domain_id = next(k for k, v in resources.items() if v["Type"] == "AWS::SageMaker::Domain")
    profile_ids = [k for k, v in resources.items() if v["Type"] == "AWS::SageMaker::UserProfile"]
    assert {domain_id, *profile_ids} <= set(cleanup["DependsOn"])
    assert cleanup["Properties"]["DomainId"] == {"Fn::GetAtt": [domain_id, "DomainId"]}
    assert cleanup["Properties"]["DomainArn"] == {"Fn::GetAtt": [domain_id, "DomainArn"]}
    # Its logical ID never changes: CloudFormation cannot change a custom resource's
    # ServiceToken in place, and a renamed one would send Delete (empty the live domain).
    assert "CleanupD4E4842E" in resources


def test_teardown_is_one_function_that_is_its_own_service_token(
    staging: SynthesizedApp,
) -> None:
    """One Lambda call (at most 15 minutes) is too short to empty a domain: the function polls
    and hands over to a new invocation of itself (tests/test_studio_teardown.py checks every
    variant; tests/lambda/test_studio_cleanup.py the handler)."""
    resources = staging.template_json("studio")["Resources"]
    cleanup = _cleanup(staging)
    assert cleanup["Properties"]["ServiceTimeout"] == "3600"  # CloudFormation's maximum
    (function_id,) = cleanup["Properties"]["ServiceToken"]["Fn::GetAtt"][:1]
    function = resources[function_id]["Properties"]
    assert function["Handler"] == "studio_cleanup.handler"
    assert function["Timeout"] == 900
    # It may invoke itself, and nothing else, through a policy of its own (no cycle).
    invoke = [
        statement
        for statement in _statements(staging, "CleanupRole")
        if "lambda:InvokeFunction" in _actions(statement)
    ]
    assert invoke == [
        {
            "Action": "lambda:InvokeFunction",
            "Effect": "Allow",
            "Resource": {"Fn::GetAtt": [function_id, "Arn"]},
        }
    ]


def test_home_efs_follows_the_removal_policy(
    staging: SynthesizedApp, retained: SynthesizedApp
) -> None:
    assert _cleanup(staging)["Properties"]["DeleteHomeEfs"] == "true"
    assert _cleanup(retained)["Properties"]["DeleteHomeEfs"] == "false"
    # Only a destroying teardown may delete the domain, its EFS and SageMaker's NFS groups.
    assert "sagemaker:DeleteDomain" in json.dumps(_statements(staging, "CleanupRole"))
    assert "DeleteDomain" not in json.dumps(_statements(retained, "CleanupRole"))
    assert "DeleteFileSystem" not in json.dumps(_statements(retained, "CleanupRole"))
    assert "ec2:DeleteSecurityGroup" not in json.dumps(_statements(retained, "CleanupRole"))


@with_app(app_key("staging"))  # beside test_home_efs_follows_the_removal_policy: one retained app
def test_domain_and_profiles_go_with_the_stack(retained: SynthesizedApp) -> None:
    resources = retained.template_json("studio")["Resources"]
    for resource in resources.values():
        if resource["Type"] in ("AWS::SageMaker::Domain", "AWS::SageMaker::UserProfile"):
            assert resource["DeletionPolicy"] == "Delete"


def test_cleanup_role_deletes_only_in_this_domain(staging: SynthesizedApp) -> None:
    resources = staging.template_json("studio")["Resources"]
    domain_id = next(k for k, v in resources.items() if v["Type"] == "AWS::SageMaker::Domain")
    domain_arn = {"Fn::GetAtt": [domain_id, "DomainArn"]}
    security_group_statements = 0
    for statement in _statements(staging, "CleanupRole"):
        actions = _actions(statement)
        if any(a.startswith("sagemaker:Delete") and a != "sagemaker:DeleteDomain" for a in actions):
            (resource,) = _resources(statement)
            assert "DomainId" in json.dumps(resource) and json.dumps(resource).endswith('/*"]]}')
        if "*" in _resources(statement):
            assert all(":List" in a or a == "ec2:DescribeSecurityGroups" for a in actions)
        if any(a.startswith("ec2:") and a != "ec2:DescribeSecurityGroups" for a in actions):
            # Only the NFS groups SageMaker created and tagged for this domain, in this VPC.
            security_group_statements += 1
            assert sorted(actions) == [
                "ec2:DeleteSecurityGroup",
                "ec2:RevokeSecurityGroupEgress",
                "ec2:RevokeSecurityGroupIngress",
            ]
            condition = statement["Condition"]
            assert condition["StringEquals"] == {
                "aws:ResourceTag/ManagedByAmazonSageMakerResource": domain_arn
            }
            assert "ec2:Vpc" in condition["ArnEquals"]
    assert security_group_statements == 1


def test_teardown_function_logs_with_retention(staging: SynthesizedApp) -> None:
    resources = staging.template_json("studio")["Resources"]
    (function,) = [
        r["Properties"] for r in resources.values() if r["Type"] == "AWS::Lambda::Function"
    ]
    log_group = resources[function["LoggingConfig"]["LogGroup"]["Ref"]]
    assert log_group["Properties"]["RetentionInDays"] == 30
    # Its role writes logs to that log group only (no AWSLambdaBasicExecutionRole).
    for resource in resources.values():
        if resource["Type"] == "AWS::IAM::Role":
            assert "ManagedPolicyArns" not in resource["Properties"]


# -- settings ------------------------------------------------------------------------------


def _settings(env: str = "staging", **overrides: str) -> Settings:
    return Settings.from_context({**cdk_json.context(), "env": env, **overrides}, environ={})


BAD_SETTINGS = {
    "profile name": (
        {"studio.user_profiles": "alice,bad_name"},
        "studio.user_profiles.1='bad_name': must be 1-63 letters, digits and hyphens",
    ),
    "profile name too long": (
        {"studio.user_profiles": '["' + "a" * 64 + '"]'},
        "studio.user_profiles.0='aaaa",
    ),
    "duplicate profile": (
        {"studio.user_profiles": "alice,alice"},
        "studio.user_profiles lists alice more than once",
    ),
    "idle timeout too short": (
        {"studio.idle_timeout_minutes": "30"},
        "studio.idle_timeout_minutes='30': input should be greater than or equal to 60",
    ),
    "idle above its maximum": (
        {"studio.idle_timeout_minutes": "600"},
        "studio.idle_timeout_minutes=600 is above studio.max_idle_timeout_minutes=480",
    ),
    "instance type": (
        {"studio.jupyterlab_instance_type": "t3.medium"},
        "studio.jupyterlab_instance_type='t3.medium': string should match pattern",
    ),
    "network access": (
        {"studio.network_access": "Public"},
        "studio.network_access='Public': input should be 'VpcOnly' or 'PublicInternetOnly'",
    ),
    "no network": (
        {"network.enabled": "false", "tracking.mode": "serverless"},
        "studio.enabled=true needs the VPC",
    ),
    "public studio, private MLflow": (
        {"studio.network_access": "PublicInternetOnly", "tracking.mode": "fargate"},
        "studio.network_access='PublicInternetOnly' cannot reach the private MLflow",
    ),
}


@pytest.mark.parametrize("overrides, expected", BAD_SETTINGS.values(), ids=BAD_SETTINGS.keys())
def test_a_bad_studio_setting_is_one_clear_line(overrides: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError) as raised:
        _settings(**overrides)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(expected), message


def test_profiles_accept_a_json_list_or_commas() -> None:
    assert _settings(**{"studio.user_profiles": '["a-1", "B2"]'}).studio.user_profiles == (
        "a-1",
        "B2",
    )
    assert _settings(**{"studio.user_profiles": "a-1, B2"}).studio.user_profiles == ("a-1", "B2")


def test_notebooks_reach_a_self_hosted_mlflow(prod: SynthesizedApp) -> None:
    """Both sides of the rule land in the Studio stack (the tracking stack never names Studio).

    The proof over every variant and client is tests/test_reachability.py; this pins the place.
    """
    assert prod.platform.tracking.backend.connections is not None
    studio = prod.template("studio")
    sides = {
        "egress": ("AWS::EC2::SecurityGroupEgress", "DestinationSecurityGroupId"),
        "ingress": ("AWS::EC2::SecurityGroupIngress", "GroupId"),
    }
    for side, (type_, server_key) in sides.items():
        to_mlflow = [
            r["Properties"]
            for r in studio.find_resources(type_).values()
            if "mlops-prod-tracking" in json.dumps(r["Properties"].get(server_key))
        ]
        assert len(to_mlflow) == 1, side
        assert to_mlflow[0]["Description"] == "Studio notebooks to MLflow"
        assert to_mlflow[0]["FromPort"] == to_mlflow[0]["ToPort"] == 80
    assert "mlops-prod-studio" not in json.dumps(prod.template_json("tracking"))
