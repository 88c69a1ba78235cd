"""app.py run as the CDK CLI runs it, without ``-c env``: what it says, what it writes, and how
it ends (without waiting for jsii's Node process, which then ends on its own and leaves
nothing behind: mlops_cdk/kernel_exit.py)."""

from __future__ import annotations

import atexit
import json
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import jsii
import pytest

from mlops_cdk import kernel_exit
from tests.test_config_errors import run_as_the_cli
from tools import cdk_json

# Run app.py as the CLI does, then report whether jsii's Node process was told to exit, how
# many garbage collections ran while app.py did, and whether the collector is on again.
APP_THEN_REPORT = """
import gc, runpy
from mlops_cdk.kernel_exit import node_process

collections = []
gc.callbacks.append(lambda phase, info: phase == "start" and collections.append(info))
runpy.run_path("app.py", run_name="__main__")
found = node_process()
print("no Node process found" if found is None else
      "told to exit" if found[0].stdin.closed else "still open")
print(f"{len(collections)} collections; collector {'on' if gc.isenabled() else 'off'} after")
"""

# Long enough for a slow machine; Node normally ends within a second of app.py.
NODE_EXIT_TIMEOUT_SECONDS = 60


@dataclass(frozen=True)
class AppRun:
    result: subprocess.CompletedProcess[str]
    outdir: Path
    temp: Path  # the run's TMPDIR: jsii's runtime files and the kernel's jsii-kernel-* dir


@pytest.fixture(scope="module")
def app_run(tmp_path_factory: pytest.TempPathFactory) -> AppRun:
    """One synthesis (dev, the default) for every test here: it is the slow part."""
    tmp_path = tmp_path_factory.mktemp("app-py")
    temp = tmp_path / "tmp"
    temp.mkdir()
    result = run_as_the_cli(["-c", APP_THEN_REPORT], cdk_json.context(), tmp_path, TMPDIR=str(temp))
    assert result.returncode == 0, result.stderr
    return AppRun(result, tmp_path / "cdk.out", temp)


def test_missing_env_defaults_to_dev_and_says_so_once(app_run: AppRun) -> None:
    assert app_run.result.stderr.strip().splitlines() == ["no -c env=NAME given; using dev"]


def test_the_assembly_is_complete_when_app_py_returns(app_run: AppRun) -> None:
    # The manifest (written last) lists dev's stacks, and every template it names is there.
    manifest = json.loads((app_run.outdir / "manifest.json").read_text())
    stacks = {
        name: artifact["properties"]["templateFile"]
        for name, artifact in manifest["artifacts"].items()
        if artifact["type"] == "aws:cloudformation:stack"
    }
    assert sorted(stacks) == ["mlops-dev-pipelines", "mlops-dev-storage", "mlops-dev-tracking"]
    for template in stacks.values():
        assert json.loads((app_run.outdir / template).read_text())["Resources"]


def test_app_py_runs_without_garbage_collection_and_turns_it_back_on(app_run: AppRun) -> None:
    # Automatic collection is off while app.py runs (app.py main says why), and on again for
    # whatever runs it in its own process.
    assert app_run.result.stdout.splitlines()[1] == "0 collections; collector on after"


def test_app_py_leaves_node_to_exit_and_node_leaves_nothing_behind(app_run: AppRun) -> None:
    # app.py told Node to exit itself, instead of leaving it to jsii's stop at exit, which
    # would then wait for it.
    assert app_run.result.stdout.splitlines()[0] == "told to exit"
    # Node ends on its own and runs its exit handlers: nothing is left in its temp dir.
    deadline = time.monotonic() + NODE_EXIT_TIMEOUT_SECONDS
    while any(app_run.temp.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(app_run.temp.iterdir()), sorted(path.name for path in app_run.temp.iterdir())


def test_an_unknown_jsii_layout_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """A jsii that keeps its Node process elsewhere: jsii's own stop still runs at exit."""
    unregistered: list[object] = []
    monkeypatch.setattr(jsii, "kernel", SimpleNamespace(provider=SimpleNamespace()))
    monkeypatch.setattr(atexit, "unregister", unregistered.append)
    assert kernel_exit.leave_node_to_exit() is False
    assert unregistered == []
