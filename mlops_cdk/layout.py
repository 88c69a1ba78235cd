"""Where things live in S3: one definition shared by every stack and documented in the README."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DataLayout:
    """Key prefixes in the data bucket (and the MLflow prefix in the artifacts bucket)."""

    training: str = "iris/training/"
    models: str = "iris/models/"
    inference_input: str = "iris/inference-input/"
    # Partitioned by run date: iris/inference-output/date=YYYY-MM-DD/
    inference_output: str = "iris/inference-output/"
    # One record per pipeline execution: <pipeline>/<execution id>/preflight/decision.json
    pipeline_runs: str = "iris/pipeline-runs/"
    mlflow_artifacts: str = "mlflow/"


LAYOUT = DataLayout()
