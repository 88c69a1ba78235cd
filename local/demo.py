"""`make demo`: the whole ML flow on this machine, no AWS account, loopback only.

1. start a real MLflow server on 127.0.0.1 (SQLite store and artifacts under .local/);
2. lay out a SageMaker-shaped /opt/ml tree under .local/sagemaker/ and run the training
   entry point in it: train, log, register, quality gate, promotion;
3. run the inference entry point on generated rows (its input directory is empty); with
   `--shards N`, N sharded inference processes at once over N input files, then the commit
   step (`python -m iris_inference.commit`), as the sharded pipeline runs them;
4. print a summary (and the committed manifest), then stop the server (also on Ctrl-C or
   failure).

Every run trains a new challenger (forest seed 42, 43, ... by run), so a second run shows the
gate comparing it with the production version. `--set max_depth=1` shows a rejection.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TRAINING_CODE = ROOT / "containers" / "training"
INFERENCE_CODE = ROOT / "containers" / "inference"
SHARED_CODE = ROOT / "containers" / "shared"  # mlops_runtime, in both images
MODEL_NAME = "iris-model"
EXPERIMENT = "iris"
SERVER_START_TIMEOUT_SECONDS = 120
STEPS = 4


@dataclass(frozen=True)
class State:
    """Everything the demo keeps, under one directory (.local/ by default)."""

    root: Path

    @property
    def database(self) -> Path:
        return self.root / "mlflow.db"

    @property
    def artifacts(self) -> Path:
        return self.root / "mlartifacts"

    @property
    def server_log(self) -> Path:
        return self.root / "mlflow-server.log"

    @property
    def sagemaker(self) -> Path:
        """Stands in for /opt/ml: SAGEMAKER_BASE_DIR for both entry points."""
        return self.root / "sagemaker"

    @property
    def owned(self) -> list[Path]:
        return [self.database, self.artifacts, self.server_log, self.sagemaker]

    def display(self, path: Path) -> str:
        with contextlib.suppress(ValueError):
            return str(path.relative_to(Path.cwd()))
        return str(path)


class Progress:
    def __init__(self) -> None:
        self.started = time.monotonic()

    def elapsed(self) -> str:
        return f"{time.monotonic() - self.started:5.1f}s"

    def step(self, number: int, title: str) -> None:
        print(f"\n==> [{number}/{STEPS}] {title}  ({self.elapsed()})", flush=True)

    def note(self, text: str) -> None:
        print(f"    {text}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    os.environ.update(_base_env())  # this process talks to MLflow too: no telemetry
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops the server too, like Ctrl-C
    state = State(Path(args.state_dir).resolve())
    progress = Progress()
    if args.reset:
        for path in state.owned:
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        progress.note(f"removed the demo state under {state.display(state.root)}")
    state.root.mkdir(parents=True, exist_ok=True)
    try:
        if args.ui:
            return _serve_ui(state, args.port, progress)
        return _demo(state, args, progress)
    except KeyboardInterrupt:
        print("\ninterrupted: MLflow server stopped, state kept in " + state.display(state.root))
        return 130
    except DemoError as err:
        print(f"\ndemo failed: {err}", file=sys.stderr)
        return 1


class DemoError(Exception):
    pass


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", default=str(ROOT / ".local"), help="default: .local/")
    parser.add_argument("--reset", action="store_true", help="forget previous demo runs first")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a training hyperparameter (repeatable), e.g. --set max_depth=1",
    )
    parser.add_argument("--rows", type=int, default=1000, help="rows to generate and score")
    parser.add_argument(
        "--shards",
        type=int,
        default=1,
        choices=range(1, 9),
        metavar="N",
        help="score N input files in N sharded processes, then commit (1-8; default 1: one "
        "instance, no sharding)",
    )
    parser.add_argument("--ui", action="store_true", help="only serve the MLflow UI on the store")
    parser.add_argument("--port", type=int, default=5000, help="port for --ui (default 5000)")
    return parser


def _demo(state: State, args: argparse.Namespace, progress: Progress) -> int:
    progress.step(1, "start a local MLflow server (SQLite + artifacts under .local/)")
    with mlflow_server(state, _free_port(), progress) as server:
        from mlflow import MlflowClient  # noqa: PLC0415 -- imported while the server boots

        # sagemaker-mlflow's header plugin warns on every request to a non-ARN tracking URI.
        logging.getLogger("mlflow.tracking.request_header.registry").setLevel(logging.ERROR)
        url = server.url
        client = MlflowClient(url)
        _wait_healthy(server, progress)
        run_number = _registered_versions(client) + 1

        progress.step(2, f"train challenger #{run_number} with the training entry point")
        hyperparameters = {"random_state": str(41 + run_number), **_overrides(args.set)}
        _prepare_training(state, hyperparameters, progress)
        env = _entry_env(state, url, TRAINING_CODE)
        env["PIPELINE_EXECUTION_ID"] = f"local-demo-{run_number}"
        _run([sys.executable, "-m", "iris_training", "train"], env, "train |")
        training = json.loads(
            (state.sagemaker / "output" / "data" / "evaluation.json").read_text(encoding="utf-8")
        )

        date = dt.datetime.now(dt.UTC).date().isoformat()
        output_dir = state.sagemaker / "processing" / "output"
        replaced = (output_dir / f"date={date}").exists()
        if args.shards == 1:
            progress.step(3, f"score {args.rows} generated rows with the inference entry point")
            (state.sagemaker / "processing" / "input").mkdir(parents=True, exist_ok=True)
            _run(
                [
                    sys.executable,
                    "-m",
                    "iris_inference",
                    "--date",
                    date,
                    "--generate-rows",
                    str(args.rows),
                ],
                _entry_env(state, url, INFERENCE_CODE),
                "infer |",
            )
        else:
            progress.step(3, f"score {args.rows} rows in {args.shards} shards, then commit")
            _sharded(
                state, url, date=date, rows=args.rows, shards=args.shards, output_dir=output_dir
            )
        summary = json.loads((output_dir / f"date={date}" / "summary.json").read_text())
        manifest = json.loads((output_dir / f"date={date}" / "_manifest.json").read_text())
        production = client.get_model_version_by_alias(MODEL_NAME, "production").version

        progress.step(4, "summary")
        _print_summary(
            state,
            training=training,
            summary=summary,
            production=str(production),
            output_dir=output_dir,
            replaced=replaced,
        )
        if args.shards > 1:
            print(
                f"\n    committed manifest ({state.display(output_dir)}/date={date}/_manifest.json):"
            )
            for line in json.dumps(_brief(manifest), indent=2).splitlines():
                print(f"    {line}")
    print(f"\n    done in {progress.elapsed().strip()}")
    return 0


def _sharded(
    state: State, url: str, *, date: str, rows: int, shards: int, output_dir: Path
) -> None:
    """What the sharded pipeline runs: N score processes (hosts algo-1..N, one input file each,
    as ShardedByS3Key hands them out), their shards gathered in one staging directory, then the
    commit step publishing the partition manifest-last."""
    import numpy as np  # noqa: PLC0415 -- only needed here
    from sklearn.datasets import load_iris  # noqa: PLC0415

    root = state.sagemaker / "sharded"
    shutil.rmtree(root, ignore_errors=True)
    staging = root / "staging"  # the commit step's input: every host's upload
    staging.mkdir(parents=True)
    hosts = [f"algo-{i + 1}" for i in range(shards)]
    iris = load_iris()
    rng = np.random.default_rng(len(date) + rows)
    sample = iris.data[rng.integers(0, len(iris.data), rows)] + rng.normal(0, 0.1, (rows, 4))
    children = []
    for index, host in enumerate(hosts):
        base = root / host
        (base / "config").mkdir(parents=True)
        (base / "config" / "resourceconfig.json").write_text(
            json.dumps({"current_host": host, "hosts": hosts})
        )
        inputs = base / "processing" / "input"
        inputs.mkdir(parents=True)
        part = np.round(np.clip(sample[index::shards], 0.1, None), 1)
        header = ",".join(_FEATURES)
        np.savetxt(inputs / f"day-{index}.csv", part, fmt="%.1f", delimiter=",", header=header,
                   comments="")  # fmt: skip
        (base / "processing" / "staging").symlink_to(staging)
        env = _entry_env(state, url, INFERENCE_CODE)
        env.update({"SAGEMAKER_BASE_DIR": str(base), "INFERENCE_SHARDED": "1"})
        command = [sys.executable, "-m", "iris_inference", "--date", date, "--workers", "1"]
        children.append((host, command, env))
    with contextlib.ExitStack() as stack:
        running = [
            (host, stack.enter_context(_started(command, env, f"{host} |")))
            for host, command, env in children
        ]
        for host, child in running:
            if child.wait() != 0:
                raise DemoError(f"shard {host} exited with status {child.returncode}")
    commit_env = _entry_env(state, url, INFERENCE_CODE)
    _run(
        [
            sys.executable,
            "-m",
            "iris_inference.commit",
            "--expected-shards",
            str(shards),
            "--output-uri",
            str(output_dir),
            "--staging-dir",
            str(staging),
        ],
        commit_env,
        "commit |",
    )


@contextlib.contextmanager
def _started(
    command: list[str], env: dict[str, str], prefix: str
) -> Iterator[subprocess.Popen[str]]:
    """A background entry point whose output is streamed, prefixed, by a thread."""
    import threading  # noqa: PLC0415

    child = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )

    def stream() -> None:
        assert child.stdout is not None
        for line in child.stdout:
            if not line.startswith("{"):
                print(f"    {prefix} {line.rstrip()[:220]}", flush=True)

    reader = threading.Thread(target=stream, daemon=True)
    reader.start()
    try:
        yield child
    finally:
        if child.poll() is None:
            child.terminate()
        child.wait()
        reader.join()


def _brief(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest as printed: what a reader uses, without the per-file drift detail."""
    keep = ("format", "commit_id", "date", "rows", "class_counts", "per_source", "model", "parts")
    return {key: manifest[key] for key in keep if key in manifest}


