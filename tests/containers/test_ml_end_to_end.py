"""End to end: train -> register -> promote -> infer, then the README's first command."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from iris_inference.cli import main as infer
from iris_inference.partition import LocalDestination, read_partition
from sklearn.datasets import load_iris

from tests.containers.conftest import HOPELESS, ROOT, new_store, sagemaker_tree, train


def _iris_csv() -> str:
    iris = load_iris(as_frame=True)
    frame = iris.data.copy()
    frame["species"] = [iris.target_names[t] for t in iris.target]
    return str(frame.to_csv(index=False))


@pytest.mark.slow
def test_train_register_promote_infer_and_gate_a_challenger(tmp_path: Path) -> None:
    store = new_store(tmp_path / "store")
    output = tmp_path / "processing" / "output"

    def score(date: str) -> tuple[pd.DataFrame, dict[str, Any]]:
        args = ["--input-dir", str(tmp_path / "none"), "--output-dir", str(output)]
        assert infer([*args, "--date", date, "--generate-rows", "200"], store.env()) == 0
        folder = output / f"date={date}"
        summary = json.loads((folder / "summary.json").read_text())
        published = read_partition(LocalDestination(folder))  # by the reader's contract
        assert published is not None
        return published.table.to_pandas(), summary

    # 1. The first version, trained from a train channel, passes the gate and is promoted.
    sagemaker_tree(tmp_path / "job-1", {}, _iris_csv())
    first = train(store, tmp_path / "job-1", {}, PIPELINE_EXECUTION_ID="exec-1")
    v1 = first.evaluation["version"]
    assert first.evaluation["data"]["source"] == "train channel (iris.csv)"
    assert store.production_version() == v1
    predictions, summary = score("2026-01-01")
    assert summary["model"]["version"] == v1
    assert set(predictions["model_version"].astype(str)) == {v1}

    # 2. A challenger with another forest seed: promoted exactly when it is no worse.
    second = train(store, tmp_path / "job-2", {"random_state": "7"}, PIPELINE_EXECUTION_ID="exec-2")
    gate = second.evaluation["gate"]
    no_worse = second.evaluation["accuracy"] >= first.evaluation["accuracy"]
    assert gate["champion_version"] == v1
    assert gate["champion_accuracy"] == pytest.approx(first.evaluation["accuracy"])
    assert gate["decision"] == ("promoted" if no_worse else "rejected")
    champion = second.evaluation["version"] if no_worse else v1
    assert store.production_version() == champion
    assert store.version_tags(second.evaluation["version"])["pipeline.execution_id"] == "exec-2"

    # 3. A hopeless challenger is refused; inference keeps using the champion.
    third = train(store, tmp_path / "job-3", HOPELESS)
    assert third.evaluation["gate"]["decision"] == "rejected"
    assert store.production_version() == champion
    _, summary = score("2026-01-02")
    assert summary["model"]["version"] == champion


@pytest.mark.slow
def test_make_demo_runs_the_whole_flow_through_a_real_mlflow_server(tmp_path: Path) -> None:
    """`make demo` is `python local/demo.py`; here with its state in a temporary directory."""
    demo = subprocess.run(
        [
            sys.executable,
            str(ROOT / "local" / "demo.py"),
            "--state-dir",
            str(tmp_path),
            "--rows",
            "50",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=ROOT,
    )
    out = demo.stdout
    assert demo.returncode == 0, out + demo.stderr
    steps = re.findall(r"==> \[(\d)/4\]", out)
    assert steps == ["1", "2", "3", "4"]
    assert "gate         PROMOTED: " in out
    assert "alias        production -> v1" in out
    assert "train | " in out  # the entry points' progress is streamed while they run
    assert "infer | " in out
    partition = next((tmp_path / "sagemaker" / "processing" / "output").glob("date=*"))
    published = read_partition(LocalDestination(partition))
    assert published is not None and published.table.num_rows == 50
    assert (tmp_path / "sagemaker" / "model" / "mlflow-model" / "MLmodel").exists()
    # The server it started is gone.
    address = re.search(r"http://127\.0\.0\.1:(\d+)", out)
    assert address is not None
    port = int(address.group(1))
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0
