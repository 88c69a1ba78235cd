"""TLS on the self-hosted MLflow endpoint: HTTPS on the Fargate load balancer when a certificate
is configured (clients use https), and ec2 mode refusing the certificate with one line."""

from __future__ import annotations

from pathlib import Path

from tests.checkov_variants import CERTIFICATE_ARN
from tests.matrix import Variant
from tests.test_config_errors import run_app

HTTPS = Variant(
    "prod", "fargate", "deployed", (("tracking.fargate.certificate_arn", CERTIFICATE_ARN),)
)


def test_fargate_with_a_certificate_serves_https_only() -> None:
    app = HTTPS.app()
    tracking = app.template("tracking")
    listeners = tracking.find_resources("AWS::ElasticLoadBalancingV2::Listener")
    assert len(listeners) == 1
    (listener,) = listeners.values()
    props = listener["Properties"]
    assert props["Protocol"] == "HTTPS"
    assert props["Port"] == 443
    assert props["Certificates"] == [{"CertificateArn": CERTIFICATE_ARN}]
    assert props["SslPolicy"].startswith("ELBSecurityPolicy-TLS13")
    backend = app.platform.tracking.backend
    assert backend.tracking_uri.startswith("https://")
    # Clients (Studio, jobs) are let in on the listener's port; the rule lands in their stacks.
    ingress = [
        unit
        for unit in ("studio", "pipelines")
        if app.has_stack(unit)
        and app.template(unit).find_resources(
            "AWS::EC2::SecurityGroupIngress", {"Properties": {"FromPort": 443, "ToPort": 443}}
        )
    ]
    assert ingress == ["studio", "pipelines"]


def test_ec2_mode_refuses_a_certificate_with_one_line(tmp_path: Path) -> None:
    result = run_app(
        tmp_path,
        env="staging",
        **{"tracking.mode": "ec2", "tracking.fargate.certificate_arn": CERTIFICATE_ARN},
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "config error: tracking.fargate.certificate_arn is set but tracking.mode='ec2' cannot "
        "serve HTTPS (an ACM certificate cannot be installed on an instance); use "
        "tracking.mode=fargate, whose load balancer terminates TLS, or unset it"
    ]
    assert not list((tmp_path / "cdk.out").glob("*.template.json"))
