"""The inference container: inputs, validation, the output partition, and every error case."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import mlflow.sklearn
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from iris_inference.cli import main
from iris_inference.errors import UserError
from iris_inference.partition import LocalDestination, read_partition
from iris_inference.pipeline import read_ahead
from iris_inference.settings import load_settings
from iris_inference.shard import COMPLETE_FILE, ShardWriter
from iris_inference.sources import CANONICAL_FEATURES, discover, file_batches, generated_batches

from tests.containers.conftest import (
    INFERENCE_CODE,
    MODEL_NAME,
    Store,
    TrainingRun,
    run_module,
)

DATE = "2026-03-01"
HEADER = "sepal_length,sepal_width,petal_length,petal_width\n"
GENERATE = ("--generate-rows", "5")


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "input").mkdir()
    return tmp_path / "input", tmp_path / "output"


def score(store: Store, input_dir: Path, output_dir: Path, *args: str, **env: str) -> int:
    argv = ["--input-dir", str(input_dir), "--output-dir", str(output_dir), "--date", DATE]
    return main([*argv, *args], store.env(**env))


def partition(output_dir: Path, date: str = DATE) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The partition as a reader following the contract sees it (manifest, then its parts)."""
    folder = output_dir / f"date={date}"
    published = read_partition(LocalDestination(folder))
    assert published is not None, f"nothing committed in {folder}"
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["commit_id"] == published.manifest["commit_id"]
    return published.table.to_pandas(), summary


def leftovers(output_dir: Path) -> list[str]:
    return sorted(p.name for p in output_dir.iterdir()) if output_dir.exists() else []


# --- settings -------------------------------------------------------------------------------


def test_command_line_beats_environment_beats_defaults(tmp_path: Path) -> None:
    env = {
        "MLFLOW_TRACKING_URI": "sqlite://",
        "SAGEMAKER_BASE_DIR": str(tmp_path),
        "CHUNK_ROWS": "500",
        "INFERENCE_DATE": "2026-01-31",
    }
    settings = load_settings(["--chunk-rows", "9"], env)
    assert settings.chunk_rows == 9
    assert settings.date.isoformat() == "2026-01-31"
    assert settings.generation_seed == 20260131  # a seed per day unless one is given
    assert settings.input_dir == tmp_path / "processing" / "input"
    assert settings.output_dir == tmp_path / "processing" / "output"
    assert settings.model_name == "iris-model"
    assert settings.model_alias == "production"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--chunk-rows", "abc"], "setting --chunk-rows/CHUNK_ROWS='abc' is not an integer"),
        (["--date", "2026-3-1"], "setting --date/INFERENCE_DATE='2026-3-1' is not a date"),
        (["--generate-rows", "-1"], "setting --generate-rows='-1' is not an"),
        (["--model-alias", "pro duction"], "setting --model-alias/MODEL_ALIAS='pro duction'"),
    ],
)
def test_a_bad_setting_is_one_line_naming_it(argv: list[str], message: str) -> None:
    with pytest.raises(UserError) as caught:
        load_settings(argv, {"MLFLOW_TRACKING_URI": "sqlite://"})
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_missing_tracking_uri_is_named() -> None:
    with pytest.raises(UserError, match="setting MLFLOW_TRACKING_URI is not set"):
        load_settings([], {})


# --- reading and validating inputs ----------------------------------------------------------