@dataclass(frozen=True)
class Server:
    url: str
    process: subprocess.Popen[bytes]


@contextlib.contextmanager
def mlflow_server(state: State, port: int, progress: Progress) -> Iterator[Server]:
    """A real `mlflow server` on loopback; stopped on exit, whatever happened."""
    url = f"http://127.0.0.1:{port}"
    command = [
        str(Path(sys.executable).with_name("mlflow")),
        "server",
        "--backend-store-uri",
        f"sqlite:///{state.database}",
        "--artifacts-destination",
        str(state.artifacts),
        "--serve-artifacts",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    progress.note(f"{url}  (log: {state.display(state.server_log)})")
    with state.server_log.open("w", encoding="utf-8") as log:
        # Its own session: on exit the whole server (its workers too) is stopped as a group.
        server = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=_base_env()
        )
    try:
        yield Server(url, server)
    finally:
        _stop(server)
        progress.note(f"MLflow server stopped ({progress.elapsed()})")


def _wait_healthy(server: Server, progress: Progress) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_SECONDS
    next_note = time.monotonic() + 5
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            status = server.process.returncode
            raise DemoError(f"MLflow server exited with status {status}; see its log")
        with (
            contextlib.suppress(urllib.error.URLError, ConnectionError, TimeoutError),
            urllib.request.urlopen(f"{server.url}/health", timeout=2) as response,  # noqa: S310 -- fixed loopback URL
        ):
            if response.status == 200:
                progress.note(f"healthy ({progress.elapsed()})")
                return
        if time.monotonic() >= next_note:
            progress.note(f"waiting for the server ... ({progress.elapsed()})")
            next_note += 5
        time.sleep(0.5)
    raise DemoError(f"MLflow server not healthy after {SERVER_START_TIMEOUT_SECONDS}s")


