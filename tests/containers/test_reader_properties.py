"""Property-based checks of the CSV/Parquet readers of both containers (hypothesis).

Whatever the bytes, a reader returns the rows it was given or raises UserError with one line:
never another exception, never a silently changed value.
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path
from tempfile import TemporaryDirectory

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from iris_inference.errors import UserError as InferenceError
from iris_inference.sources import CANONICAL_FEATURES, file_batches
from iris_training.data import FEATURES, LABEL, load_dataset
from iris_training.errors import UserError as TrainingError
from iris_training.gate import SPECIES

PROPERTIES = settings(
    max_examples=60,
    deadline=None,
    database=None,  # no .hypothesis/ directory in the worktree
    suppress_health_check=[HealthCheck.too_slow],
)
finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
rows = st.lists(st.tuples(finite, finite, finite, finite), min_size=0, max_size=40)
spellings = {
    "sepal_length": st.sampled_from(["sepal_length", "Sepal Length (cm)", " SEPAL length "]),
    "sepal_width": st.sampled_from(["sepal_width", "Sepal Width (cm)"]),
    "petal_length": st.sampled_from(["petal_length", "Petal Length (cm)"]),
    "petal_width": st.sampled_from(["petal_width", "petal width"]),
}
# Cells a spreadsheet or an export may hold: numbers, words, blanks, booleans, dates, inf, nan.
cells = st.one_of(
    finite.map(repr),
    st.sampled_from(["", " ", "inf", "-inf", "nan", "NaN", "True", "false", "2026-01-01", "1e999"]),
    st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=8),
)


def _read(path: Path, chunk_rows: int) -> np.ndarray:
    batches = file_batches(
        path, input_dir=path.parent, features=CANONICAL_FEATURES, chunk_rows=chunk_rows
    )
    return np.vstack([b.features for b in batches] or [np.empty((0, 4))])


@PROPERTIES
@given(
    data=rows,
    names=st.fixed_dictionaries(spellings),
    order=st.permutations(list(CANONICAL_FEATURES)),
    chunk_rows=st.integers(1, 50),
    bom=st.booleans(),
    compressed=st.booleans(),
)
def test_inference_csv_rows_come_back_exactly(
    *,
    data: list[tuple[float, ...]],
    names: dict[str, str],
    order: list[str],
    chunk_rows: int,
    bom: bool,
    compressed: bool,
) -> None:
    frame = pd.DataFrame(data, columns=list(CANONICAL_FEATURES), dtype=np.float64)[order]
    text = ("\ufeff" if bom else "") + frame.rename(columns=names).to_csv(index=False)
    raw = text.encode("utf-8")
    with TemporaryDirectory() as folder:
        path = Path(folder) / ("day.csv.gz" if compressed else "day.csv")
        path.write_bytes(gzip.compress(raw) if compressed else raw)
        read = _read(path, chunk_rows)
    assert read.tolist() == [list(r) for r in data]


@PROPERTIES
@given(data=rows, chunk_rows=st.integers(1, 50), as_float32=st.booleans())
def test_inference_parquet_rows_come_back_exactly(
    data: list[tuple[float, ...]], chunk_rows: int, as_float32: bool
) -> None:
    kind = pa.float32() if as_float32 else pa.float64()
    table = pa.table(
        {name: pa.array([r[i] for r in data], kind) for i, name in enumerate(CANONICAL_FEATURES)}
    )
    with TemporaryDirectory() as folder:
        path = Path(folder) / "day.parquet"
        pq.write_table(table, path)
        read = _read(path, chunk_rows)
    expected = np.array(data, dtype=np.float32 if as_float32 else np.float64).reshape(-1, 4)
    assert read.tolist() == expected.astype(np.float64).tolist()


@PROPERTIES
@given(grid=st.lists(st.lists(cells, min_size=4, max_size=4), min_size=1, max_size=8))
def test_inference_csv_cells_are_numbers_or_one_line_errors(grid: list[list[str]]) -> None:
    buffer = io.StringIO()
    pd.DataFrame(grid, columns=list(CANONICAL_FEATURES)).to_csv(buffer, index=False)
    with TemporaryDirectory() as folder:
        path = Path(folder) / "day.csv"
        path.write_text(buffer.getvalue(), encoding="utf-8")
        try:
            read = _read(path, 3)
        except InferenceError as err:
            assert "\n" not in str(err) and str(err).startswith("input file day.csv")
            return
    # Accepted: every cell was a finite number, and that number is what was read.
    assert read.tolist() == [[float(c) for c in row] for row in grid]
    assert np.isfinite(read).all()


@PROPERTIES
@given(content=st.binary(max_size=200))
def test_inference_reader_never_raises_anything_but_a_user_error(content: bytes) -> None:
    with TemporaryDirectory() as folder:
        for name in ("day.csv", "day.parquet"):
            path = Path(folder) / name
            path.write_bytes(content)
            try:
                _read(path, 7)
            except InferenceError as err:
                assert "\n" not in str(err)


@PROPERTIES
@given(
    data=st.lists(st.tuples(finite, finite, finite, finite, st.sampled_from(SPECIES)), max_size=30),
    bom=st.booleans(),
)
def test_training_csv_rows_come_back_exactly(
    data: list[tuple[float, float, float, float, str]], bom: bool
) -> None:
    frame = pd.DataFrame(data, columns=[*FEATURES, LABEL])
    text = ("\ufeff" if bom else "") + frame.to_csv(index=False)
    with TemporaryDirectory() as folder:
        (Path(folder) / "iris.csv").write_text(text, encoding="utf-8")
        try:
            dataset = load_dataset(Path(folder))
        except TrainingError as err:
            assert not data and "holds no data row" in str(err)
            return
    assert dataset.features.to_numpy().tolist() == [list(r[:4]) for r in data]
    assert dataset.labels.tolist() == [r[4] for r in data]


@PROPERTIES
@given(grid=st.lists(st.lists(cells, min_size=5, max_size=5), min_size=1, max_size=8))
def test_training_csv_cells_are_numbers_or_one_line_errors(grid: list[list[str]]) -> None:
    buffer = io.StringIO()
    pd.DataFrame(grid, columns=[*FEATURES, LABEL]).to_csv(buffer, index=False)
    with TemporaryDirectory() as folder:
        (Path(folder) / "iris.csv").write_text(buffer.getvalue(), encoding="utf-8")
        try:
            dataset = load_dataset(Path(folder))
        except TrainingError as err:
            assert "\n" not in str(err)
            return
    assert np.isfinite(dataset.features.to_numpy()).all()
    assert dataset.features.to_numpy().tolist() == [[float(c) for c in r[:4]] for r in grid]


@PROPERTIES
@given(content=st.binary(max_size=200))
def test_training_reader_never_raises_anything_but_a_user_error(content: bytes) -> None:
    with TemporaryDirectory() as folder:
        (Path(folder) / "iris.csv").write_bytes(content)
        try:
            load_dataset(Path(folder))
        except TrainingError as err:
            assert "\n" not in str(err)
