"""Set up the CDK app from its context: the one place app.py, the tools and the tests share."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aws_cdk import App

from mlops_cdk.settings import Settings

if TYPE_CHECKING:
    from mlops_cdk.platform import Platform


@dataclass(frozen=True)
class AppSetup:
    """What :func:`set_up` added to an app: the settings it read and the stacks it built."""

    settings: Settings
    platform: Platform


def set_up(app: App, environ: Mapping[str, str], *, nag_checks: bool = True) -> AppSetup:
    """Read the settings from ``app``'s context (``-c env=NAME`` and overrides) and ``environ``,
    add every stack of that environment and the cdk-nag checks. Raises ``ConfigError`` on bad
    settings, before any stack is added.

    ``nag_checks=False`` leaves the cdk-nag pack out (the templates are the same): for a
    second synthesis of an app whose nag findings are checked elsewhere (a test's variant with
    other tags), where the pack's ~0.3 s per app buys nothing.
    """
    settings = Settings.from_context(app.node.get_all_context(), environ)
    # The stacks import most of aws-cdk-lib's modules (about a second): only once the settings
    # are good, so a bad setting stops `cdk synth` at once.
    from mlops_cdk import nag  # noqa: PLC0415
    from mlops_cdk.platform import build_platform  # noqa: PLC0415

    platform = build_platform(app, settings)
    if nag_checks:
        nag.register(app)
    return AppSetup(settings=settings, platform=platform)
