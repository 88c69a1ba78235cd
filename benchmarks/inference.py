"""Inference throughput and memory: the entry point against raw `model.predict`, same run.

For 1M and 10M generated rows, each measurement runs in its own subprocess (so peak RSS is
that run's own, read from wait4's rusage):
  raw    the production model's `predict` on the whole in-memory array of the same rows;
  entry  `python -m iris_inference` generating, validating, scoring and writing the rows.
Targets: entry rows/s >= 0.8x raw rows/s (scoring loop: after start-up and model load), and
entry peak RSS at 10M <= 1.2x at 1M (bounded chunks). Exit status 1 when a target is missed.

Usage: .venv/bin/python benchmarks/inference.py [--sizes 1000000 10000000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRAINING_CODE = ROOT / "containers" / "training"
INFERENCE_CODE = ROOT / "containers" / "inference"
SHARED_CODE = ROOT / "containers" / "shared"  # mlops_runtime, in both images
MODEL = "iris-model"
SEED = 7
CHUNK_ROWS = 100_000  # the entry point's default
THROUGHPUT_TARGET = 0.8
MEMORY_TARGET = 1.2


@dataclass(frozen=True)
class Measurement:
    rows: int
    seconds: float  # of the measured work only
    wall_seconds: float  # of the whole subprocess
    peak_rss_mib: float

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--raw", type=int, help=argparse.SUPPRESS)  # child mode
    parser.add_argument("--tracking-uri", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.raw is not None:
        return _raw_child(args.raw, args.tracking_uri)

    with tempfile.TemporaryDirectory(prefix="bench-inference-") as tmp:
        work = Path(tmp)
        env = _env(work)
        print(f"training the model to score ({env['MLFLOW_TRACKING_URI']}) ...", flush=True)
        _run([sys.executable, "-m", "iris_training", "train"], env, TRAINING_CODE, work)
        results: dict[int, tuple[Measurement, Measurement]] = {}
        for rows in args.sizes:
            print(f"{rows:>11,} rows: raw model.predict ...", flush=True)
            raw = _measure_raw(rows, env, work)
            print(f"{rows:>11,} rows: inference entry point ...", flush=True)
            entry = _measure_entry(rows, env, work)
            results[rows] = (raw, entry)
        return _report(results)


def _env(work: Path) -> dict[str, str]:
    return {
        **os.environ,
        "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "SAGEMAKER_BASE_DIR": str(work / "opt-ml"),
        "MODEL_NAME": MODEL,
    }


def _run(
    command: list[str], env: dict[str, str], code: Path, cwd: Path
) -> tuple[str, float, float]:
    """Run to completion; return stdout, wall seconds and the child's own peak RSS (MiB)."""
    started = time.perf_counter()
    child = subprocess.Popen(
        command,
        env={**env, "PYTHONPATH": os.pathsep.join([str(code), str(SHARED_CODE)])},
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert child.stdout is not None
    stdout = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(command[1:4])} failed with status {child.returncode}")
    return stdout, wall, usage.ru_maxrss / 1024  # Linux reports KiB


def _measure_raw(rows: int, env: dict[str, str], work: Path) -> Measurement:
    command = [
        sys.executable,
        __file__,
        "--raw",
        str(rows),
        "--tracking-uri",
        env["MLFLOW_TRACKING_URI"],
    ]
    stdout, wall, rss = _run(command, env, INFERENCE_CODE, work)
    return Measurement(rows, json.loads(stdout.splitlines()[-1])["seconds"], wall, rss)


def _measure_entry(rows: int, env: dict[str, str], work: Path) -> Measurement:
    output = work / f"out-{rows}"
    command = [
        sys.executable, "-m", "iris_inference",
        "--input-dir", str(work / "empty"),
        "--output-dir", str(output),
        "--date", "2026-01-01",
        "--generate-rows", str(rows),
        "--seed", str(SEED),
        "--chunk-rows", str(CHUNK_ROWS),
    ]  # fmt: skip
    stdout, wall, rss = _run(command, env, INFERENCE_CODE, work)
    summary = json.loads(stdout.splitlines()[-1])
    assert summary["rows"] == rows
    return Measurement(rows, summary["scoring_seconds"], wall, rss)


