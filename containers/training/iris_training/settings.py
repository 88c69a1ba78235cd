"""Run settings read once from the environment (SageMaker passes them as `Environment`)."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from iris_training.errors import UserError

# Environment variable -> (field, what is allowed); the table in the README follows it.
ENVIRONMENT = {
    "MLFLOW_TRACKING_URI": ("tracking_uri", "an MLflow tracking URI or SageMaker MLflow ARN"),
    "MLFLOW_EXPERIMENT_NAME": ("experiment_name", "a non-empty experiment name"),
    "MODEL_NAME": ("model_name", "a name of letters, digits, '.', '_' or '-' (at most 100)"),
    "PIPELINE_EXECUTION_ID": ("pipeline_execution_id", "an id of at most 256 characters"),
    "TRAINING_JOB_NAME": ("training_job_name", "a job name of at most 256 characters"),
}


class RunSettings(BaseModel):
    model_config = ConfigDict(frozen=True, str_strip_whitespace=True)

    tracking_uri: str = Field(min_length=1)
    experiment_name: str = Field("iris", min_length=1)
    model_name: str = Field("iris-model", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
    # Set by the SageMaker pipeline (from ExecutionVariables.PIPELINE_EXECUTION_ID) when present.
    pipeline_execution_id: str | None = Field(None, max_length=256)
    # SageMaker sets TRAINING_JOB_NAME in every training container.
    training_job_name: str | None = Field(None, max_length=256)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RunSettings:
        values = {field: env[name] for name, (field, _) in ENVIRONMENT.items() if env.get(name)}
        try:
            return cls.model_validate(values)
        except ValidationError as err:
            problems = []
            for error in err.errors():
                field = str(error["loc"][0])
                name, allowed = next((n, a) for n, (f, a) in ENVIRONMENT.items() if f == field)
                if error["type"] == "missing":
                    problems.append(f"setting {name} is not set (expected {allowed})")
                else:
                    problems.append(f"setting {name}={values.get(field)!r} is not {allowed}")
            raise UserError("; ".join(problems)) from None
