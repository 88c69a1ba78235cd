"""How much slower is `cdk synth` of this app than of a bare one-bucket CDK app?

Both run through the same CLI, Python and Node in the same run, several times each, and the
median ratio is reported (target once all stacks exist: <= 1.5x). Usage:

    .venv/bin/python benchmarks/synth.py [--repetitions 5] [--env staging]
"""

from __future__ import annotations

import argparse
import ctypes
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CDK = ROOT / "node_modules" / ".bin" / "cdk"

BARE_APP = """
import aws_cdk as cdk
from aws_cdk import aws_s3 as s3

app = cdk.App()
stack = cdk.Stack(app, "Bare")
s3.Bucket(stack, "Bucket")
app.synth()
"""


PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _adopt_orphans() -> None:
    """Become the parent of processes our children leave behind (Linux), so their CPU counts.

    app.py does not wait for jsii's Node process to exit (mlops_cdk/kernel_exit.py): Node ends
    a moment after the CLI returns, and without this its CPU time would be nobody's.
    """
    if sys.platform != "linux":
        print("not Linux: processes left running after the CLI are not counted and may overlap")
    elif ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        error = os.strerror(ctypes.get_errno())
        print(f"prctl(PR_SET_CHILD_SUBREAPER) failed ({error}): that CPU is not counted")


def _reap_orphans() -> None:
    """Wait for every adopted process, so its CPU is counted and it overlaps no later run."""
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def time_synth(app_command: str, env: str, outdir: Path) -> tuple[float, float]:
    """Wall-clock seconds until the CLI returns (what a user waits for), and CPU seconds of
    the CLI and every process it started, including any still running when it returned."""
    command = [str(CDK), "synth", "--quiet", "--app", app_command, "-c", f"env={env}"]
    command += ["-o", str(outdir)]
    environ = {
        **os.environ,
        "CDK_DISABLE_CLI_TELEMETRY": "true",
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
    }
    start, cpu = time.perf_counter(), _children_cpu()
    subprocess.run(command, cwd=ROOT, env=environ, check=True, capture_output=True)
    wall = time.perf_counter() - start
    _reap_orphans()
    return wall, _children_cpu() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--env", default="staging")
    args = parser.parse_args()
    _adopt_orphans()

    with tempfile.TemporaryDirectory() as tmp:
        bare = Path(tmp) / "bare_app.py"
        bare.write_text(BARE_APP)
        apps = {
            "bare one-bucket app": f"{sys.executable} {bare}",
            f"mlops-cdk ({args.env})": f"{sys.executable} app.py",
        }
        times: dict[str, list[float]] = {name: [] for name in apps}
        cpu: dict[str, list[float]] = {name: [] for name in apps}
        time_synth(apps["bare one-bucket app"], args.env, Path(tmp) / "warmup")  # caches warm
        for repetition in range(args.repetitions):
            for name, command in apps.items():  # interleaved, so drift hits both alike
                wall, seconds = time_synth(command, args.env, Path(tmp) / f"{repetition}")
                times[name].append(round(wall, 2))
                cpu[name].append(round(seconds, 2))

    baseline, ours = (statistics.median(t) for t in times.values())
    cpu_baseline, cpu_ours = (statistics.median(t) for t in cpu.values())
    for name, samples in times.items():
        print(f"{name:28s} median {statistics.median(samples):6.2f} s  runs {samples}")
        print(f"{'':28s} CPU    {statistics.median(cpu[name]):6.2f} s  runs {cpu[name]}")
    print(f"ratio (mlops-cdk / bare): {ours / baseline:.2f}x  (target <= 1.5x)")
    # On a busy machine wall-clock time varies with the load; CPU time much less.
    print(f"CPU-time ratio:           {cpu_ours / cpu_baseline:.2f}x")


if __name__ == "__main__":
    main()