def test_csv_is_read_in_bounded_chunks_with_row_numbers(tmp_path: Path) -> None:
    rows = [f"{i}.1,{i}.2,{i}.3,{i}.4" for i in range(10)]
    path = tmp_path / "day.csv"
    # Extra columns are ignored; columns are matched by name, in any order or spelling.
    path.write_text(
        "id,Petal Width (cm),sepal_length,sepal_width,petal_length\n"
        + "".join(
            f"{i},{r.split(',')[3]},{','.join(r.split(',')[:3])}\n" for i, r in enumerate(rows)
        )
    )
    batches = list(
        file_batches(path, input_dir=tmp_path, features=CANONICAL_FEATURES, chunk_rows=4)
    )
    assert [b.rows for b in batches] == [4, 4, 2]
    assert [b.first_row for b in batches] == [1, 5, 9]
    assert np.vstack([b.features for b in batches]).tolist() == [
        [float(v) for v in r.split(",")] for r in rows
    ]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (
            HEADER + "5.1,3.5,1.4,0.2\n4.9,3.0,abc,0.2\n",
            "row 2 (line 3): column petal_length value 'abc' is not a finite number",
        ),
        (HEADER + "5.1,3.5,1.4,0.2\n4.9,3.0,1.4,\n", "row 2 (line 3): column petal_width is empty"),
        (
            "sepal_length,sepal_width\n5.1,3.5\n",
            "lacks column(s) petal_length, petal_width (has sepal_length, sepal_width)",
        ),
        (HEADER + "5.1,3.5,1.4,0.2,9,9\n", "row 1 (line 2): 6 fields, the header has 4"),
        ("", "is empty (no header row)"),
    ],
)
def test_bad_csv_is_named_with_the_row(tmp_path: Path, content: str, problem: str) -> None:
    (tmp_path / "day.csv").write_text(content)
    with pytest.raises(UserError) as caught:
        for _ in file_batches(
            tmp_path / "day.csv", input_dir=tmp_path, features=CANONICAL_FEATURES, chunk_rows=1
        ):
            pass
    assert str(caught.value) == f"input file day.csv {problem}"


def test_parquet_text_column_with_a_bad_value_is_named_with_the_row(tmp_path: Path) -> None:
    table = pa.table(
        {
            "sepal_length": [5.1, 4.9, 4.7],
            "sepal_width": ["3.5", "3.0", "three"],
            "petal_length": [1.4, 1.4, 1.3],
            "petal_width": [0.2, 0.2, 0.2],
        }
    )
    pq.write_table(table, tmp_path / "day.parquet")
    with pytest.raises(UserError) as caught:
        list(
            file_batches(
                tmp_path / "day.parquet",
                input_dir=tmp_path,
                features=CANONICAL_FEATURES,
                chunk_rows=2,
            )
        )
    assert str(caught.value) == (
        "input file day.parquet row 3: column sepal_width value 'three' is not a finite number"
    )


def test_discovery_skips_markers_and_rejects_unknown_files(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    for name in ("b/2.parquet", "a.csv", "_SUCCESS", ".hidden.csv", "c.csv.gz"):
        (tmp_path / name).write_text("")
    assert [p.relative_to(tmp_path).as_posix() for p in discover(tmp_path)] == [
        "a.csv",
        "b/2.parquet",
        "c.csv.gz",
    ]
    (tmp_path / "notes.txt").write_text("")
    with pytest.raises(UserError, match=r"input file notes.txt is neither CSV .* nor Parquet"):
        discover(tmp_path)


def test_generated_rows_are_iris_like_and_reproducible() -> None:
    def generate(seed: int) -> np.ndarray:
        batches = generated_batches(
            rows=2500, seed=seed, chunk_rows=1000, features=CANONICAL_FEATURES
        )
        return np.vstack([b.features for b in batches])

    first, again, other = generate(1), generate(1), generate(2)
    assert first.shape == (2500, 4)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)
    assert (first >= 0.1).all()
    # Petal length separates the species in Iris: roughly a third of the rows are setosa-like.
    assert 0.25 < float(np.mean(first[:, 2] < 2.5)) < 0.42


# --- pipeline pieces ------------------------------------------------------------------------


def test_read_ahead_yields_in_order_and_reraises_producer_errors() -> None:
    def items() -> Iterator[int]:
        yield from range(5)
        raise UserError("input file x.csv row 6: broken")

    seen = []
    with pytest.raises(UserError, match="row 6: broken"):
        for item in read_ahead(items(), depth=2):
            seen.append(item)
    assert seen == [0, 1, 2, 3, 4]


