"""Each image carries its own copy of mlflow_auth.py (separate Docker build contexts): keep them one."""

from __future__ import annotations

from tests.synth import ROOT


def test_both_images_carry_the_same_credentials_helper() -> None:
    training = (ROOT / "containers/training/iris_training/mlflow_auth.py").read_text()
    inference = (ROOT / "containers/inference/iris_inference/mlflow_auth.py").read_text()
    assert training.replace("iris_training", "PACKAGE") == inference.replace(
        "iris_inference", "PACKAGE"
    )
