"""How much slower is `cdk synth` of this app than of a bare one-bucket CDK app?

Both run through the same CLI, Python and Node in the same run, several times each, and the
median ratio is reported (target once all stacks exist: <= 1.5x). Usage:

    .venv/bin/python benchmarks/synth.py [--repetitions 5] [--env staging]
"""

from __future__ import annotations

import argparse
import os
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


def time_synth(app_command: str, env: str, outdir: Path) -> float:
    command = [str(CDK), "synth", "--quiet", "--app", app_command, "-c", f"env={env}"]
    command += ["-o", str(outdir)]
    environ = {
        **os.environ,
        "CDK_DISABLE_CLI_TELEMETRY": "true",
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
    }
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, env=environ, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--env", default="staging")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        bare = Path(tmp) / "bare_app.py"
        bare.write_text(BARE_APP)
        apps = {
            "bare one-bucket app": f"{sys.executable} {bare}",
            f"mlops-cdk ({args.env})": f"{sys.executable} app.py",
        }
        times: dict[str, list[float]] = {name: [] for name in apps}
        time_synth(apps["bare one-bucket app"], args.env, Path(tmp) / "warmup")  # caches warm
        for repetition in range(args.repetitions):
            for name, command in apps.items():  # interleaved, so drift hits both alike
                times[name].append(time_synth(command, args.env, Path(tmp) / f"{repetition}"))

    baseline, ours = (statistics.median(t) for t in times.values())
    for name, samples in times.items():
        print(f"{name:28s} median {statistics.median(samples):6.2f} s  runs {samples}")
    print(f"ratio (mlops-cdk / bare): {ours / baseline:.2f}x  (target <= 1.5x)")


if __name__ == "__main__":
    main()
