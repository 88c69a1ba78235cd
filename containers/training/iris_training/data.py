"""Load Iris from the `train` channel (CSV files) or, without one, from scikit-learn's bundled copy."""

from __future__ import annotations

import csv
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.datasets import load_iris
from sklearn.model_selection import train_test_split

from iris_training.errors import UserError

FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
LABEL = "species"


@dataclass(frozen=True)
class Dataset:
    features: pd.DataFrame  # columns FEATURES, float64
    labels: pd.Series  # class names as strings
    source: str
    sha256: str  # of the canonical CSV form: the same rows hash alike whatever their source

    @property
    def rows(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class Split:
    x_train: pd.DataFrame
    x_test: pd.DataFrame
    y_train: pd.Series
    y_test: pd.Series


def load_dataset(channel_dir: Path) -> Dataset:
    """The channel's CSV files when the channel exists, else the bundled Iris."""
    if not channel_dir.exists():
        return bundled_iris()
    files = sorted(p for p in channel_dir.rglob("*.csv") if p.is_file())
    if not files:
        raise UserError(f"train channel {channel_dir} exists but holds no .csv file")
    frames = [_read_csv(path) for path in files]
    frames = [frame for frame in frames if len(frame)]  # header-only parts (Spark, Glue)
    if not frames:
        where = files[0] if len(files) == 1 else f"{channel_dir} ({len(files)} files)"
        raise UserError(f"train channel file {where} holds no data row (header only)")
    table = pd.concat(frames, ignore_index=True)
    names = ", ".join(str(p.relative_to(channel_dir)) for p in files)
    return _dataset(table, source=f"train channel ({names})")


def bundled_iris() -> Dataset:
    iris = load_iris(as_frame=True)
    table = pd.DataFrame(iris.data.to_numpy(dtype=np.float64), columns=list(FEATURES))
    table[LABEL] = np.asarray(iris.target_names)[iris.target.to_numpy()]
    return _dataset(table, source="scikit-learn bundled Iris")


def split(dataset: Dataset, *, test_size: float, seed: int) -> Split:
    """Stratified split; a test_size that leaves a class out of either side is a user error."""
    try:
        x_train, x_test, y_train, y_test = train_test_split(
            dataset.features,
            dataset.labels,
            test_size=test_size,
            random_state=seed,
            stratify=dataset.labels,
        )
    except ValueError as err:
        raise UserError(
            f"hyperparameter test_size={test_size!r} cannot split {dataset.rows} rows of "
            f"{dataset.labels.nunique()} classes with each class on both sides ({err})"
        ) from err
    return Split(x_train, x_test, y_train, y_test)


def _normalise(column: str) -> str:
    """'Sepal Length (cm)' and 'sepal_length' name the same column."""
    name = re.sub(r"\s*\(cm\)\s*$", "", column.strip().lower())
    return re.sub(r"\s+", "_", name)


def _read_csv(path: Path) -> pd.DataFrame:
    # The csv module, not pandas: pandas silently turns extra fields into an index.
    try:
        # utf-8-sig: spreadsheet tools start UTF-8 CSV with a byte-order mark.
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                raise UserError(f"train channel file {path} is empty")
            body, lines = [], []
            for row in reader:
                if not row:
                    continue  # blank line
                if len(row) != len(header):
                    raise UserError(
                        f"train channel file {path} line {reader.line_num}: {len(row)} fields, "
                        f"the header has {len(header)}"
                    )
                body.append(row)
                lines.append(reader.line_num)
    except csv.Error as err:
        raise UserError(f"train channel file {path} is not valid CSV: {err}") from err
    except UnicodeDecodeError as err:
        raise UserError(f"train channel file {path} is not UTF-8 text: {err.reason}") from err
    except OSError as err:
        raise UserError(f"cannot read train channel file {path}: {err.strerror or err}") from err
    # Indexed by line number, so a bad value can be reported where an editor shows it.
    raw = pd.DataFrame(body, columns=header, index=lines, dtype=object)

    names = [_normalise(str(c)) for c in raw.columns]
    for wanted in (*FEATURES, LABEL):
        if names.count(wanted) > 1:
            spellings = ", ".join(c for c, n in zip(header, names, strict=True) if n == wanted)
            # Which copy is meant? Taking the first would silently train on the wrong one.
            raise UserError(
                f"train channel file {path} column {wanted} appears twice (as {spellings})"
            )
    raw.columns = names
    missing = [c for c in (*FEATURES, LABEL) if c not in raw.columns]
    if missing:
        raise UserError(
            f"train channel file {path} lacks column(s) {', '.join(missing)} "
            f"(expected {', '.join((*FEATURES, LABEL))})"
        )
    table = pd.DataFrame({c: _numeric_column(raw[c], c, path) for c in FEATURES}, index=raw.index)
    labels = raw[LABEL].str.strip()
    if (labels == "").any():
        raise UserError(f"train channel file {path} {_line(labels == '')}: {LABEL} is empty")
    table[LABEL] = labels.astype(object)
    return table


def _numeric_column(values: pd.Series, name: str, path: Path) -> pd.Series:
    stripped = values.str.strip()
    numbers = pd.to_numeric(stripped, errors="coerce")
    bad = numbers.isna() | ~np.isfinite(numbers.to_numpy(dtype=np.float64, na_value=np.nan))
    if bad.any():
        where = _line(bad)
        value = stripped[bad].iloc[0]
        problem = f"{name} is empty" if value == "" else f"{name}={value!r} is not a finite number"
        raise UserError(f"train channel file {path} {where}: {problem}")
    return numbers.astype(np.float64)


def _line(mask: pd.Series) -> str:
    return f"line {mask.index[mask.to_numpy()][0]}"


def _dataset(table: pd.DataFrame, *, source: str) -> Dataset:
    canonical = table.loc[:, [*FEATURES, LABEL]].to_csv(index=False, lineterminator="\n")
    return Dataset(
        features=table.loc[:, list(FEATURES)].reset_index(drop=True),
        labels=table[LABEL].astype(str).reset_index(drop=True),
        source=source,
        sha256=hashlib.sha256(canonical.encode("utf-8")).hexdigest(),
    )
