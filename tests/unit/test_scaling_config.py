"""Tuning and sharded-inference settings: defaults, and one clear line for every bad value."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from mlops_cdk import contracts
from mlops_cdk.contracts import TUNING
from mlops_cdk.settings import ConfigError, IntegerRange, Settings
from tools import cdk_json


def settings(env: str = "dev", **overrides: str) -> Settings:
    return Settings.from_context({**cdk_json.context(), "env": env, **overrides}, environ={})


def test_defaults_train_plainly_and_score_on_one_instance() -> None:
    pipelines = settings().pipelines
    assert pipelines.training.strategy == "plain"
    assert pipelines.inference.instance_count == 1
    tuning = pipelines.training.tuning
    assert (tuning.max_jobs, tuning.max_parallel_jobs, tuning.strategy) == (8, 2, "Bayesian")
    # Every default range names a hyperparameter the contract says may be tuned.
    assert set(tuning.ranges) == {*TUNING.TUNABLE_INTEGER, *TUNING.TUNABLE_CATEGORICAL}
    assert tuning.ranges["n_estimators"] == IntegerRange(min=50, max=400)
    assert tuning.objective == (TUNING.OBJECTIVE_METRIC, TUNING.OBJECTIVE_REGEX, "Maximize")


def test_plain_training_keeps_accepting_several_instances() -> None:
    # Only the first host works (the container's leader-only rule); the setting stays legal
    # because the TrainingInstanceCount parameter can be raised per execution anyway.
    training = settings(**{"pipelines.training.instance_count": "3"}).pipelines.training
    assert training.instance_count == 3
    described = type(training).model_fields["instance_count"].description or ""
    assert "first host" in described and "tuning" in described


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            {"pipelines.training.strategy": "grid"},
            "pipelines.training.strategy='grid': input should be 'plain' or 'tuning'",
        ),
        (
            {"pipelines.training.tuning.max_parallel_jobs": "9"},
            "pipelines.training.tuning.max_parallel_jobs=9 is above max_jobs=8",
        ),
        (
            {"pipelines.training.tuning.strategy": "Grid"},
            "pipelines.training.tuning.strategy='Grid': input should be 'Bayesian' or 'Random'",
        ),
        (
            {"pipelines.training.tuning.ranges": '{"random_state": {"min": 1, "max": 3}}'},
            "pipelines.training.tuning.ranges.random_state: 'random_state' cannot be tuned; "
            "tunable: n_estimators, max_depth, min_samples_leaf, max_features, criterion",
        ),
        (
            {"pipelines.training.tuning.ranges": '{"n_estimators": [50, 100]}'},
            "pipelines.training.tuning.ranges.n_estimators must be {min, max}",
        ),
        (
            {"pipelines.training.tuning.ranges": '{"max_depth": {"min": 9, "max": 3}}'},
            "pipelines.training.tuning.ranges.max_depth: min=9 must be below max=3",
        ),
        (
            {"pipelines.training.tuning.ranges": '{"n_estimators": {"min": 5, "max": 5000}}'},
            "hyperparameter n_estimators='5000' is not an integer between 1 and 2000",
        ),
        (
            {"pipelines.training.tuning.ranges": '{"criterion": ["gini", "hinge"]}'},
            "pipelines.training.tuning.ranges.criterion: hyperparameter criterion='hinge'",
        ),
        (
            {"pipelines.training.tuning.ranges": "{}"},
            "pipelines.training.tuning.ranges must map at least one hyperparameter",
        ),
        (
            {"pipelines.training.strategy": "tuning", "pipelines.training.instance_count": "2"},
            "pipelines.training.instance_count=2 with strategy=tuning",
        ),
        (
            {
                "pipelines.training.strategy": "tuning",
                "pipelines.training.hyperparameters": '{"criterion": "gini"}',
            },
            "pipelines.training.hyperparameters.criterion is also searched by "
            "pipelines.training.tuning.ranges.criterion",
        ),
        (
            {"pipelines.training.strategy": "tuning", "pipelines.training.debugger.enabled": "1"},
            "pipelines.training.debugger.enabled applies to strategy=plain",
        ),
        (
            {"pipelines.training.strategy": "tuning", "pipelines.launcher": "lambda"},
            "pipelines.launcher=lambda starts plain training jobs",
        ),
        (
            {"pipelines.inference.instance_count": "0"},
            "pipelines.inference.instance_count='0': input should be greater than or equal to 1",
        ),
    ],
)
def test_bad_scaling_settings_stop_with_one_line(overrides: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        settings(**overrides)
    text = str(raised.value)
    assert "\n" not in text
    assert message in text


@pytest.mark.parametrize(
    "loaded, module",
    [
        ("TUNING", "iris_training.tuning_contract"),
        ("SHARD", "iris_inference.shard_contract"),
    ],
)
def test_the_app_and_the_containers_read_one_contract(loaded: str, module: str) -> None:
    app_side = getattr(contracts, loaded)
    container_side = importlib.import_module(module)  # containers/ is on the test path
    assert app_side.__file__ is not None and container_side.__file__ is not None
    assert Path(app_side.__file__).resolve() == Path(container_side.__file__).resolve()
    names = [n for n in dir(container_side) if n.isupper()]
    assert names and all(getattr(app_side, n) == getattr(container_side, n) for n in names)
