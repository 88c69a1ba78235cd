"""Where rows come from: CSV/Parquet files read in bounded chunks, or generated Iris-like rows.

Every batch is validated before it is scored: a missing column or a value that is not a finite
number stops the run with a message naming the file and the row.
"""

from __future__ import annotations

import csv
import gzip
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from sklearn.datasets import load_iris

from iris_inference.errors import UserError

CSV_SUFFIXES = (".csv", ".csv.gz")
PARQUET_SUFFIXES = (".parquet", ".pq")
GENERATED = "generated"
# What the training container writes; used when a model does not record its feature names.
CANONICAL_FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")


@dataclass(frozen=True)
class Batch:
    source: str  # the input file relative to the input directory, or "generated"
    first_row: int  # 1-based number of the batch's first data row within its source
    features: np.ndarray  # (rows, features) float64, columns in the model's order

    @property
    def rows(self) -> int:
        return int(self.features.shape[0])


def discover(input_dir: Path) -> list[Path]:
    """Every input file, sorted. Hidden and `_`-prefixed names (e.g. _SUCCESS) are markers."""
    if not input_dir.is_dir():
        return []
    files = []
    for path in sorted(p for p in input_dir.rglob("*") if p.is_file()):
        relative = path.relative_to(input_dir)
        if any(part.startswith((".", "_")) for part in relative.parts):
            continue
        if not path.name.lower().endswith(CSV_SUFFIXES + PARQUET_SUFFIXES):
            raise UserError(
                f"input file {relative} is neither CSV ({', '.join(CSV_SUFFIXES)}) "
                f"nor Parquet ({', '.join(PARQUET_SUFFIXES)})"
            )
        files.append(path)
    return files


def file_batches(
    path: Path, *, input_dir: Path, features: Sequence[str], chunk_rows: int
) -> Iterator[Batch]:
    name = str(path.relative_to(input_dir))
    if path.name.lower().endswith(CSV_SUFFIXES):
        batches = _csv_batches(path, name, features, chunk_rows)
    else:
        batches = _parquet_batches(path, name, features, chunk_rows)
    # A header-only file (an empty Spark or Glue part) contributes no batch, not an empty one.
    yield from (batch for batch in batches if batch.rows)


def normalise(column: str) -> str:
    """'Sepal Length (cm)' (scikit-learn's spelling) and 'sepal_length' name the same column."""
    name = re.sub(r"\s*\(cm\)\s*$", "", column.strip().lower())
    return re.sub(r"\s+", "_", name)


def _columns_for(header: Sequence[str], features: Sequence[str], name: str) -> list[str]:
    """The header's spelling of each model feature, in the model's order."""
    by_name: dict[str, str] = {}
    for column in map(str, header):
        key = normalise(column)
        if key in by_name and key in map(normalise, features):
            spellings = ", ".join(c for c in map(str, header) if normalise(c) == key)
            # Which copy is the feature? Taking the first would silently score the wrong one.
            raise UserError(f"input file {name} column {key} appears twice (as {spellings})")
        by_name.setdefault(key, column)
    missing = [f for f in features if normalise(f) not in by_name]
    if missing:
        raise UserError(
            f"input file {name} lacks column(s) {', '.join(missing)} "
            f"(has {', '.join(map(str, header)) or 'no columns'})"
        )
    return [by_name[normalise(f)] for f in features]


def _csv_batches(
    path: Path, name: str, features: Sequence[str], chunk_rows: int
) -> Iterator[Batch]:
    try:
        header = _csv_header(path, name)
        columns = _columns_for(header, features, name)
        first_row = 1
        # utf-8-sig: spreadsheet tools start UTF-8 CSV with a byte-order mark.
        reader = pd.read_csv(path, usecols=columns, chunksize=chunk_rows, encoding="utf-8-sig")
        for chunk in reader:
            values = _as_numbers(chunk[columns], features, name, first_row, lines=True)
            yield Batch(name, first_row, values)
            first_row += len(chunk)
    except pd.errors.EmptyDataError as err:
        raise UserError(f"input file {name} is empty (no header row)") from err
    except pd.errors.ParserError as err:
        reason = str(err).strip().splitlines()[-1]
        raise UserError(f"input file {name} is not valid CSV: {reason}") from err
    except UnicodeDecodeError as err:
        raise UserError(f"input file {name} is not UTF-8 text: {err.reason}") from err
    except csv.Error as err:
        raise UserError(f"input file {name} is not valid CSV: {err}") from err
    except OSError as err:  # also gzip.BadGzipFile
        raise UserError(f"cannot read input file {name}: {err.strerror or err}") from err


