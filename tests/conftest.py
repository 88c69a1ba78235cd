"""Shared fixtures: one synthesized app per environment (and per override set) per session."""

from __future__ import annotations

import os

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import pytest

from tests.synth import ENVIRONMENTS, SynthesizedApp, synthesize

_cache: dict[tuple[str, str, tuple[tuple[str, str], ...]], SynthesizedApp] = {}


def synthesized(env: str, *, form: str = "agnostic", **overrides: str) -> SynthesizedApp:
    """Synthesize each (environment, form, overrides) at most once per test session.

    Overrides are ``-c``-style dotted keys, e.g. ``synthesized("dev", **{"tracking.mode": "ec2"})``;
    ``form="deployed"`` synthesizes with a concrete account and region (tests/synth.py FORMS).
    """
    key = (env, form, tuple(sorted(overrides.items())))
    if key not in _cache:
        _cache[key] = synthesize(env, overrides, form=form)
    return _cache[key]


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
    """Each environment in turn, as configured in cdk.json: for checks that hold everywhere."""
    return synthesized(request.param)
