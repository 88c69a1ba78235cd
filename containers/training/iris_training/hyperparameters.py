"""Typed, validated hyperparameters.

SageMaker hands every value over as a string (`{"n_estimators": "100"}`), and the SageMaker
Python SDK's framework estimators JSON-encode strings once more (`"\\"sqrt\\""`); both forms are
accepted. A bad value stops training with one line naming it and what is allowed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from iris_training.errors import UserError

# Keys SageMaker or its SDK may add on its own (e.g. `sagemaker_program`, `_tuning_objective_metric`).
_PLATFORM_KEY_PREFIXES = ("sagemaker_", "_")


class Hyperparameters(BaseModel):
    """Everything that shapes the model and the quality gate. Descriptions say what is allowed."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    n_estimators: int = Field(100, ge=1, le=2000, description="an integer between 1 and 2000")
    max_depth: int | None = Field(
        None, ge=1, le=100, description="an integer between 1 and 100, or 'none' for unlimited"
    )
    min_samples_leaf: int = Field(1, ge=1, le=1000, description="an integer between 1 and 1000")
    max_features: Literal["sqrt", "log2", "all"] = Field(
        "sqrt", description="one of sqrt, log2, all"
    )
    criterion: Literal["gini", "entropy", "log_loss"] = Field(
        "gini", description="one of gini, entropy, log_loss"
    )
    random_state: int = Field(
        42, ge=0, le=2**32 - 1, description="an integer between 0 and 4294967295"
    )
    # Separate from random_state so a challenger trained with another forest seed is scored on
    # the same held-out rows the champion never saw.
    split_random_state: int = Field(
        42, ge=0, le=2**32 - 1, description="an integer between 0 and 4294967295"
    )
    test_size: float = Field(0.2, gt=0.0, lt=1.0, description="a number strictly between 0 and 1")
    min_accuracy: float = Field(0.85, ge=0.0, le=1.0, description="a number between 0 and 1")
    # tuning_contract.REGISTER_HYPERPARAMETER: "false" in every job of a tuning step (log the run
    # and print the objective, never register or move an alias). Strings only, as SageMaker
    # passes them: pydantic's lax bool would also take yes/1/on. Named `register` through its
    # alias: a field called so would shadow BaseModel.register (ABCMeta) and warn at import.
    register_: Literal["true", "false"] = Field(
        "true", alias="register", description="one of true, false"
    )

    @field_validator("*", mode="before")
    @classmethod
    def _no_booleans(cls, value: object) -> object:
        # JSON true/false would otherwise pass as 1/0.
        if isinstance(value, bool):
            raise ValueError("booleans are not accepted")
        return value

    @field_validator("max_depth", mode="before")
    @classmethod
    def _none_means_unlimited(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() in {"", "none", "null"}:
            return None
        return value

    @property
    def registers(self) -> bool:
        return self.register_ == "true"

    @property
    def sklearn_max_features(self) -> str | None:
        return None if self.max_features == "all" else self.max_features


def _unquote(value: object) -> object:
    """Undo the SDK's extra JSON encoding of strings ('"sqrt"' -> 'sqrt')."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        try:
            decoded = json.loads(value)
        except json.JSONDecodeError:
            return value
        return decoded if isinstance(decoded, str) else value
    return value


def hyperparameter_names() -> tuple[str, ...]:
    """The names a job passes (a field's alias when it has one)."""
    return tuple(f.alias or n for n, f in Hyperparameters.model_fields.items())


def _describe(name: str) -> str:
    fields = {f.alias or n: f for n, f in Hyperparameters.model_fields.items()}
    field = fields.get(name)
    if field is None or field.description is None:
        known = ", ".join(hyperparameter_names())
        return f"a known hyperparameter (known: {known})"
    return field.description


def parse_hyperparameters(raw: Mapping[str, object]) -> Hyperparameters:
    """Validate raw hyperparameters; raise UserError with one line per problem, joined by '; '."""
    values = {
        key: _unquote(value)
        for key, value in raw.items()
        if not key.startswith(_PLATFORM_KEY_PREFIXES)
    }
    try:
        return Hyperparameters.model_validate(values)
    except ValidationError as err:
        problems = []
        for error in err.errors():
            name = str(error["loc"][0]) if error["loc"] else "?"
            problems.append(f"hyperparameter {name}={values.get(name)!r} is not {_describe(name)}")
        raise UserError("; ".join(problems)) from None
