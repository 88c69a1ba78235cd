"""pipelines.training.tuning: the automatic model tuning step (strategy: tuning).

The objective (metric, regex, Maximize) and the hyperparameters a range may name come from the
training container's contract, ``containers/training/iris_training/tuning_contract.py``
(:data:`mlops_cdk.contracts.TUNING`); each bound and choice is checked with the container's
own hyperparameter rules, so a range never hands a training job a value it refuses.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal, Self

from pydantic import BeforeValidator, Field, model_validator

from mlops_cdk.contracts import TUNING
from mlops_cdk.settings.common import Section
from mlops_cdk.settings.jobs import TrainingRuleError, parse_hyperparameters

TUNABLE_INTEGER: tuple[str, ...] = tuple(TUNING.TUNABLE_INTEGER)
TUNABLE_CATEGORICAL: tuple[str, ...] = tuple(TUNING.TUNABLE_CATEGORICAL)
# botocore: ParameterRanges.IntegerParameterRanges / CategoricalParameterRanges hold at most 30
# entries, a categorical range at most 30 values.
MAX_CHOICES = 30


class IntegerRange(Section):
    """An integer hyperparameter searched between min and max (both included)."""

    min: int = Field(description="Smallest value tried.")
    max: int = Field(description="Largest value tried.")


def _rule_problem(name: str, value: str) -> str | None:
    """What the training container says about ``name=value`` (None: it accepts it)."""
    try:
        parse_hyperparameters({name: value})
    except TrainingRuleError as err:
        return str(err)
    return None


def _integer_range(where: str, name: str, searched: Any) -> IntegerRange:
    if isinstance(searched, IntegerRange):
        searched = {"min": searched.min, "max": searched.max}
    if not isinstance(searched, Mapping) or set(searched) != {"min", "max"}:
        raise ValueError(f"{where} must be {{min, max}} (an integer range), got {searched!r}")
    low, high = searched["min"], searched["max"]
    if not all(isinstance(b, int) and not isinstance(b, bool) for b in (low, high)):
        raise ValueError(f"{where}: min and max must be integers, got {low!r} and {high!r}")
    if low >= high:
        raise ValueError(f"{where}: min={low} must be below max={high}")
    for bound in (low, high):
        problem = _rule_problem(name, str(bound))
        if problem is not None:
            raise ValueError(f"{where}: {problem}")
    return IntegerRange(min=low, max=high)


def _choices(where: str, name: str, searched: Any) -> tuple[str, ...]:
    if not isinstance(searched, list | tuple) or not all(isinstance(c, str) for c in searched):
        raise ValueError(f"{where} must be a list of choices such as [gini, entropy]")
    if not 1 <= len(searched) <= MAX_CHOICES:
        raise ValueError(f"{where} must list 1 to {MAX_CHOICES} choices")
    if len(set(searched)) != len(searched):
        raise ValueError(f"{where} lists a choice more than once")
    for choice in searched:
        problem = _rule_problem(name, choice)
        if problem is not None:
            raise ValueError(f"{where}: {problem}")
    return tuple(searched)


def _ranges(value: Any) -> dict[str, IntegerRange | tuple[str, ...]]:
    """The ranges as typed values, or one error line naming the range and what is allowed."""
    allowed = ", ".join([*TUNABLE_INTEGER, *TUNABLE_CATEGORICAL])
    if not isinstance(value, Mapping) or not value:
        raise ValueError(
            f"pipelines.training.tuning.ranges must map at least one hyperparameter ({allowed}) "
            "to its range"
        )
    ranges: dict[str, IntegerRange | tuple[str, ...]] = {}
    for name, searched in value.items():
        where = f"pipelines.training.tuning.ranges.{name}"
        if name in TUNABLE_INTEGER:
            ranges[name] = _integer_range(where, name, searched)
        elif name in TUNABLE_CATEGORICAL:
            ranges[name] = _choices(where, name, searched)
        else:
            raise ValueError(f"{where}: {name!r} cannot be tuned; tunable: {allowed}")
    return ranges


def _default_ranges() -> dict[str, Any]:
    """As a user writes them (plain JSON; validated like any setting)."""
    return {
        "n_estimators": {"min": 50, "max": 400},
        "max_depth": {"min": 2, "max": 12},
        "min_samples_leaf": {"min": 1, "max": 5},
        "max_features": ["sqrt", "log2"],
        "criterion": ["gini", "entropy"],
    }


class TuningSettings(Section):
    """Automatic model tuning (pipelines.training.strategy=tuning): SageMaker runs up to
    max_jobs training jobs, max_parallel_jobs at a time, maximizing the held-out accuracy the
    container logs (the contract's validation:accuracy); only the best job's model is gated
    and registered, by the RegisterBest step."""

    max_jobs: int = Field(
        default=8,
        ge=1,
        le=500,
        description="Training jobs per tuning run (ResourceLimits.MaxNumberOfTrainingJobs; "
        "within the account's SageMaker quota).",
    )
    max_parallel_jobs: int = Field(
        default=2,
        ge=1,
        le=100,
        description="Training jobs at a time, each on one instance (<= max_jobs; "
        "within the account's quota).",
    )
    strategy: Literal["Bayesian", "Random"] = Field(
        default="Bayesian",
        description="Search strategy: Bayesian (learns from finished jobs) or Random.",
    )
    ranges: Annotated[dict[str, IntegerRange | tuple[str, ...]], BeforeValidator(_ranges)] = Field(
        default_factory=_default_ranges,
        description="Searched hyperparameters: {min, max} for n_estimators, max_depth, "
        "min_samples_leaf; a list of choices for max_features, criterion.",
    )

    @model_validator(mode="after")
    def _parallel_within_total(self) -> Self:
        if self.max_parallel_jobs > self.max_jobs:
            raise ValueError(
                f"pipelines.training.tuning.max_parallel_jobs={self.max_parallel_jobs} is above "
                f"max_jobs={self.max_jobs}"
            )
        return self

    @property
    def objective(self) -> tuple[str, str, str]:
        """(metric name, regex, Maximize|Minimize) from the contract."""
        return (TUNING.OBJECTIVE_METRIC, TUNING.OBJECTIVE_REGEX, TUNING.OBJECTIVE_TYPE)
