#!/usr/bin/env python3
"""CDK entry point: reads `-c env=NAME` and overrides once, builds settings, adds the stacks
(mlops_cdk/app_setup.py, shared with the tools and the tests)."""

from __future__ import annotations

import gc
import os
import sys

# Before jsii starts: keep synth output quiet on this Node version.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")


def main() -> None:
    # No automatic garbage collection while the app runs. Importing pydantic and aws-cdk-lib's
    # Python modules creates hundreds of thousands of objects that live to the end, and at
    # CPython's default thresholds the collector rescanned them about 420 times in a staging
    # synthesis: 0.16-0.20 s of Python before Node can start its work, against 0.03 s in a
    # bare one-bucket app. What it would reclaim is small: without it, peak RSS grows by
    # 0.6-0.9 MB (of 123-150 MB in dev, staging and prod). Back on at the end, for a caller
    # that runs this in its own process (a test, through runpy).
    gc.disable()
    try:
        synthesize()
    finally:
        gc.enable()


def synthesize() -> None:
    from mlops_cdk.settings import DEFAULT_ENVIRONMENT, ConfigError, Settings  # noqa: PLC0415
    from mlops_cdk.settings.loader import cli_context  # noqa: PLC0415

    # The settings are checked first, from the context the CDK CLI hands the app (what CDK's
    # App reads too), before aws_cdk is imported: that import starts jsii's Node process and
    # loads aws-cdk-lib (about half a second), and a bad setting needs neither.
    try:
        context = cli_context(os.environ)
    except (OSError, ValueError) as err:
        sys.exit(f"config error: cannot read the context the CDK CLI passed: {err}")
    if "env" not in context:
        print(f"no -c env=NAME given; using {DEFAULT_ENVIRONMENT}", file=sys.stderr)
    try:
        Settings.from_context(context, os.environ)
    except ConfigError as err:
        sys.exit(f"config error: {err}")

    import aws_cdk as cdk  # noqa: PLC0415

    from mlops_cdk.app_setup import set_up  # noqa: PLC0415
    from mlops_cdk.kernel_exit import leave_node_to_exit  # noqa: PLC0415

    app = cdk.App()
    # set_up reads the settings again, from the app, as the tools and the tests do (the same
    # settings: tests/test_config_errors.py test_settings_from_the_clis_context_are_the_apps).
    set_up(app, os.environ)
    app.synth()
    # Everything built is garbage from here on, and the process ends: spare the interpreter's
    # shutdown a collection over the whole construct tree (about 0.3 s of a staging synth;
    # benchmarks/synth.py). gc.freeze moves every tracked object out of the collector's view.
    gc.freeze()
    # The assembly is written: do not wait for Node's slow exit (mlops_cdk/kernel_exit.py).
    leave_node_to_exit()


if __name__ == "__main__":
    main()
