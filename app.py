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

import aws_cdk as cdk

from mlops_cdk.app_setup import set_up
from mlops_cdk.settings import DEFAULT_ENVIRONMENT, ConfigError


def main() -> None:
    app = cdk.App()
    context = app.node.get_all_context()
    if "env" not in context:
        print(f"no -c env=NAME given; using {DEFAULT_ENVIRONMENT}", file=sys.stderr)
    try:
        set_up(app, os.environ)
    except ConfigError as err:
        sys.exit(f"config error: {err}")
    app.synth()
    # Everything built is garbage from here on, and the process ends: spare the interpreter's
    # shutdown a collection over the whole construct tree (about 0.3 s of a staging synth;
    # benchmarks/synth.py). gc.freeze moves every tracked object out of the collector's view.
    gc.freeze()


if __name__ == "__main__":
    main()
