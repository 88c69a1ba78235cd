"""Score every batch with the production model and publish the day's partition."""

from __future__ import annotations

import datetime as dt
import logging
import re
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from iris_inference.drift import (
    DRIFT_FILE,
    DriftAccumulator,
    inference_run,
    load_reference_profile,
    summary_entry,
)
from iris_inference.errors import UserError
from iris_inference.model import ProductionModel, load_production_model
from iris_inference.output import PREDICTIONS_FILE, PartitionWriter
from iris_inference.pipeline import read_ahead
from iris_inference.settings import InferenceSettings
from iris_inference.sources import Batch, discover, file_batches, generated_batches

log = logging.getLogger("iris_inference")
_DICTIONARY = pa.dictionary(pa.int32(), pa.string())
_TIMESTAMP = pa.timestamp("us", tz="UTC")
_READ_AHEAD = 2  # chunks


def probability_column(label: str) -> str:
    return "proba_" + re.sub(r"[^A-Za-z0-9_]+", "_", label)


def output_schema(model: ProductionModel) -> pa.Schema:
    """One row per input row: where it came from, its features, the prediction, the model."""
    return pa.schema(
        [
            pa.field("source_file", _DICTIONARY),
            pa.field("source_row", pa.int64()),
            *(pa.field(name, pa.float64()) for name in model.features),
            pa.field("predicted_class", _DICTIONARY),
            *(pa.field(probability_column(c), pa.float64()) for c in model.classes),
            pa.field("model_name", _DICTIONARY),
            pa.field("model_version", _DICTIONARY),
            pa.field("run_id", _DICTIONARY),
            pa.field("scored_at", _TIMESTAMP),
        ]
    )


@dataclass
class _Tally:
    rows: int = 0
    per_source: dict[str, int] = field(default_factory=dict)
    class_counts: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


def run(settings: InferenceSettings) -> dict[str, object]:
    """Score, publish the partition, and return its summary (also written as summary.json)."""
    started = time.perf_counter()
    scored_at = dt.datetime.now(dt.UTC)
    files = discover(settings.input_dir)
    if not files and settings.generate_rows == 0:
        # Checked before anything is written: the previous partition stays as it was.
        if not settings.input_dir.exists():
            raise UserError(f"input directory {settings.input_dir} does not exist")
        if not settings.input_dir.is_dir():
            raise UserError(f"input directory {settings.input_dir} is not a directory")
        raise UserError(f"input directory {settings.input_dir} holds no .csv or .parquet file")
    _check_writable(settings.output_dir)
    model = load_production_model(
        tracking_uri=settings.tracking_uri, name=settings.model_name, alias=settings.model_alias
    )
    profile = load_reference_profile(f"models:/{model.name}/{model.version}")
    loaded = time.perf_counter()
    log.info("model: %s -> version %s (run %s)", model.uri, model.version, model.run_id)
    if profile.profile is None:
        log.warning("drift: %s (%s); no PSI this run", profile.status, profile.reason)
    drift = DriftAccumulator(model.features, profile)

    tally = _Tally(class_counts=np.zeros(len(model.classes), dtype=np.int64))
    partition = f"date={settings.date.isoformat()}"
    with (
        PartitionWriter(settings.output_dir, partition, output_schema(model)) as writer,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="write") as background,
    ):
        # Read ahead in one thread, score here, write behind in another; at most one
        # write in flight keeps memory bounded.
        pending: Future[None] | None = None
        for batch in read_ahead(_batches(settings, model, files), depth=_READ_AHEAD):
            table = _score(model, batch, scored_at, tally)
            drift.add(batch.features)
            if pending is not None:
                pending.result()
            pending = background.submit(writer.write, table)
        if pending is not None:
            pending.result()
        if tally.rows == 0:
            # Header-only files (an empty Spark or Glue part): publishing an empty partition
            # would replace the day's results with nothing. __exit__ removes the staging copy.
            raise UserError(
                f"input directory {settings.input_dir} holds no data row "
                f"({len(files)} file(s), headers only)"
            )
        finished = time.perf_counter()
        summary = _summary(
            settings,
            model,
            files=files,
            tally=tally,
            scored_at=scored_at,
            seconds=(started, loaded, finished),
        )
        report = drift.report(settings.drift_threshold)
        if report["flagged"]:
            log.warning(
                "drift: PSI above %s for %s",
                settings.drift_threshold,
                ", ".join(
                    f"{n} ({report['features'][n]['psi']:.3f})"
                    for n in report["features_above_threshold"]
                ),
            )
        # The run is logged before the partition is published; a failed publish ends it FAILED.
        with inference_run(
            report, model=model, date=settings.date.isoformat(), partition=partition
        ) as run_id:
            summary["drift"] = {**summary_entry(report, partition), "mlflow_run_id": run_id}
            writer.write_json(DRIFT_FILE, report)
            writer.commit(summary)
    return summary