def test_read_ahead_stops_its_producer_when_the_consumer_stops() -> None:
    produced = []

    def endless() -> Iterator[int]:
        n = 0
        while True:
            produced.append(n)
            yield n
            n += 1

    for item in read_ahead(endless(), depth=2):
        if item == 3:
            break
    assert not [t for t in threading.enumerate() if t.name == "read-ahead"]
    assert len(produced) <= 3 + 1 + 2 + 1  # consumed, in flight, queued, blocked


def test_a_failed_shard_leaves_nothing_and_no_complete_marker(tmp_path: Path) -> None:
    schema = pa.schema([pa.field("x", pa.int64())])
    with (
        pytest.raises(RuntimeError),
        ShardWriter(tmp_path / "algo-1", schema) as shard,
    ):
        shard.write(pa.table({"x": [2, 3]}, schema=schema))
        raise RuntimeError("scoring failed half way")
    assert not (tmp_path / "algo-1").exists()
    assert not list(tmp_path.rglob(COMPLETE_FILE))


# --- the entry point against a real MLflow store --------------------------------------------


@pytest.mark.slow
def test_generated_rows_are_scored_by_the_production_version(
    champion: tuple[Store, TrainingRun], dirs: tuple[Path, Path]
) -> None:
    store, run = champion
    input_dir, output_dir = dirs
    assert (
        score(store, input_dir, output_dir, "--generate-rows", "2000", "--chunk-rows", "300") == 0
    )

    predictions, summary = partition(output_dir)
    version = store.production_version()
    probabilities = predictions[["proba_setosa", "proba_versicolor", "proba_virginica"]]
    model = _load(store, version)
    expected = model.predict(predictions[list(CANONICAL_FEATURES)])

    assert len(predictions) == summary["rows"] == 2000
    assert summary["input"] == {"mode": "generated", "rows": 2000, "seed": 20260301}
    assert summary["model"] == {
        "name": MODEL_NAME,
        "alias": "production",
        "version": version,
        "run_id": run.evaluation["run_id"],
    }
    assert (predictions["model_version"].astype(str) == version).all()
    assert (predictions["run_id"].astype(str) == run.evaluation["run_id"]).all()
    assert predictions["scored_at"].nunique() == 1
    assert predictions["source_row"].tolist() == list(range(1, 2001))
    assert np.allclose(probabilities.sum(axis=1), 1.0)
    assert predictions["predicted_class"].astype(str).tolist() == list(expected)
    counts = predictions["predicted_class"].astype(str).value_counts().to_dict()
    assert summary["class_counts"] == {k: counts.get(k, 0) for k in summary["class_counts"]}
    assert leftovers(output_dir) == [f"date={DATE}"]


@pytest.mark.slow
def test_every_file_row_is_scored_whatever_the_chunk_size(
    champion: tuple[Store, TrainingRun], tmp_path: Path
) -> None:
    store, _ = champion
    input_dir = tmp_path / "input"
    (input_dir / "nested").mkdir(parents=True)
    (input_dir / "a.csv").write_text(HEADER + "5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n5.9,3.0,4.2,1.5\n")
    pq.write_table(
        pa.table({n: [6.3, 5.0] for n in CANONICAL_FEATURES}), input_dir / "nested" / "b.parquet"
    )

    assert score(store, input_dir, tmp_path / "one", "--chunk-rows", "1") == 0
    assert score(store, input_dir, tmp_path / "many", "--chunk-rows", "1000") == 0

    one, summary = partition(tmp_path / "one")
    many, _ = partition(tmp_path / "many")
    assert summary["input"] == {"mode": "files", "files": {"a.csv": 3, "nested/b.parquet": 2}}
    assert list(zip(one["source_file"].astype(str), one["source_row"], strict=True)) == [
        ("a.csv", 1),
        ("a.csv", 2),
        ("a.csv", 3),
        ("nested/b.parquet", 1),
        ("nested/b.parquet", 2),
    ]
    assert one.drop(columns="scored_at").equals(many.drop(columns="scored_at"))


