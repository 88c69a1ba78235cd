"""Shared fixtures: one synthesized app per environment for the whole session."""

from __future__ import annotations

import os

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import pytest

from tests.synth import ENVIRONMENTS, SynthesizedApp, synthesize

_cache: dict[str, SynthesizedApp] = {}


def synthesized(env: str) -> SynthesizedApp:
    """Synthesize each environment at most once per test session."""
    if env not in _cache:
        _cache[env] = synthesize(env)
    return _cache[env]


@pytest.fixture(scope="session")
def dev() -> SynthesizedApp:
    return synthesized("dev")


@pytest.fixture(scope="session")
def staging() -> SynthesizedApp:
    return synthesized("staging")


@pytest.fixture(scope="session")
def prod() -> SynthesizedApp:
    return synthesized("prod")


@pytest.fixture(scope="session", params=ENVIRONMENTS)
def any_env(request: pytest.FixtureRequest) -> SynthesizedApp:
    """Each environment in turn: for checks that hold everywhere."""
    return synthesized(request.param)
