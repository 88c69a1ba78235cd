"""Every core, sharded scoring and the commit: settings, shards, the reader's contract (local
and S3 via moto), failures injected during a commit, and 1 vs 2 shards end to end."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pandas as pd
import pytest
from iris_inference.cli import main as infer
from iris_inference.commit import main as commit_main
from iris_inference.commit import prepare, publish
from iris_inference.errors import UserError
from iris_inference.partition import (
    Destination,
    LocalDestination,
    S3Destination,
    destination,
    read_partition,
)
from iris_inference.settings import available_cores, load_settings
from iris_inference.shard import COMPLETE_FILE, LOCAL_HOST, current_host, find_shards
from iris_inference.shard_contract import MANIFEST_FILE, SHARDED_ENV, SUCCESS_FILE
from moto import mock_aws

from tests.containers.conftest import Store, TrainingRun

DATE = "2026-03-01"
HEADER = "sepal_length,sepal_width,petal_length,petal_width\n"
BUCKET = "data-bucket"
OUTPUT_PREFIX = "iris/inference-output/"


# --- settings: workers and sharded mode --------------------------------------------------------


def test_workers_default_to_every_core_and_are_validated() -> None:
    env = {"MLFLOW_TRACKING_URI": "sqlite://"}
    assert load_settings([], env).workers == available_cores()
    assert load_settings(["--workers", "3"], env).workers == 3
    assert load_settings([], {**env, "INFERENCE_WORKERS": "2"}).workers == 2
    with pytest.raises(UserError) as caught:
        load_settings(["--workers", "0"], env)
    assert str(caught.value) == (
        "setting --workers/INFERENCE_WORKERS='0' is not an integer between 1 and 256 "
        "(default: every core)"
    )


@pytest.mark.parametrize("value", ["yes", "true", "2"])
def test_sharded_mode_takes_only_0_or_1(value: str) -> None:
    env = {"MLFLOW_TRACKING_URI": "sqlite://", SHARDED_ENV: value}
    with pytest.raises(UserError) as caught:
        load_settings([], env)
    assert str(caught.value) == (
        f"setting --sharded/{SHARDED_ENV}={value!r} is not 1 (sharded) or 0 (publish the partition)"
    )
    assert load_settings([], {**env, SHARDED_ENV: "1"}).sharded is True


def test_the_host_comes_from_the_jobs_resource_config(tmp_path: Path) -> None:
    config = tmp_path / "resourceconfig.json"
    assert current_host(config) == LOCAL_HOST  # not in a job
    config.write_text(json.dumps({"current_host": "algo-2", "hosts": ["algo-1", "algo-2"]}))
    assert current_host(config) == "algo-2"
    config.write_text(json.dumps({"hosts": ["algo-1"]}))
    with pytest.raises(UserError, match='has no "current_host" string'):
        current_host(config)
    config.write_text(json.dumps({"current_host": "../up"}))
    with pytest.raises(UserError, match="is not a host name"):
        current_host(config)


# --- scoring on every core and in shards (real MLflow store, the production model) -------------


def _input(root: Path, files: dict[str, int]) -> Path:
    """CSV files of Iris-like rows, `rows` each (the same content for the same name)."""
    root.mkdir(parents=True, exist_ok=True)
    for name, rows in files.items():
        seed = sum(map(ord, name))
        lines = [
            f"{4.3 + (seed + i) % 36 / 10:.1f},{2.0 + (seed * 3 + i) % 24 / 10:.1f},"
            f"{1.0 + (seed * 7 + i) % 59 / 10:.1f},{0.1 + (seed * 5 + i) % 25 / 10:.1f}"
            for i in range(rows)
        ]
        (root / name).write_text(HEADER + "\n".join(lines) + "\n")
    return root


FILES = {"a.csv": 700, "b.csv": 450, "c.csv": 900}
SHARDS = ({"a.csv", "b.csv"}, {"c.csv"})  # what ShardedByS3Key might hand two instances


def _shard(store: Store, root: Path, host: str, files: set[str], *args: str) -> Path:
    """One instance of the sharded score step; returns its staged shard directory."""
    base = root / host
    (base / "config").mkdir(parents=True)
    (base / "config" / "resourceconfig.json").write_text(
        json.dumps({"current_host": host, "hosts": ["algo-1", "algo-2"]})
    )
    inputs = _input(base / "processing" / "input", {n: FILES[n] for n in files})
    env = store.env(SAGEMAKER_BASE_DIR=str(base), **{SHARDED_ENV: "1"})
    argv = ["--input-dir", str(inputs), "--date", DATE, "--chunk-rows", "128", *args]
    assert infer(argv, env) == 0
    shard = base / "processing" / "staging" / host
    assert (shard / COMPLETE_FILE).is_file()
    return shard


def _staging(root: Path, shards: list[Path]) -> Path:
    """What the commit step's input holds: every shard the score step uploaded."""
    staging = root / "commit-input"
    for shard in shards:
        shutil.copytree(shard, staging / shard.name)
    return staging