@pytest.mark.slow
def test_rerunning_a_date_replaces_that_partition_and_nothing_else(
    champion: tuple[Store, TrainingRun], dirs: tuple[Path, Path]
) -> None:
    store, _ = champion
    input_dir, output_dir = dirs
    other = output_dir / "date=2026-02-28"
    other.mkdir(parents=True)
    (other / "predictions.parquet").write_text("yesterday's")
    assert score(store, input_dir, output_dir, "--generate-rows", "10") == 0
    (output_dir / f"date={DATE}" / "stale.txt").write_text("from the first run")

    assert score(store, input_dir, output_dir, "--generate-rows", "25") == 0

    predictions, summary = partition(output_dir)
    assert len(predictions) == summary["rows"] == 25
    assert sorted(p.name for p in (output_dir / f"date={DATE}").iterdir()) == [
        "_SUCCESS",
        "_manifest.json",
        "drift.json",
        f"part-{summary['commit_id']}-00000.parquet",
        "summary.json",
    ]  # the first run's part and the stray file are gone
    assert (other / "predictions.parquet").read_text() == "yesterday's"
    assert leftovers(output_dir) == ["date=2026-02-28", f"date={DATE}"]


def _failing_run(
    store: Store,
    dirs: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
    *args: str,
) -> str:
    """Run, expect failure; return stderr after checking nothing new was published."""
    input_dir, output_dir = dirs
    previous = output_dir / f"date={DATE}"
    previous.mkdir(parents=True, exist_ok=True)
    (previous / "predictions.parquet").write_text("the previous run's output")
    capsys.readouterr()

    code = score(store, input_dir, output_dir, *args)

    err = capsys.readouterr().err
    assert code == 1
    assert len(err.splitlines()) == 1, err
    assert leftovers(output_dir) == [f"date={DATE}"]  # no staging directory left behind
    assert (previous / "predictions.parquet").read_text() == "the previous run's output"
    return err