def _csv_header(path: Path, name: str) -> list[str]:
    """The header, after checking the first row has as many fields: when it has more, pandas
    would silently take the extra leading fields as an index and shift every column."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt", newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise pd.errors.EmptyDataError(name)
        first = next((row for row in reader if row), None)
    if first is not None and len(first) != len(header):
        raise UserError(
            f"input file {name} row 1 (line 2): {len(first)} fields, the header has {len(header)}"
        )
    return header


def _parquet_batches(
    path: Path, name: str, features: Sequence[str], chunk_rows: int
) -> Iterator[Batch]:
    try:
        parquet = pq.ParquetFile(path)
        columns = _columns_for(parquet.schema_arrow.names, features, name)
        for column, feature in zip(columns, features, strict=True):
            kind = parquet.schema_arrow.field(column).type
            if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or _is_text(kind)):
                what = "booleans" if pa.types.is_boolean(kind) else f"{kind} values"
                raise UserError(
                    f"input file {name} column {feature} holds {what} (expected numbers)"
                )
        first_row = 1
        for record_batch in parquet.iter_batches(batch_size=chunk_rows, columns=columns):
            chunk = record_batch.to_pandas()
            values = _as_numbers(chunk[columns], features, name, first_row, lines=False)
            yield Batch(name, first_row, values)
            first_row += record_batch.num_rows
    except (pa.ArrowException, OSError) as err:
        raise UserError(f"cannot read input file {name} as Parquet: {err}") from err


def _is_text(kind: pa.DataType) -> bool:
    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind))


def _shown(raw: object) -> str:
    """A cell as the user wrote it: 'abc' quoted, numbers (inf, nan) bare."""
    if isinstance(raw, (float, int, np.floating, np.integer)) and not isinstance(raw, bool):
        return repr(float(raw))
    return repr(raw)


def _as_numbers(
    chunk: pd.DataFrame, features: Sequence[str], name: str, first_row: int, *, lines: bool
) -> np.ndarray:
    """The chunk as a float64 matrix; the first empty or non-numeric cell is a UserError."""
    columns: list[np.ndarray] = []
    for column in chunk.columns:
        values = chunk[column]
        feature = features[len(columns)]
        if values.dtype.kind == "b":  # True/False would be scored as 1/0
            raise UserError(f"input file {name} column {feature} holds booleans (expected numbers)")
        if values.dtype.kind in "mM":  # timestamps would be scored as nanoseconds
            raise UserError(
                f"input file {name} column {feature} holds {values.dtype} values (expected numbers)"
            )
        if values.dtype.kind not in "fiu":  # a non-numeric cell made pandas keep text
            values = pd.to_numeric(values, errors="coerce")
        columns.append(values.to_numpy(dtype=np.float64, na_value=np.nan))
    matrix = np.column_stack(columns) if columns else np.empty((len(chunk), 0))
    finite = np.isfinite(matrix)
    if not finite.all():
        row, col = (int(i[0]) for i in np.nonzero(~finite))
        raw = chunk.iloc[row, col]
        # CSV: data row N is line N + 1 after the header (no blank or multi-line rows assumed).
        where = f"row {first_row + row}" + (f" (line {first_row + row + 1})" if lines else "")
        empty = pd.isna(raw) or str(raw).strip() == ""
        problem = "is empty" if empty else f"value {_shown(raw)} is not a finite number"
        raise UserError(f"input file {name} {where}: column {features[col]} {problem}")
    return matrix


@dataclass(frozen=True)
class _ClassShapes:
    means: np.ndarray  # (classes, 4)
    cholesky: np.ndarray  # (classes, 4, 4)


@cache
def _iris_shapes() -> _ClassShapes:
    """Per-species mean and covariance of scikit-learn's bundled Iris (no download)."""
    iris = load_iris()
    data, target = np.asarray(iris.data), np.asarray(iris.target)
    classes = np.unique(target)
    means = np.stack([data[target == c].mean(axis=0) for c in classes])
    covariances = [np.cov(data[target == c], rowvar=False) for c in classes]
    cholesky = np.stack([np.linalg.cholesky(c + 1e-6 * np.eye(4)) for c in covariances])
    return _ClassShapes(means, cholesky)


def generated_batches(
    *, rows: int, seed: int, chunk_rows: int, features: Sequence[str]
) -> Iterator[Batch]:
    """`rows` Iris-like rows: a species drawn uniformly, then its multivariate normal.

    Chunk k draws from its own generator seeded (seed, k): the same seed, rows and chunk_rows
    give the same rows, and memory stays bounded by the chunk.
    """
    unknown = [f for f in features if f not in CANONICAL_FEATURES]
    if unknown:
        raise UserError(
            f"cannot generate rows for a model with feature(s) {', '.join(unknown)} "
            f"(generation knows {', '.join(CANONICAL_FEATURES)})"
        )
    order = [CANONICAL_FEATURES.index(f) for f in features]
    shapes = _iris_shapes()
    for index, start in enumerate(range(0, rows, chunk_rows)):
        size = min(chunk_rows, rows - start)
        rng = np.random.default_rng([seed, index])
        species = rng.integers(0, len(shapes.means), size=size)
        noise = rng.standard_normal((size, 4))
        # Correlated noise per row; gathering is ~4x faster than masking per species.
        values = shapes.means[species] + np.einsum("nij,nj->ni", shapes.cholesky[species], noise)
        values = np.round(np.clip(values, 0.1, None), 1)  # Iris is measured to 1 mm
        yield Batch(GENERATED, start + 1, np.ascontiguousarray(values[:, order]))
