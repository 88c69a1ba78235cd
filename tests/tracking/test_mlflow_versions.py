"""The MLflow client in the job images speaks the MLflow version the template's server runs.

For every env x tracking mode, read from the synthesized app (not from config): the server's
version (the managed tracking server's ``MlflowVersion``, the fargate image's build argument,
the ec2 user data's pip pin) and the client's (the ``mlflow==`` pin in the requirements.txt of
each job image asset the pipelines stack ships). MLflow promises only best-effort
compatibility between different client and server versions (mlflow.org, self-hosting/migration:
"Compatibility between MLflow SDK and the Server"), and AWS tells managed users to match them
(sagemaker/latest/dg/mlflow-track-experiments.html: "For tracking server 3.0.x, use
mlflow==3.0.0"); the images need a newer one, so test_managed_server_version.py runs them
against that server version for real. The serverless MLflow App chooses its own version at deploy time, so nothing
at synth time can check it (docs/tracking.md says so).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.matrix import VARIANTS, Variant, variant_params
from tests.synth import ROOT, SynthesizedApp
from tests.tracking.test_managed_server_version import server_versions

SELF_HOSTED = ("fargate", "ec2")
ONE_FORM = tuple(v for v in VARIANTS if v.form == "deployed" and not v.extra)


def _pin(text: str, package: str) -> str:
    match = re.search(rf"^{re.escape(package)}(\[[^\]]*\])?==([^\s\"]+)", text, re.M | re.I)
    assert match is not None, f"no {package}== pin"
    return match.group(2)


def _asset_manifests(app: SynthesizedApp, unit: str) -> list[dict[str, object]]:
    path = Path(app.assembly.directory) / f"{app.settings.stack_name(unit)}.assets.json"
    images: dict[str, dict[str, object]] = json.loads(path.read_text()).get("dockerImages", {})
    return [image["source"] for image in images.values()]  # type: ignore[misc]


def client_versions(app: SynthesizedApp) -> set[str]:
    """The ``mlflow==`` pin of every job image the pipelines stack ships."""
    versions = set()
    for source in _asset_manifests(app, "pipelines"):
        # One build context for both images: each image's requirements sit beside its Dockerfile.
        context = Path(app.assembly.directory) / str(source["directory"])
        image = (context / str(source.get("dockerFile", "Dockerfile"))).parent
        versions.add(_pin((image / "requirements.txt").read_text(), "mlflow"))
    assert versions, "the pipelines stack ships no job image"
    return versions


def server_version(app: SynthesizedApp) -> str | None:
    """The MLflow version the template's server runs (None: the App picks it at deploy)."""
    template = app.template_json("tracking")
    resources = template["Resources"].values()
    mode = app.settings.tracking.mode
    if mode == "managed":
        (server,) = (r for r in resources if r["Type"] == "AWS::SageMaker::MlflowTrackingServer")
        return str(server["Properties"]["MlflowVersion"])
    if mode == "fargate":
        (source,) = _asset_manifests(app, "tracking")
        build_args = source["dockerBuildArgs"]
        assert isinstance(build_args, dict)
        return str(build_args["MLFLOW_VERSION"])
    if mode == "ec2":
        (launch,) = (r for r in resources if r["Type"] == "AWS::EC2::LaunchTemplate")
        user_data = json.dumps(launch["Properties"]["LaunchTemplateData"]["UserData"])
        (version,) = set(re.findall(r"mlflow\[auth\]==([0-9][0-9.]*[0-9])", user_data))
        return str(version)
    return None


def _major_minor(version: str) -> tuple[int, int]:
    major, minor = version.split(".")[:2]
    return int(major), int(minor)


@pytest.mark.parametrize("variant", variant_params(ONE_FORM))
def test_the_job_images_speak_the_servers_mlflow_version(variant: Variant) -> None:
    app = variant.app()
    server = server_version(app)
    if server is None:
        pytest.skip("the serverless MLflow App reports its version only once deployed")
    for client in client_versions(app):
        if variant.mode in SELF_HOSTED:
            assert client == server, (
                f"{variant.id}: the jobs pin mlflow=={client}, the server runs {server}"
            )
        else:
            # AWS documents no managed server newer than 3.0, and the jobs need a newer client:
            # the pair is proven by running the jobs against that server version for real.
            verified = server_versions()
            assert _major_minor(client)[0] == _major_minor(server)[0], (variant.id, client, server)
            assert server in verified, (
                f"{variant.id}: the managed server runs MLflow {server}, the jobs pin "
                f"mlflow=={client}; only {verified} are run against the jobs "
                "(add tests/tracking/mlflow-server-<version>.txt)"
            )


def test_the_tracking_image_and_user_data_pin_the_same_server_packages() -> None:
    """The ec2 user data installs what the fargate image installs (the same entrypoint)."""
    from mlops_cdk.settings import SELF_HOSTED_MLFLOW_VERSION  # noqa: PLC0415

    dockerfile = (ROOT / "containers" / "tracking" / "Dockerfile").read_text()
    assert f"ARG MLFLOW_VERSION={SELF_HOSTED_MLFLOW_VERSION}\n" in dockerfile
    requirements = (ROOT / "containers" / "tracking" / "requirements.txt").read_text()
    source = (ROOT / "mlops_cdk" / "constructs" / "ec2_mlflow_boot.py").read_text()
    for package in ("PyMySQL", "boto3"):
        assert f'"{package}=={_pin(requirements, package)}"' in source, package
