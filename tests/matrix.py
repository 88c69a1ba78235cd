"""Every deployable variant of the app: the matrix the whole-class checks run over.

Each environment in each tracking mode, synthesized in both forms (environment-agnostic and
as a deploy does it, with a concrete account and region), plus the egress paths a private
network can take. A check of a whole class of defect (reachability, permissions, updates)
parametrizes over :data:`VARIANTS` so no combination escapes it. Each app is synthesized at
most once per session (tests/conftest.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import get_args

import pytest

from mlops_cdk.settings import TRACKING_MODES, EgressMode, Settings
from tests.conftest import AppKey, app_key, synthesized
from tests.synth import FORMS, SynthesizedApp
from tools import cdk_json
from tools.cdk_json import ENVIRONMENTS
from tools.synthesis import default_mode

# Training by automatic model tuning, inference sharded over 3 instances + the commit step.
SCALED_OUT = (
    ("pipelines.training.strategy", "tuning"),
    ("pipelines.inference.instance_count", "3"),
)


@dataclass(frozen=True)
class Variant:
    """One synthesizable combination: environment, tracking mode, form and extra overrides."""

    env: str
    mode: str
    form: str = "agnostic"
    extra: tuple[tuple[str, str], ...] = field(default=())

    @property
    def id(self) -> str:
        extra = "".join(f"-{value}" for _, value in self.extra)
        return f"{self.env}-{self.mode}{extra}-{self.form}"

    @property
    def overrides(self) -> dict[str, str]:
        mode = {} if self.mode == default_mode(self.env) else {"tracking.mode": self.mode}
        return {**mode, **dict(self.extra)}

    @property
    def key(self) -> AppKey:
        """The session cache's key of this variant's app (tests/conftest.py)."""
        return app_key(self.env, self.form, **self.overrides)

    def app(self) -> SynthesizedApp:
        """The synthesized app (the default mode shares the plain environment's synth)."""
        return synthesized(self.env, form=self.form, **self.overrides)


def other_egress_modes(env: str) -> list[str]:
    """Every egress mode of the settings (``EgressMode``) but the one cdk.json gives ``env``."""
    own = Settings.from_context({**cdk_json.context(), "env": env}, environ={}).network.egress
    return [mode for mode in get_args(EgressMode) if mode != own]


# Every env x mode in both forms, and each egress path where it is not already the default
# (a NAT instance in staging's network), deployed form only: staging in fargate (the
# network-heavy mode) over each other egress mode, and two more pairs.
VARIANTS: tuple[Variant, ...] = (
    *(
        Variant(env, mode, form)
        for form in FORMS
        for env in ENVIRONMENTS
        for mode in TRACKING_MODES
    ),
    *(
        Variant("staging", "fargate", "deployed", (("network.egress", egress),))
        for egress in other_egress_modes("staging")
    ),
    Variant("staging", "ec2", "deployed", (("network.egress", "nat_gateway"),)),
    # Scaled out: the tuning step and sharded inference, in each env's default mode, both forms.
    *(Variant(env, default_mode(env), form, SCALED_OUT) for form in FORMS for env in ENVIRONMENTS),
    # staging's default is a NAT instance: its endpoints-only alternative (one zone)
    Variant("staging", "serverless", "deployed", (("network.egress", "endpoints"),)),
)


def variant_params(variants: tuple[Variant, ...] = VARIANTS) -> list[object]:
    """``pytest.param`` for each variant, with a readable id."""
    return [pytest.param(v, id=v.id) for v in variants]