def _commit(staging: Path, output: str, expected: int) -> int:
    return commit_main(
        ["--expected-shards", str(expected), "--output-uri", output, "--staging-dir", str(staging)],
        {},
    )


def _published(output: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    published = read_partition(LocalDestination(output / f"date={DATE}"))
    assert published is not None
    return published.table.to_pandas(), published.manifest


ROW_KEY = ["source_file", "source_row", "predicted_class"]


@pytest.mark.slow
def test_every_worker_count_writes_the_same_rows_in_input_order(
    champion: tuple[Store, TrainingRun], tmp_path: Path
) -> None:
    store, _ = champion
    inputs = _input(tmp_path / "input", FILES)
    outputs = {}
    for workers in ("1", "3"):
        output = tmp_path / f"out-{workers}"
        argv = ["--input-dir", str(inputs), "--output-dir", str(output), "--date", DATE]
        assert infer([*argv, "--chunk-rows", "64", "--workers", workers], store.env()) == 0
        outputs[workers] = _published(output)[0]
    one, three = outputs["1"], outputs["3"]
    assert one.drop(columns="scored_at").equals(three.drop(columns="scored_at"))
    assert list(zip(one["source_file"].astype(str), one["source_row"], strict=True)) == [
        (name, row) for name in sorted(FILES) for row in range(1, FILES[name] + 1)
    ]


@pytest.mark.slow
def test_one_shard_and_two_shards_commit_the_same_partition(
    champion: tuple[Store, TrainingRun], tmp_path: Path
) -> None:
    store, _ = champion
    single = _shard(store, tmp_path / "one", "algo-1", set(FILES), "--workers", "1")
    first = _shard(store, tmp_path / "two", "algo-1", SHARDS[0], "--workers", "1")
    second = _shard(store, tmp_path / "two", "algo-2", SHARDS[1], "--workers", "1")
    assert _commit(_staging(tmp_path / "one", [single]), str(tmp_path / "out-1"), 1) == 0
    assert _commit(_staging(tmp_path / "two", [first, second]), str(tmp_path / "out-2"), 2) == 0

    one, one_manifest = _published(tmp_path / "out-1")
    two, two_manifest = _published(tmp_path / "out-2")
    assert one_manifest["rows"] == two_manifest["rows"] == len(one) == len(two) == 2050
    assert one_manifest["class_counts"] == two_manifest["class_counts"]
    assert one_manifest["per_source"] == two_manifest["per_source"] == FILES
    # Parts are listed in host order and each keeps its input order: the same rows, same order.
    assert [p["host"] for p in two_manifest["parts"]] == ["algo-1", "algo-2"]
    assert one[ROW_KEY].astype(str).equals(two[ROW_KEY].astype(str))
    # The drift report is the one of all rows: counts summed over shards.
    drift = [json.loads((tmp_path / o / f"date={DATE}" / "drift.json").read_text())
             for o in ("out-1", "out-2")]  # fmt: skip
    assert {n: f["psi"] for n, f in drift[0]["features"].items()} == {
        n: f["psi"] for n, f in drift[1]["features"].items()
    }
    assert drift[1]["rows"] == 2050

    # One instance without sharding publishes the same partition, through the same commit.
    output = tmp_path / "out-direct"
    argv = ["--input-dir", str(_input(tmp_path / "in", FILES)), "--output-dir", str(output)]
    assert infer([*argv, "--date", DATE, "--chunk-rows", "500"], store.env()) == 0
    direct, direct_manifest = _published(output)
    assert direct_manifest["class_counts"] == one_manifest["class_counts"]
    assert direct[ROW_KEY].astype(str).equals(one[ROW_KEY].astype(str))


@pytest.mark.slow
def test_a_failed_missing_or_disagreeing_shard_commits_nothing(
    champion: tuple[Store, TrainingRun], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store, _ = champion
    first = _shard(store, tmp_path / "run", "algo-1", SHARDS[0])
    second = _shard(store, tmp_path / "run", "algo-2", SHARDS[1])
    output = tmp_path / "out"

    def refused(staging: Path, expected: int) -> str:
        capsys.readouterr()
        assert _commit(staging, str(output), expected) == 1
        err = capsys.readouterr().err
        assert len(err.splitlines()) == 1, err
        assert not output.exists()  # nothing published, not even a directory
        return err.strip()

    missing = _staging(tmp_path / "missing", [first])
    assert refused(missing, 2) == "error: expected 2 complete shard(s), found 1 (algo-1)"

    failed = _staging(tmp_path / "failed", [first, second])
    (failed / "algo-2" / COMPLETE_FILE).unlink()  # what a shard that failed leaves
    assert refused(failed, 2) == (
        f"error: shard algo-2 is incomplete (no {COMPLETE_FILE}: it failed)"
    )

    moved = _staging(tmp_path / "moved", [first, second])
    manifest = json.loads((moved / "algo-2" / "shard.json").read_text())
    manifest["model"]["version"] = "99"  # the alias moved between the two instances' starts
    (moved / "algo-2" / "shard.json").write_text(json.dumps(manifest))
    assert refused(moved, 2).startswith("error: shards disagree on the model version: algo-1 ")

    assert refused(_staging(tmp_path / "extra", [first, second]), 1) == (
        "error: expected 1 complete shard(s), found 2 (algo-1, algo-2)"
    )
    capsys.readouterr()
    assert commit_main(["--expected-shards", "0", "--output-uri", str(output)], {}) == 1
    assert capsys.readouterr().err == (
        "error: --expected-shards='0' is not an integer between 1 and 100\n"
    )


@pytest.mark.slow
def test_a_shard_with_no_file_is_complete_and_empty(
    champion: tuple[Store, TrainingRun], tmp_path: Path
) -> None:
    store, _ = champion
    empty = _shard(store, tmp_path, "algo-3", set())
    manifest = json.loads((empty / "shard.json").read_text())
    assert manifest["rows"] == 0
    assert manifest["host"] == "algo-3"


# --- the reader's contract under failures injected during a commit -----------------------------


class InterruptedCommitError(Exception):
    pass


class FailingAfter:
    """A destination whose `writes`-th write (or delete) raises: a commit dying part way."""

    def __init__(self, inner: Destination, writes: int) -> None:
        self.inner, self.left, self.uri = inner, writes, inner.uri

    def _step(self) -> None:
        if self.left == 0:
            raise InterruptedCommitError
        self.left -= 1

    def names(self) -> set[str]:
        return self.inner.names()

    def put_bytes(self, name: str, data: bytes) -> None:
        self._step()
        self.inner.put_bytes(name, data)

    def put_file(self, name: str, source: Path, *, move: bool) -> None:
        self._step()
        self.inner.put_file(name, source, move=move)

    def get_bytes(self, name: str) -> bytes | None:
        return self.inner.get_bytes(name)

    def delete(self, name: str) -> None:
        self._step()
        self.inner.delete(name)


@pytest.fixture(scope="module")
def two_runs(
    champion: tuple[Store, TrainingRun], tmp_path_factory: pytest.TempPathFactory
) -> tuple[list[Path], list[Path]]:
    """Two days' worth of shards: an earlier run (2 shards) and a rerun (2 shards, other rows)."""
    store, _ = champion
    root = tmp_path_factory.mktemp("runs")
    earlier = [_shard(store, root / "earlier", "algo-1", {"a.csv"}),
               _shard(store, root / "earlier", "algo-2", {"b.csv"})]  # fmt: skip
    rerun = [_shard(store, root / "rerun", "algo-1", {"a.csv", "b.csv"}),
             _shard(store, root / "rerun", "algo-2", {"c.csv"})]  # fmt: skip
    return earlier, rerun


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    with mock_aws():
        client = boto3.client("s3", region_name="eu-west-1")
        client.create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
        )
        yield client


def _target(kind: str, tmp_path: Path, s3: Any) -> Destination:
    if kind == "s3":
        return destination(f"s3://{BUCKET}/{OUTPUT_PREFIX}", DATE, s3_client=s3)
    return destination(str(tmp_path / "output"), DATE)


def _copy(shards: list[Path], root: Path) -> list[Path]:
    return [Path(shutil.copytree(s, root / s.name)) for s in shards]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["local", "s3"])