def _stop(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)
        server.wait()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _registered_versions(client: Any) -> int:
    return len(client.search_model_versions(f"name='{MODEL_NAME}'"))


def _overrides(pairs: list[str]) -> dict[str, str]:
    overrides = {}
    for pair in pairs:
        name, separator, value = pair.partition("=")
        if not separator or not name:
            raise DemoError(f"--set {pair!r} is not NAME=VALUE")
        overrides[name.strip()] = value.strip()
    return overrides


def _prepare_training(state: State, hyperparameters: dict[str, str], progress: Progress) -> None:
    """What SageMaker does before starting a training container."""
    from sklearn.datasets import load_iris  # noqa: PLC0415 -- only needed here

    base = state.sagemaker
    for fresh in (base / "model", base / "output"):  # SageMaker starts each job with empty ones
        shutil.rmtree(fresh, ignore_errors=True)
        fresh.mkdir(parents=True)
    config = base / "input" / "config" / "hyperparameters.json"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(json.dumps(hyperparameters, indent=2) + "\n", encoding="utf-8")
    channel = base / "input" / "data" / "train" / "iris.csv"
    if not channel.exists():
        channel.parent.mkdir(parents=True, exist_ok=True)
        iris = load_iris(as_frame=True)
        frame = iris.frame.rename(columns=dict(zip(iris.feature_names, _FEATURES, strict=True)))
        frame["species"] = [iris.target_names[t] for t in iris.target]
        frame.drop(columns="target").to_csv(channel, index=False)
    progress.note(f"hyperparameters {json.dumps(hyperparameters)} -> {state.display(config)}")
    progress.note(f"train channel {state.display(channel)}")


_FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")


def _base_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update({"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1", "PYTHONUNBUFFERED": "1"})
    # The server's background job runner (GenAI jobs) starts 8 more processes the demo never uses.
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    return env


def _entry_env(state: State, url: str, code: Path) -> dict[str, str]:
    env = _base_env()
    env.update(
        {
            "PYTHONPATH": os.pathsep.join([str(code), str(SHARED_CODE)]),
            "SAGEMAKER_BASE_DIR": str(state.sagemaker),
            "MLFLOW_TRACKING_URI": url,
            "MLFLOW_EXPERIMENT_NAME": EXPERIMENT,
            "MODEL_NAME": MODEL_NAME,
        }
    )
    return env


def _run(command: list[str], env: dict[str, str], prefix: str) -> None:
    """Run an entry point, streaming its output as it comes."""
    with subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as child:
        assert child.stdout is not None
        for line in child.stdout:
            if line.startswith("{"):
                continue  # the entry point's JSON result: the summary below shows it
            print(f"    {prefix} {line.rstrip()[:220]}", flush=True)
    if child.returncode != 0:
        raise DemoError(f"{' '.join(command[1:3])} exited with status {child.returncode}")


def _print_summary(
    state: State,
    *,
    training: dict[str, Any],
    summary: dict[str, Any],
    production: str,
    output_dir: Path,
    replaced: bool,
) -> None:
    gate = training["gate"]
    champion = (
        f"production v{gate['champion_version']} scored {gate['champion_accuracy']:.4f}"
        if gate["champion_accuracy"] is not None
        else "no production version before this run"
    )
    counts = ", ".join(f"{k} {v}" for k, v in summary["class_counts"].items())
    partition = output_dir / f"date={summary['date']}"
    db = state.display(state.database)
    rows = [
        (
            "challenger",
            f"{MODEL_NAME} v{training['version']}: accuracy "
            f"{training['accuracy']:.4f}, macro F1 {training['macro_f1']:.4f} (held-out set)",
        ),
        ("champion", champion),
        ("gate", f"{gate['decision'].upper()}: {gate['reason']}"),
        ("alias", f"production -> v{production}"),
        (
            "predictions",
            f"{summary['rows']} rows by v{summary['model']['version']} -> "
            f"{state.display(partition)}/ ({len(summary['parts'])} part(s), "
            f"{summary['commit_id']})" + ("  (partition replaced)" if replaced else ""),
        ),
        ("classes", counts),
        ("data", f"{training['data']['source']}, sha256 {training['data']['sha256'][:12]}"),
        (
            "MLflow UI",
            f"{state.display(Path(sys.executable))} local/demo.py --ui, then open "
            f"http://127.0.0.1:5000 (store {db})",
        ),
        (
            "next",
            "run `make demo` again to train and gate a challenger; "
            "`--set max_depth=1` shows a rejection",
        ),
    ]
    width = max(len(label) for label, _ in rows)
    for label, text in rows:
        print(f"    {label:<{width}}  {text}")


def _serve_ui(state: State, port: int, progress: Progress) -> int:
    if not state.database.exists():
        raise DemoError(
            f"no MLflow store at {state.display(state.database)}: run `make demo` first"
        )
    with contextlib.closing(socket.socket()) as probe:
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            port = _free_port()
    with mlflow_server(state, port, progress) as server:
        _wait_healthy(server, progress)
        print(f"\n    MLflow UI: {server.url}   (Ctrl-C to stop)", flush=True)
        while True:
            time.sleep(3600)


if __name__ == "__main__":
    sys.exit(main())