def _check_writable(output_dir: Path) -> None:
    """Fail before the model loads and anything is scored when the partition cannot be written."""
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=output_dir, prefix=".write-probe-"):
            pass
    except OSError as err:
        raise UserError(
            f"output directory {output_dir} is not writable: {err.strerror or err}"
        ) from err


def _batches(
    settings: InferenceSettings, model: ProductionModel, files: list[Path]
) -> Iterator[Batch]:
    if not files:
        log.info(
            "input: none under %s; generating %d rows (seed %d)",
            settings.input_dir,
            settings.generate_rows,
            settings.generation_seed,
        )
        yield from generated_batches(
            rows=settings.generate_rows,
            seed=settings.generation_seed,
            chunk_rows=settings.chunk_rows,
            features=model.features,
        )
        return
    log.info("input: %d file(s) under %s", len(files), settings.input_dir)
    for path in files:
        yield from file_batches(
            path,
            input_dir=settings.input_dir,
            features=model.features,
            chunk_rows=settings.chunk_rows,
        )


def _constant(value: str, rows: int) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(np.zeros(rows, dtype=np.int32), pa.array([value]))


def _score(model: ProductionModel, batch: Batch, scored_at: dt.datetime, tally: _Tally) -> pa.Table:
    frame = pd.DataFrame(batch.features, columns=list(model.features), copy=False)
    probabilities = np.asarray(model.estimator.predict_proba(frame))
    winners = probabilities.argmax(axis=1).astype(np.int32)  # what predict() returns, reused
    rows = batch.rows
    tally.rows += rows
    tally.per_source[batch.source] = tally.per_source.get(batch.source, 0) + rows
    tally.class_counts += np.bincount(winners, minlength=len(model.classes))
    columns = [
        _constant(batch.source, rows),
        pa.array(np.arange(batch.first_row, batch.first_row + rows, dtype=np.int64)),
        *(pa.array(batch.features[:, i]) for i in range(batch.features.shape[1])),
        pa.DictionaryArray.from_arrays(winners, pa.array(model.classes)),
        *(pa.array(probabilities[:, i]) for i in range(probabilities.shape[1])),
        _constant(model.name, rows),
        _constant(model.version, rows),
        _constant(model.run_id, rows),
        pa.repeat(pa.scalar(scored_at, type=_TIMESTAMP), rows),
    ]
    return pa.Table.from_arrays(columns, schema=output_schema(model))


def _summary(
    settings: InferenceSettings,
    model: ProductionModel,
    *,
    files: list[Path],
    tally: _Tally,
    scored_at: dt.datetime,
    seconds: tuple[float, float, float],  # started, model loaded, finished
) -> dict[str, object]:
    started, loaded, finished = seconds
    partition = f"date={settings.date.isoformat()}"
    scoring_seconds = finished - loaded
    source: dict[str, object] = (
        {"mode": "files", "files": tally.per_source}
        if files
        else {"mode": "generated", "rows": settings.generate_rows, "seed": settings.generation_seed}
    )
    return {
        "date": settings.date.isoformat(),
        "rows": tally.rows,
        "class_counts": dict(zip(model.classes, map(int, tally.class_counts), strict=True)),
        "model": {
            "name": model.name,
            "alias": model.alias,
            "version": model.version,
            "run_id": model.run_id,
        },
        "input": source,
        "output": f"{partition}/{PREDICTIONS_FILE}",
        "scored_at": scored_at.isoformat(),
        "duration_seconds": round(finished - started, 3),
        "model_load_seconds": round(loaded - started, 3),
        "scoring_seconds": round(scoring_seconds, 3),
        "rows_per_second": round(tally.rows / scoring_seconds) if scoring_seconds > 0 else None,
    }