def test_a_commit_interrupted_at_any_step_leaves_the_previous_partition_whole(
    two_runs: tuple[list[Path], list[Path]], tmp_path: Path, kind: str, request: Any
) -> None:
    s3 = request.getfixturevalue("s3") if kind == "s3" else None
    earlier, rerun = two_runs
    target = _target(kind, tmp_path, s3)
    publish(prepare(earlier, 2), target, move_parts=False)
    before = read_partition(target)
    assert before is not None and before.table.num_rows == FILES["a.csv"] + FILES["b.csv"]

    # parts (2), drift.json, summary.json, manifest, _SUCCESS, then 2 deletions: 8 steps.
    for step in range(8):
        with pytest.raises(InterruptedCommitError):
            publish(prepare(rerun, 2), FailingAfter(target, step), move_parts=False)
        seen = read_partition(target)
        assert seen is not None
        # Before the manifest is replaced (steps 0-4) readers see the earlier partition, whole;
        # from then on, the new one, whole. Never a mix, never a missing part.
        expected = before if step < 5 else None
        if expected is not None:
            assert seen.manifest == expected.manifest
            assert seen.table.equals(expected.table)
        else:
            assert seen.manifest["rows"] == sum(FILES.values())
            assert seen.table.num_rows == sum(FILES.values())
        # Put the earlier partition back for the next step.
        publish(prepare(earlier, 2), target, move_parts=False)
        before = read_partition(target)

    summary = publish(prepare(rerun, 2), target, move_parts=False)
    after = read_partition(target)
    assert after is not None and after.manifest["commit_id"] == summary["commit_id"]
    # Only the last commit's parts remain: earlier parts and leftovers of interrupted commits
    # are deleted after its _SUCCESS.
    assert sorted(target.names()) == sorted(
        ["_SUCCESS", MANIFEST_FILE, "drift.json", "summary.json", *summary["parts"]]
    )


