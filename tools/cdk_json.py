"""cdk.json, read in one place: its context, and the environments it configures.

Only the standard library: pytest-xdist's controller imports this (through tests/conftest.py)
and must not load aws-cdk-lib (tests/unit/test_conftest_imports.py), and the Makefile asks it
for the environment names (``python3 -m tools.cdk_json``) before any virtual environment exists.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CDK_JSON = ROOT / "cdk.json"


def context() -> dict[str, Any]:
    """cdk.json's ``context`` (feature flags, ``environments``), a new copy on each call."""
    value: dict[str, Any] = json.loads(CDK_JSON.read_text())["context"]
    return value


# The environments cdk.json configures, in its order: what the tests, the tools and
# `make synth` cover (tests/unit/test_name_lists.py keeps it their only list).
ENVIRONMENTS: tuple[str, ...] = tuple(context()["environments"])

if __name__ == "__main__":
    print(*ENVIRONMENTS)
