"""How long does the test suite take now, against a baseline revision, measured in the same run?

This machine's speed moves by 20% and more from one hour to the next, so a suite time only
means something beside the baseline's, taken in the same minutes. This checks the baseline
revision out in a temporary git worktree that shares this checkout's installs (.venv,
node_modules, .local) and kept lint results, runs one discarded warm-up of each, then runs the
two in ABBA order (baseline, current, current, baseline, ...), so a machine that speeds up or
slows down through the run favours neither. It prints each run's wall and CPU time (user +
system, every process the run waited for) and the ratios of the means, current / baseline.

    .venv/bin/python benchmarks/suite_time.py --baseline 1516df8 --pairs 2 --quick
    .venv/bin/python benchmarks/suite_time.py --baseline HEAD~3 -- tests/unit   # pytest args

``--quick`` is the quick loop (no emulator deploy, no real database servers); without it, the
whole suite as `make pytest` runs it. Both revisions run with today's dependencies, so a
baseline whose pinned requirements differ is refused.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED_INSTALLS = (".venv", "node_modules", ".local")  # symlinked: never `make` in the worktree
KEPT_RESULTS = Path(".pytest_cache") / "d"  # kept lint results (tests/session_cache.py)
# Pinned outside requirements-dev.txt's includes: npm's lock (node_modules) and the MLflow
# servers' locks (their venvs under .local, tests/tracking/test_managed_server_version.py).
OTHER_PINS = ("package-lock.json", "tests/tracking/mlflow-server-*.txt")
PARALLEL = ["-n", "auto", "--dist", "loadgroup"]  # as `make pytest`
QUICK = ["-m", "not emulator and not real_database"]


@dataclass(frozen=True)
class Run:
    label: str
    wall: float
    cpu: float


def abba(pairs: int) -> list[str]:
    """The order of the measured runs: each pair alternates which revision goes first."""
    order: list[str] = []
    for pair in range(pairs):
        order += ["baseline", "current"] if pair % 2 == 0 else ["current", "baseline"]
    return order


def ratios(runs: Sequence[Run]) -> tuple[float, float]:
    """Current over baseline: the means of the wall times, and of the CPU times."""
    current = [r for r in runs if r.label == "current"]
    baseline = [r for r in runs if r.label == "baseline"]
    wall = statistics.fmean(r.wall for r in current) / statistics.fmean(r.wall for r in baseline)
    cpu = statistics.fmean(r.cpu for r in current) / statistics.fmean(r.cpu for r in baseline)
    return wall, cpu


def _run_git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)


def _git(*args: str) -> str:
    done = _run_git(*args)
    if done.returncode != 0:
        raise SystemExit(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


def _commit(revision: str) -> str:
    done = _run_git("rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}")
    if done.returncode != 0:
        raise SystemExit(f"--baseline {revision}: not a commit of this repository")
    return done.stdout.strip()


def dependency_files() -> list[str]:
    """What the shared installs are built from: requirements-dev.txt and every file it
    includes with ``-r``, as `make install` installs them into .venv, and :data:`OTHER_PINS`."""
    found: list[str] = []
    pending = ["requirements-dev.txt"]
    while pending:
        name = pending.pop(0)
        found.append(name)
        for line in (ROOT / name).read_text().splitlines():
            if line.startswith("-r "):
                pending.append(line.removeprefix("-r ").strip())
    return [*found, *OTHER_PINS]


def _refuse_other_dependencies(revision: str, commit: str) -> None:
    changed = _git("diff", "--name-only", commit, "--", *dependency_files())
    if changed:
        raise SystemExit(
            f"{revision} pins other dependencies ({changed.replace(chr(10), ', ')}); "
            "it would run here with today's: pick a baseline with the same pins"
        )


@contextmanager
def baseline_checkout(commit: str) -> Iterator[Path]:
    """``commit`` in a temporary worktree sharing this checkout's installs and kept results."""
    folder = Path(tempfile.mkdtemp(prefix="suite-baseline-")) / "tree"
    _git("worktree", "add", "--detach", str(folder), commit)
    try:
        for name in SHARED_INSTALLS:
            if (ROOT / name).exists():
                (folder / name).symlink_to(ROOT / name)
        if (ROOT / KEPT_RESULTS).is_dir():
            shutil.copytree(ROOT / KEPT_RESULTS, folder / KEPT_RESULTS)
        yield folder
    finally:
        _git("worktree", "remove", "--force", str(folder))
        shutil.rmtree(folder.parent, ignore_errors=True)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_suite(label: str, tree: Path, pytest_args: Sequence[str]) -> Run:
    # As `make pytest`: bytecode caches kept even where the environment turns them off.
    environ = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    command = [str(tree / ".venv" / "bin" / "python"), "-m", "pytest", "-q", *pytest_args]
    cpu, started = _children_cpu(), time.monotonic()
    done = subprocess.run(
        command, cwd=tree, env=environ, capture_output=True, text=True, check=False
    )
    wall, cpu = time.monotonic() - started, _children_cpu() - cpu
    if done.returncode != 0:
        tail = (done.stdout + done.stderr)[-3000:]
        raise SystemExit(f"the {label} suite failed (exit {done.returncode}):\n{tail}")
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    print(f"  {label:8}  wall {wall:7.1f} s  CPU {cpu:7.1f} s  {summary}", flush=True)
    return Run(label, wall, cpu)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--baseline", required=True, help="the git revision to compare with")
    parser.add_argument("--pairs", type=int, default=2, help="measured pairs (default 2)")
    parser.add_argument("--quick", action="store_true", help="no emulator, no real databases")
    parser.add_argument("pytest_args", nargs="*", help="more pytest arguments (after --)")
    args = parser.parse_args(argv)
    if args.pairs < 1:
        parser.error("--pairs must be at least 1")
    commit = _commit(args.baseline)
    _refuse_other_dependencies(args.baseline, commit)
    pytest_args = [*PARALLEL, *(QUICK if args.quick else []), *args.pytest_args]
    print(f"pytest {' '.join(pytest_args)}; baseline {args.baseline}")
    with baseline_checkout(commit) as baseline:
        trees = {"baseline": baseline, "current": ROOT}
        print("warm-up (not counted):")
        for label in ("baseline", "current"):
            run_suite(label, trees[label], pytest_args)
        print("measured (ABBA):")
        runs = [run_suite(label, trees[label], pytest_args) for label in abba(args.pairs)]
    wall, cpu = ratios(runs)
    for label in ("baseline", "current"):
        mine = [r for r in runs if r.label == label]
        print(
            f"{label:8}  mean wall {statistics.fmean(r.wall for r in mine):7.1f} s  "
            f"mean CPU {statistics.fmean(r.cpu for r in mine):7.1f} s"
        )
    print(f"current / baseline: wall {wall:.2f}x, CPU {cpu:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