def test_nothing_committed_reads_as_no_partition(tmp_path: Path) -> None:
    folder = tmp_path / f"date={DATE}"
    folder.mkdir()
    (folder / "predictions.parquet").write_text("a layout from before the manifest")
    (folder / MANIFEST_FILE).write_text("{}")  # a first commit that died before _SUCCESS
    assert read_partition(LocalDestination(folder)) is None
    assert not (folder / SUCCESS_FILE).exists()


@pytest.mark.slow
def test_the_commit_entry_point_publishes_to_s3(
    two_runs: tuple[list[Path], list[Path]], tmp_path: Path, s3: Any
) -> None:
    _, rerun = two_runs
    staging = tmp_path / "staging"
    _copy(rerun, staging)
    # A previous run's layout (before manifests): replaced by the commit.
    s3.put_object(Bucket=BUCKET, Key=f"{OUTPUT_PREFIX}date={DATE}/predictions.parquet", Body=b"x")
    s3.put_object(Bucket=BUCKET, Key=f"{OUTPUT_PREFIX}date=2026-02-28/_SUCCESS", Body=b"{}")

    assert _commit(staging, f"s3://{BUCKET}/{OUTPUT_PREFIX}", 2) == 0

    target = S3Destination(BUCKET, f"{OUTPUT_PREFIX}date={DATE}/", client=s3)
    published = read_partition(target)
    assert published is not None
    assert published.manifest["rows"] == published.table.num_rows == sum(FILES.values())
    assert published.manifest["per_source"] == FILES
    assert [s.name for s in find_shards(staging)] == ["algo-1", "algo-2"]  # inputs kept
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert f"{OUTPUT_PREFIX}date={DATE}/predictions.parquet" not in keys
    assert f"{OUTPUT_PREFIX}date=2026-02-28/_SUCCESS" in keys  # other dates untouched


@pytest.mark.slow
def test_one_instance_publishes_straight_to_s3_in_the_contracts_order(
    champion: tuple[Store, TrainingRun], tmp_path: Path, s3: Any
) -> None:
    store, _ = champion
    inputs = _input(tmp_path / "input", {"a.csv": 300})
    argv = ["--input-dir", str(inputs), "--output-dir", str(tmp_path / "unused"), "--date", DATE,
            "--output-uri", f"s3://{BUCKET}/{OUTPUT_PREFIX}"]  # fmt: skip
    assert infer(argv, store.env()) == 0
    assert infer(argv, store.env()) == 0  # a rerun replaces the first run's part

    target = S3Destination(BUCKET, f"{OUTPUT_PREFIX}date={DATE}/", client=s3)
    published = read_partition(target)
    assert published is not None and published.table.num_rows == 300
    names = target.names()
    assert len([n for n in names if n.startswith("part-")]) == 1
    assert {SUCCESS_FILE, MANIFEST_FILE, "drift.json", "summary.json"} <= names
    assert not (tmp_path / "unused" / f"date={DATE}").exists()


def test_a_bad_output_uri_is_one_line() -> None:
    with pytest.raises(UserError) as caught:
        load_settings(["--output-uri", "http://example.com/x"], {"MLFLOW_TRACKING_URI": "x"})
    assert str(caught.value) == (
        "setting --output-uri/OUTPUT_URI='http://example.com/x' is not an s3://bucket/prefix/ "
        "URI or a directory path"
    )