def _raw_child(rows: int, tracking_uri: str) -> int:
    """The baseline: the same model and the same rows, one `predict` on the whole array."""
    import mlflow.sklearn  # noqa: PLC0415 -- child process only
    import numpy as np  # noqa: PLC0415
    import pandas as pd  # noqa: PLC0415
    from iris_inference.sources import CANONICAL_FEATURES, generated_batches  # noqa: PLC0415
    from mlflow import MlflowClient  # noqa: PLC0415

    mlflow.set_tracking_uri(tracking_uri)
    version = MlflowClient().get_model_version_by_alias(MODEL, "production").version
    model = mlflow.sklearn.load_model(f"models:/{MODEL}/{version}")
    batches = generated_batches(
        rows=rows, seed=SEED, chunk_rows=CHUNK_ROWS, features=CANONICAL_FEATURES
    )
    array = np.concatenate([batch.features for batch in batches])
    frame = pd.DataFrame(array, columns=list(CANONICAL_FEATURES), copy=False)
    started = time.perf_counter()
    model.predict(frame)
    print(json.dumps({"seconds": time.perf_counter() - started}))
    return 0


def _report(results: dict[int, tuple[Measurement, Measurement]]) -> int:
    print()
    print(f"{'rows':>11} | {'raw rows/s':>11} | {'entry rows/s':>12} | {'ratio':>5} | "
          f"{'entry e2e rows/s':>16} | {'raw RSS':>9} | {'entry RSS':>9}")  # fmt: skip
    for rows, (raw, entry) in results.items():
        print(
            f"{rows:>11,} | {raw.rows_per_second:>11,.0f} | {entry.rows_per_second:>12,.0f} | "
            f"{entry.rows_per_second / raw.rows_per_second:>5.2f} | "
            f"{rows / entry.wall_seconds:>16,.0f} | {raw.peak_rss_mib:>6,.0f} MiB | "
            f"{entry.peak_rss_mib:>6,.0f} MiB"
        )
    ok = True
    for rows, (raw, entry) in results.items():
        ratio = entry.rows_per_second / raw.rows_per_second
        ok &= _verdict(f"throughput at {rows:,} rows: {ratio:.2f}x raw", ratio >= THROUGHPUT_TARGET,
                       f">= {THROUGHPUT_TARGET}x")  # fmt: skip
    sizes = sorted(results)
    if len(sizes) >= 2:
        small, large = results[sizes[0]][1], results[sizes[-1]][1]
        raw_small, raw_large = results[sizes[0]][0], results[sizes[-1]][0]
        growth = large.peak_rss_mib / small.peak_rss_mib
        raw_growth = raw_large.peak_rss_mib / raw_small.peak_rss_mib
        print(
            f"raw model.predict peak RSS grows {raw_growth:.2f}x from {sizes[0]:,} to {sizes[-1]:,} rows"
        )
        ok &= _verdict(f"entry peak RSS {sizes[-1]:,} vs {sizes[0]:,} rows: {growth:.2f}x",
                       growth <= MEMORY_TARGET, f"<= {MEMORY_TARGET}x")  # fmt: skip
    print("entry rows/s: the scoring loop (generate, validate, predict_proba, write Parquet);")
    print("entry e2e rows/s: the whole process, interpreter start and model load included.")
    if os.environ.get("OPENBLAS_CORETYPE"):
        print(f"note: OPENBLAS_CORETYPE={os.environ['OPENBLAS_CORETYPE']} is set")
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end")
    return 0 if ok else 1


def _verdict(label: str, passed: bool, target: str) -> bool:
    print(f"{'PASS' if passed else 'MISS'}  {label} (target {target})")
    return passed


if __name__ == "__main__":
    sys.exit(main())