@pytest.mark.slow
def test_no_production_alias_is_a_clear_error(
    champion: tuple[Store, TrainingRun],
    dirs: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    store, _ = champion
    # Demo-style generated rows: the model is what is missing here, not the input.
    assert _failing_run(store, dirs, capsys, "--model-name", "never-trained", *GENERATE) == (
        "error: registered model 'never-trained' does not exist: train and promote a version "
        "first\n"
    )
    store.client().create_registered_model("never-promoted")
    assert _failing_run(store, dirs, capsys, "--model-name", "never-promoted", *GENERATE) == (
        "error: registered model 'never-promoted' has no 'production' alias: no version has "
        "passed the quality gate yet\n"
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("files", "message"),
    [
        (
            {"day.csv": "sepal_length,petal_width\n1,2\n"},
            "input file day.csv lacks column(s) sepal_width, petal_length (has sepal_length, petal_width)",
        ),
        (
            {"day.csv": HEADER + "5.1,3.5,1.4,0.2\n5.1,x,1.4,0.2\n"},
            "input file day.csv row 2 (line 3): column sepal_width value 'x' is not a finite number",
        ),
        (
            {"day.parquet": "PAR1 not really parquet"},
            "cannot read input file day.parquet as Parquet: ",
        ),
        ({"day.csv": b"sepal_length\xff,b\n"}, "input file day.csv is not UTF-8 text: "),
        # The first file is fine and already scored when the second fails: nothing is published.
        (
            {"a.csv": HEADER + "5.1,3.5,1.4,0.2\n" * 50, "b.csv": HEADER + "5.1,3.5,1.4,oops\n"},
            "input file b.csv row 1 (line 2): column petal_width value 'oops' is not a finite number",
        ),
        ({}, "input directory "),
    ],
)
def test_input_errors_name_the_file_and_publish_nothing(
    champion: tuple[Store, TrainingRun],
    dirs: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
    files: dict[str, str | bytes],
    message: str,
) -> None:
    store, _ = champion
    for name, content in files.items():
        path = dirs[0] / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    args = ("--generate-rows", "0", "--chunk-rows", "10")
    assert _failing_run(store, dirs, capsys, *args).startswith(f"error: {message}")


def test_command_line_contract_as_sagemaker_processing_starts_it(tmp_path: Path) -> None:
    """ContainerArguments on the command line; a bad one exits 1 with one line, no traceback.

    The successful path of `python -m iris_inference` runs in the `make demo` test.
    """
    env = {"MLFLOW_TRACKING_URI": "sqlite://", "SAGEMAKER_BASE_DIR": str(tmp_path)}

    bad = run_module("iris_inference", ["--generate-rows", "many"], env, INFERENCE_CODE)
    unknown = run_module("iris_inference", ["--rows", "5"], env, INFERENCE_CODE)

    assert bad.returncode == 1
    assert bad.stderr.splitlines() == [
        "error: setting --generate-rows='many' is not an integer between 0 and 1000000000"
    ]
    assert unknown.returncode == 2
    assert "unrecognized arguments: --rows 5" in unknown.stderr
    assert not (tmp_path / "processing").exists()


def _load(store: Store, version: str) -> Any:
    mlflow.set_tracking_uri(store.tracking_uri)
    return mlflow.sklearn.load_model(f"models:/{MODEL_NAME}/{version}")


# --- a job never replaces real results with made-up rows (issue 13) -------------------------


def test_generation_is_off_unless_the_command_line_asks_for_it(tmp_path: Path) -> None:
    env = {"MLFLOW_TRACKING_URI": "sqlite://", "SAGEMAKER_BASE_DIR": str(tmp_path)}
    assert load_settings([], env).generate_rows == 0
    # A job's Environment cannot turn it on: only the demo's and the benchmark's flag does.
    with pytest.raises(UserError, match=r"^GENERATE_ROWS is not read by the inference container"):
        load_settings([], {**env, "GENERATE_ROWS": "1000"})
    assert load_settings(["--generate-rows", "5"], env).generate_rows == 5


@pytest.mark.slow
@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ("empty", "input directory {input} holds no .csv or .parquet file"),
        ("missing", "input directory {input} does not exist"),
        ("markers only", "input directory {input} holds no .csv or .parquet file"),
        ("header only", "input directory {input} holds no data row (1 file(s), headers only)"),
    ],
)
def test_a_job_without_input_fails_in_one_line_and_keeps_the_previous_partition(
    champion: tuple[Store, TrainingRun],
    dirs: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
    layout: str,
    message: str,
) -> None:
    store, _ = champion
    input_dir, output_dir = dirs
    if layout == "missing":
        input_dir = input_dir.parent / "inptu"  # a mistyped directory
    elif layout == "markers only":
        (input_dir / "_SUCCESS").write_text("")
    elif layout == "header only":
        (input_dir / "part-0000.csv").write_text(HEADER)
    err = _failing_run(store, (input_dir, output_dir), capsys)
    assert err == f"error: {message.format(input=input_dir)}\n"


# --- data the reader must refuse or accept (issue 13) ---------------------------------------


def _read_all(path: Path) -> np.ndarray:
    batches = file_batches(path, input_dir=path.parent, features=CANONICAL_FEATURES, chunk_rows=2)
    return np.vstack([b.features for b in batches] or [np.empty((0, 4))])


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (
            HEADER + "True,3.5,1.4,0.2\nFalse,3.0,1.4,0.2\n",
            "column sepal_length holds booleans (expected numbers)",
        ),
        (
            "sepal_length,sepal_width,petal_length,petal_width,Sepal Length (cm)\n1,2,3,4,5\n",
            "column sepal_length appears twice (as sepal_length, Sepal Length (cm))",
        ),
        (
            HEADER + "5.1,3.5,1.4,0.2\n5.1,inf,1.4,0.2\n",
            "row 2 (line 3): column sepal_width value inf is not a finite number",
        ),
        (
            HEADER + "5.1,3.5,1.4,-Infinity\n",
            "row 1 (line 2): column petal_width value -inf is not a finite number",
        ),
        (
            HEADER + "2026-01-01,3.5,1.4,0.2\n",
            "row 1 (line 2): column sepal_length value '2026-01-01' is not a finite number",
        ),
    ],
)
def test_csv_booleans_duplicates_and_infinities_are_refused(
    tmp_path: Path, content: str, problem: str
) -> None:
    (tmp_path / "day.csv").write_text(content)
    with pytest.raises(UserError) as caught:
        _read_all(tmp_path / "day.csv")
    assert str(caught.value) == f"input file day.csv {problem}"


