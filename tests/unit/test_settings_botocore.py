"""The instance-type lists the settings check against are botocore's own.

The settings read botocore's bundled model files directly (faster than a botocore session,
and blind to ~/.aws/models); this pins that reading to what a botocore session gives.
"""

from __future__ import annotations

import botocore.session
import pytest

from mlops_cdk.settings.common import ec2_instance_types, sagemaker_enum


@pytest.fixture(scope="module")
def session() -> botocore.session.Session:
    return botocore.session.Session()


@pytest.mark.parametrize(
    "shape", ["TrainingInstanceType", "ProcessingInstanceType", "AppInstanceType"]
)
def test_sagemaker_instance_types_are_botocores(
    session: botocore.session.Session, shape: str
) -> None:
    expected = session.get_service_model("sagemaker").shape_for(shape).enum
    assert sagemaker_enum(shape) == frozenset(expected)
    assert "ml.m5.large" in sagemaker_enum(shape)


def test_ec2_instance_types_are_botocores(session: botocore.session.Session) -> None:
    expected = session.get_service_model("ec2").shape_for("InstanceType").enum
    assert ec2_instance_types() == frozenset(expected)
    assert "t3.small" in ec2_instance_types()
