"""Inference throughput, memory and sharding: the entry point against baselines, same run.

Every measurement is a whole process (interpreter start, imports, model load from MLflow,
read, score, write), started on its own, timed by wall clock, its peak RSS from wait4:

  plain      a plain single-threaded script: read_csv, model.predict, to_parquet
  entry-1    `python -m iris_inference --workers 1` (read, score, write in turn, one thread)
  entry      `python -m iris_inference` (default: a worker per core, reads ahead, writes behind)
  entry-10M  the same on 10x the rows: peak RSS must stay flat
  shards-N   N sharded score processes at once (one worker each) over N shards of the same
             input, then `python -m iris_inference.commit`; N = 1 and 2

Targets (issue 15), on the 1M-row CSV: entry >= 1.5x the rows/s of plain and of entry-1;
peak RSS of entry at 10M <= 1.2x at 1M; shards-2 >= 1.7x the rows/s of shards-1, and both
commit the same partition (rows, class counts). Exit status 1 when a target is missed.
The machine's load is printed before and after: on a shared machine, read the ratios with it.

Usage: .venv/bin/python benchmarks/inference.py [--rows 1000000] [--memory-rows 10000000]
       [--repeat 1] [--skip-memory]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRAINING_CODE = ROOT / "containers" / "training"
INFERENCE_CODE = ROOT / "containers" / "inference"
SHARED_CODE = ROOT / "containers" / "shared"  # mlops_runtime, in both images
MODEL = "iris-model"
DATE = "2026-01-01"
SEED = 7
WRITE_CHUNK = 1_000_000
TARGET_VS_PLAIN = 1.5
TARGET_VS_ONE_WORKER = 1.5
TARGET_MEMORY = 1.2
TARGET_SHARDS = 1.7


@dataclass(frozen=True)
class Measurement:
    rows: int
    wall_seconds: float
    peak_rss_mib: float  # the largest of the run's processes
    loop_seconds: float  # read, score and write only: after start-up and the model load

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.wall_seconds

    @property
    def loop_rows_per_second(self) -> float:
        return self.rows / self.loop_seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--memory-rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=1, help="runs of each (median kept)")
    parser.add_argument("--skip-memory", action="store_true", help="no 10M-row run")
    parser.add_argument("--plain", nargs=3, help=argparse.SUPPRESS)  # child mode
    parser.add_argument("--make-csv", nargs=2, help=argparse.SUPPRESS)  # child mode
    parser.add_argument("--split", nargs=3, help=argparse.SUPPRESS)  # child mode
    args = parser.parse_args()
    if args.plain:
        return _plain_child(*args.plain)
    if args.make_csv:
        _write_csv_child(Path(args.make_csv[0]), int(args.make_csv[1]))
        return 0
    if args.split:
        _split_child(Path(args.split[0]), Path(args.split[1]), int(args.split[2]))
        return 0

    print(f"load average at start: {_load()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-inference-") as tmp:
        work = Path(tmp)
        env = _env(work)
        print(f"training the model to score ({env['MLFLOW_TRACKING_URI']}) ...", flush=True)
        _run([sys.executable, "-m", "iris_training", "train"], env, TRAINING_CODE, work)
        csv = _write_csv(work / "input-1" / "day.csv", args.rows)
        halves = _split(csv, work / "input-halves", 2)
        runs: dict[str, Callable[[], Measurement]] = {
            "plain": lambda: _plain(csv, args.rows, env, work),
            "entry-1": lambda: _entry(csv.parent, args.rows, env, work, workers=1),
            "entry": lambda: _entry(csv.parent, args.rows, env, work, workers=None),
            "shards-1": lambda: _shards([csv.parent], args.rows, env, work),
            "shards-2": lambda: _shards(halves, args.rows, env, work),
        }
        samples: dict[str, list[Measurement]] = {name: [] for name in runs}
        for repeat in range(args.repeat):  # interleaved: a load spike hits every kind alike
            for name, measure in runs.items():
                print(f"[{repeat + 1}/{args.repeat}] {name} ...", flush=True)
                samples[name].append(measure())
        results = {name: _median(values) for name, values in samples.items()}
        if not args.skip_memory:
            big = _write_csv(work / "input-big" / "day.csv", args.memory_rows)
            print(f"entry on {args.memory_rows:,} rows ...", flush=True)
            results["entry-big"] = _entry(big.parent, args.memory_rows, env, work, workers=None)
        return _report(results)


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.1f}, {five:.1f}, {fifteen:.1f} (1, 5, 15 min) on {os.cpu_count()} CPUs"


def _env(work: Path) -> dict[str, str]:
    return {
        **os.environ,
        "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "SAGEMAKER_BASE_DIR": str(work / "opt-ml"),
        "MODEL_NAME": MODEL,
    }


def _write_csv(path: Path, rows: int) -> Path:
    """Generated Iris-like rows as the day's CSV, written by a child process: Linux starts a
    child's peak RSS at its parent's (vfork, then exec), so this process must stay small."""
    print(f"writing {rows:,} rows to {path.name} ...", flush=True)
    _run([sys.executable, __file__, "--make-csv", str(path), str(rows)], dict(os.environ),
         INFERENCE_CODE, ROOT)  # fmt: skip
    return path


def _write_csv_child(path: Path, rows: int) -> None:
    import pandas as pd  # noqa: PLC0415
    from iris_inference.sources import CANONICAL_FEATURES, generated_batches  # noqa: PLC0415

    path.parent.mkdir(parents=True, exist_ok=True)
    batches = generated_batches(
        rows=rows, seed=SEED, chunk_rows=WRITE_CHUNK, features=CANONICAL_FEATURES
    )
    for index, batch in enumerate(batches):
        frame = pd.DataFrame(batch.features, columns=list(CANONICAL_FEATURES))
        frame.to_csv(path, mode="w" if index == 0 else "a", header=index == 0, index=False,
                     float_format="%.1f")  # fmt: skip


def _split(csv: Path, folder: Path, parts: int) -> list[Path]:
    """The same rows as `parts` files, one folder each (what ShardedByS3Key hands N hosts)."""
    _run([sys.executable, __file__, "--split", str(csv), str(folder), str(parts)],
         dict(os.environ), INFERENCE_CODE, ROOT)  # fmt: skip
    return [folder / f"shard-{index}" for index in range(parts)]


def _split_child(csv: Path, folder: Path, parts: int) -> None:
    lines = csv.read_text().splitlines(keepends=True)
    header, body = lines[0], lines[1:]
    size = -(-len(body) // parts)
    for index in range(parts):
        target = folder / f"shard-{index}" / f"day-{index}.csv"
        target.parent.mkdir(parents=True)
        target.write_text(header + "".join(body[index * size : (index + 1) * size]))


def _popen(
    command: list[str], env: dict[str, str], code: Path, cwd: Path, log: Path
) -> tuple[subprocess.Popen[bytes], Path]:
    """Started in the background; its output goes to files (read once it has exited)."""
    with log.with_suffix(".out").open("wb") as out, log.with_suffix(".err").open("wb") as err:
        child = subprocess.Popen(
            command,
            env={**env, "PYTHONPATH": os.pathsep.join([str(code), str(SHARED_CODE)])},
            cwd=cwd,
            stdout=out,
            stderr=err,
        )
    return child, log


def _wait(started: tuple[subprocess.Popen[bytes], Path], what: str) -> tuple[str, float]:
    """stdout and peak RSS (MiB) of a child started by _popen."""
    child, log = started
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        last = log.with_suffix(".err").read_text().strip().splitlines()[-1:] or ["(no stderr)"]
        raise SystemExit(f"{what} failed with status {child.returncode}: {last[0]}")
    return log.with_suffix(".out").read_text(), usage.ru_maxrss / 1024


def _run(
    command: list[str], env: dict[str, str], code: Path, cwd: Path
) -> tuple[str, float, float]:
    """Run to completion; stdout, wall seconds, peak RSS (MiB) of that process alone."""
    started = time.perf_counter()
    child = subprocess.Popen(
        command,
        env={**env, "PYTHONPATH": os.pathsep.join([str(code), str(SHARED_CODE)])},
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stderr is not None
    stdout = child.stdout.read()
    stderr = child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    code_ = os.waitstatus_to_exitcode(status)
    if code_ != 0:
        last = stderr.strip().splitlines()[-1:] or ["(no stderr)"]
        raise SystemExit(f"{' '.join(command[1:4])} failed with status {code_}: {last[0]}")
    return stdout, wall, usage.ru_maxrss / 1024  # Linux reports KiB


def _plain(csv: Path, rows: int, env: dict[str, str], work: Path) -> Measurement:
    out = work / "plain.parquet"
    command = [sys.executable, __file__, "--plain", str(csv), str(out), env["MLFLOW_TRACKING_URI"]]
    stdout, wall, rss = _run(command, env, INFERENCE_CODE, work)
    return Measurement(rows, wall, rss, json.loads(stdout.splitlines()[-1])["loop_seconds"])


def _plain_child(csv: str, out: str, tracking_uri: str) -> int:
    """The baseline: what one would write by hand, single-threaded, same model and rows."""
    import mlflow.sklearn  # noqa: PLC0415 -- child process only
    import pandas as pd  # noqa: PLC0415
    from mlflow import MlflowClient  # noqa: PLC0415

    mlflow.set_tracking_uri(tracking_uri)
    version = MlflowClient().get_model_version_by_alias(MODEL, "production").version
    model = mlflow.sklearn.load_model(f"models:/{MODEL}/{version}")
    model.set_params(n_jobs=1)
    started = time.perf_counter()
    frame = pd.read_csv(csv)
    frame["predicted_class"] = model.predict(frame)
    frame.to_parquet(out)
    print(json.dumps({"loop_seconds": time.perf_counter() - started}))
    return 0


def _entry(
    input_dir: Path, rows: int, env: dict[str, str], work: Path, *, workers: int | None
) -> Measurement:
    output = work / "out-entry"
    shutil.rmtree(output, ignore_errors=True)
    command = [
        sys.executable, "-m", "iris_inference",
        "--input-dir", str(input_dir), "--output-dir", str(output), "--date", DATE,
    ]  # fmt: skip
    if workers is not None:
        command += ["--workers", str(workers)]
    stdout, wall, rss = _run(command, env, INFERENCE_CODE, work)
    summary = json.loads(stdout.splitlines()[-1])
    assert summary["rows"] == rows
    return Measurement(rows, wall, rss, summary["scoring_seconds"])


_SHARD_MANIFESTS: dict[int, dict[str, object]] = {}


def _shards(inputs: list[Path], rows: int, env: dict[str, str], work: Path) -> Measurement:
    """N sharded score processes at once (one worker each), then the commit; wall of both."""
    run = work / f"shards-{len(inputs)}"
    shutil.rmtree(run, ignore_errors=True)
    staging = run / "staging"
    staging.mkdir(parents=True)
    started = time.perf_counter()
    children = []
    for index, input_dir in enumerate(inputs):
        base = run / f"host-{index + 1}"
        (base / "config").mkdir(parents=True)
        hosts = [f"algo-{i + 1}" for i in range(len(inputs))]
        (base / "config" / "resourceconfig.json").write_text(
            json.dumps({"current_host": hosts[index], "hosts": hosts})
        )
        (base / "processing").mkdir()
        (base / "processing" / "staging").symlink_to(staging)  # what the commit step downloads
        command = [sys.executable, "-m", "iris_inference", "--input-dir", str(input_dir),
                   "--date", DATE, "--workers", "1"]  # fmt: skip
        shard_env = {**env, "SAGEMAKER_BASE_DIR": str(base), "INFERENCE_SHARDED": "1"}
        children.append(_popen(command, shard_env, INFERENCE_CODE, run, run / hosts[index]))
    waited = [_wait(child, "a shard") for child in children]
    peak = max(rss for _, rss in waited)
    loop = max(json.loads(out.splitlines()[-1])["timings"]["scoring_seconds"] for out, _ in waited)
    output = run / "output"
    command = [sys.executable, "-m", "iris_inference.commit", "--expected-shards",
               str(len(inputs)), "--output-uri", str(output), "--staging-dir", str(staging)]  # fmt: skip
    commit_env = {k: v for k, v in env.items() if k != "MLFLOW_TRACKING_URI"}
    stdout, _, commit_rss = _run(command, commit_env, INFERENCE_CODE, run)
    wall = time.perf_counter() - started
    summary = json.loads(stdout.splitlines()[-1])
    assert summary["rows"] == rows, summary["rows"]
    _SHARD_MANIFESTS[len(inputs)] = {
        "rows": summary["rows"],
        "class_counts": summary["class_counts"],
    }
    return Measurement(rows, wall, max(peak, commit_rss), loop)


def _median(values: list[Measurement]) -> Measurement:
    wall = statistics.median(m.wall_seconds for m in values)
    loop = statistics.median(m.loop_seconds for m in values)
    return Measurement(values[0].rows, wall, max(m.peak_rss_mib for m in values), loop)


def _report(results: dict[str, Measurement]) -> int:
    print()
    print(f"{'run':>10} | {'rows':>11} | {'wall s':>7} | {'rows/s':>9} | {'loop s':>7} | "
          f"{'loop rows/s':>11} | {'peak RSS':>9}")  # fmt: skip
    for name, m in results.items():
        print(f"{name:>10} | {m.rows:>11,} | {m.wall_seconds:>7.2f} | {m.rows_per_second:>9,.0f} | "
              f"{m.loop_seconds:>7.2f} | {m.loop_rows_per_second:>11,.0f} | "
              f"{m.peak_rss_mib:>5,.0f} MiB")  # fmt: skip
    print("rows/s: whole process (start-up, imports, model load included; the targets);")
    print("loop: read, score, write only (shards: the slowest shard's loop), for information.")
    fixed = results["entry-1"].wall_seconds - results["entry-1"].loop_seconds
    print(f"entry-1 spends {fixed:.1f} s outside the loop (interpreter, imports, model load, "
          "commit): with 2x on the loop alone, the whole-process ratio is at most "
          f"{results['entry-1'].wall_seconds / (fixed + results['entry-1'].loop_seconds / 2):.2f}x")  # fmt: skip
    for name, base in (("entry", "plain"), ("entry", "entry-1"), ("shards-2", "shards-1")):
        loop = results[name].loop_rows_per_second / results[base].loop_rows_per_second
        print(f"info  {name} vs {base}, loop only: {loop:.2f}x rows/s")
    ok = True
    entry = results["entry"].rows_per_second
    for baseline, target in (("plain", TARGET_VS_PLAIN), ("entry-1", TARGET_VS_ONE_WORKER)):
        ratio = entry / results[baseline].rows_per_second
        ok &= _verdict(
            f"entry vs {baseline}: {ratio:.2f}x rows/s", ratio >= target, f">= {target}x"
        )
    if "entry-big" in results:
        growth = results["entry-big"].peak_rss_mib / results["entry"].peak_rss_mib
        ok &= _verdict(f"entry peak RSS {results['entry-big'].rows:,} vs {results['entry'].rows:,} "
                       f"rows: {growth:.2f}x", growth <= TARGET_MEMORY, f"<= {TARGET_MEMORY}x")  # fmt: skip
    ratio = results["shards-2"].rows_per_second / results["shards-1"].rows_per_second
    ok &= _verdict(
        f"2 shards vs 1: {ratio:.2f}x rows/s", ratio >= TARGET_SHARDS, f">= {TARGET_SHARDS}x"
    )
    same = _SHARD_MANIFESTS.get(1) == _SHARD_MANIFESTS.get(2)
    ok &= _verdict(f"1 and 2 shards commit the same rows and class counts: {_SHARD_MANIFESTS.get(2)}",
                   same, "identical")  # fmt: skip
    print(f"load average at end: {_load()}")
    return 0 if ok else 1


def _verdict(label: str, passed: bool, target: str) -> bool:
    print(f"{'PASS' if passed else 'MISS'}  {label} (target {target})")
    return passed


if __name__ == "__main__":
    sys.exit(main())