@pytest.mark.parametrize(
    ("column", "problem"),
    [
        (pa.array([True, False]), "column sepal_length holds booleans (expected numbers)"),
        (
            pa.array([dt.datetime(2026, 1, 1), dt.datetime(2026, 1, 2)], pa.timestamp("us")),
            "column sepal_length holds timestamp[us] values (expected numbers)",
        ),
        (
            pa.array([dt.date(2026, 1, 1), dt.date(2026, 1, 2)], pa.date32()),
            "column sepal_length holds date32[day] values (expected numbers)",
        ),
        (
            pa.array([5.1, float("inf")]),
            "row 2: column sepal_length value inf is not a finite number",
        ),
    ],
)
def test_parquet_non_numeric_types_are_refused_not_scored(
    tmp_path: Path, column: pa.Array, problem: str
) -> None:
    table = pa.table(
        {
            "sepal_length": column,
            "sepal_width": [3.5, 3.0],
            "petal_length": [1.4, 1.4],
            "petal_width": [0.2, 0.2],
        }
    )
    pq.write_table(table, tmp_path / "day.parquet")
    with pytest.raises(UserError) as caught:
        _read_all(tmp_path / "day.parquet")
    assert str(caught.value) == f"input file day.parquet {problem}"


def test_parquet_duplicated_feature_column_is_refused(tmp_path: Path) -> None:
    arrays = [pa.array([1.0]), pa.array([2.0]), pa.array([3.0]), pa.array([4.0]), pa.array([9.0])]
    names = ["sepal_length", "sepal_width", "petal_length", "petal_width", "sepal_length"]
    pq.write_table(pa.Table.from_arrays(arrays, names=names), tmp_path / "day.parquet")
    with pytest.raises(UserError) as caught:
        _read_all(tmp_path / "day.parquet")
    assert str(caught.value) == (
        "input file day.parquet column sepal_length appears twice (as sepal_length, sepal_length)"
    )


@pytest.mark.parametrize("name", ["day.csv", "day.csv.gz"])
def test_utf8_csv_with_a_byte_order_mark_is_read(tmp_path: Path, name: str) -> None:
    content = ("\ufeff" + HEADER + "5.1,3.5,1.4,0.2\n").encode("utf-8")
    (tmp_path / name).write_bytes(gzip.compress(content) if name.endswith(".gz") else content)
    assert _read_all(tmp_path / name).tolist() == [[5.1, 3.5, 1.4, 0.2]]


def test_header_only_files_yield_no_rows(tmp_path: Path) -> None:
    (tmp_path / "part-0.csv").write_text(HEADER)
    assert _read_all(tmp_path / "part-0.csv").shape == (0, 4)


def test_an_unwritable_output_directory_is_one_line_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "input").mkdir()
    (tmp_path / "input" / "day.csv").write_text(HEADER + "5.1,3.5,1.4,0.2\n")
    (tmp_path / "output").write_text("a file where the output directory should be")
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'never.db'}"}
    argv = ["--input-dir", str(tmp_path / "input"), "--output-dir", str(tmp_path / "output")]

    code = main(argv, env)

    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith(f"error: output directory {tmp_path / 'output'} is not writable: ")
    assert len(err.splitlines()) == 1, err
    assert not (tmp_path / "never.db").exists()
