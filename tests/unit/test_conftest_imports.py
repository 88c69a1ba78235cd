"""pytest-xdist's controller imports the conftest files and their plugins, then starts the workers.

It runs no test, so whatever those imports load is start-up time before any worker can begin:
aws-cdk-lib alone (with the Node process jsii starts for it) is about 2 s. The conftest files
import the heavy libraries where a test first needs them (tests/conftest.py), and this keeps
it so, in a fresh interpreter that imports what the controller does.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.synth import ROOT

# Libraries a test process needs and the controller does not: each costs the controller
# 0.3-2 s of its start-up (aws_cdk and jsii together the most).
HEAVY = ("aws_cdk", "jsii", "constructs", "cdk_nag", "mlflow", "sklearn", "pandas", "moto")

CONTROLLER_IMPORTS = """
import importlib, json, sys
import conftest
import tests.conftest
for plugin in conftest.pytest_plugins:
    importlib.import_module(plugin)
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


def test_the_controllers_imports_load_no_heavy_library() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CONTROLLER_IMPORTS],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stdout))
    heavy = sorted(loaded.intersection(HEAVY))
    assert not heavy, (
        f"importing the conftest files loads {', '.join(heavy)}: import them where a test "
        "first needs them (see tests/conftest.py)"
    )
