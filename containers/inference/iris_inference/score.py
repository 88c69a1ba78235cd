"""Score every batch with the production model: a shard, published in-process or by the commit."""

from __future__ import annotations

import datetime as dt
import functools
import logging
import re
import secrets
import shutil
import tempfile
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from iris_inference.commit import commit, mlflow_run
from iris_inference.drift import DriftAccumulator, load_reference_profile
from iris_inference.errors import UserError
from iris_inference.model import ProductionModel, load_production_model
from iris_inference.partition import LocalDestination, destination, partition_name
from iris_inference.pipeline import read_ahead
from iris_inference.settings import InferenceSettings
from iris_inference.shard import LOCAL_HOST, ShardWriter, current_host, read_shard
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

    def add(self, batch: Batch, winners: np.ndarray) -> None:
        self.rows += batch.rows
        self.per_source[batch.source] = self.per_source.get(batch.source, 0) + batch.rows
        self.class_counts += np.bincount(winners, minlength=len(self.class_counts))


def run(settings: InferenceSettings) -> dict[str, object]:
    """Score the input into a shard; then publish it (one instance) or leave it for the commit.

    One instance commits its single shard in-process with the commit step's own code, so the
    partition has the same layout and reader's contract whatever the instance count.
    """
    started = time.perf_counter()
    scored_at = dt.datetime.now(dt.UTC)
    files = discover(settings.input_dir)
    partition = partition_name(settings.date.isoformat())
    if settings.sharded:
        # ShardedByS3Key may leave an instance no file: it commits an empty shard.
        host = current_host(settings.resource_config)
        shard_dir = settings.staging_dir / host
        _check_writable(settings.staging_dir)
    else:
        _check_input(settings, files)
        host = LOCAL_HOST
        if settings.output_uri is not None:
            destination(settings.output_uri, settings.date.isoformat())  # a bad URI fails now
        _check_writable(settings.output_dir)
        for stale in settings.output_dir.glob(f".{partition}.*"):  # a run killed outright
            shutil.rmtree(stale, ignore_errors=True)
        shard_dir = settings.output_dir / f".{partition}.staging-{secrets.token_hex(4)}"
    model = load_production_model(
        tracking_uri=settings.tracking_uri, name=settings.model_name, alias=settings.model_alias
    )
    _one_thread_per_call(model)
    profile = load_reference_profile(f"models:/{model.name}/{model.version}")
    loaded = time.perf_counter()
    log.info("model: %s -> version %s (run %s)", model.uri, model.version, model.run_id)
    if profile.profile is None:
        log.warning("drift: %s (%s); no PSI this run", profile.status, profile.reason)
    drift = DriftAccumulator(model.features, profile)
    tally = _Tally(class_counts=np.zeros(len(model.classes), dtype=np.int64))
    try:
        with ShardWriter(shard_dir, output_schema(model)) as shard:
            _score_all(
                settings,
                model=model,
                files=files,
                scored_at=scored_at,
                shard=shard,
                tally=tally,
                drift=drift,
            )
            if tally.rows == 0 and not settings.sharded:
                # Header-only files (an empty Spark or Glue part): publishing an empty partition
                # would replace the day's results with nothing.
                raise UserError(
                    f"input directory {settings.input_dir} holds no data row "
                    f"({len(files)} file(s), headers only)"
                )
            finished = time.perf_counter()
            timings = _timings(settings, tally.rows, (started, loaded, finished))
            shard.finish(
                _shard_manifest(
                    settings,
                    model=model,
                    host=host,
                    files=files,
                    tally=tally,
                    scored_at=scored_at,
                    timings=timings,
                ),
                drift.state(),
            )
        if settings.sharded:
            log.info("shard %s: %d rows staged in %s", host, tally.rows, shard_dir)
            return {"shard": host, "staged": str(shard_dir), **read_shard(shard_dir).manifest}
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
        return commit(
            [shard_dir],
            expected=1,
            target_for=lambda date: (
                destination(settings.output_uri, date)
                if settings.output_uri is not None
                else LocalDestination(settings.output_dir / partition_name(date))
            ),
            move_parts=True,
            run=mlflow_run,
            extra_summary={k: v for k, v in timings.items() if k != "workers"},
        )
    finally:
        if not settings.sharded:
            shutil.rmtree(shard_dir, ignore_errors=True)


def _score_all(
    settings: InferenceSettings,
    *,
    model: ProductionModel,
    files: list[Path],
    scored_at: dt.datetime,
    shard: ShardWriter,
    tally: _Tally,
    drift: DriftAccumulator,
) -> None:
    """Every batch scored and written in input order, on `settings.workers` threads.

    One worker: read, score and write in turn on this thread. More: a thread reads ahead,
    `workers` threads score consecutive chunks (tree traversal releases the GIL), this thread
    takes the results in input order, and one thread writes behind. At most read-ahead +
    workers + 1 + one writing chunks are alive: memory is flat in the input size.
    """
    batches = _batches(settings, model, files)
    if settings.workers == 1:
        for batch in batches:
            table, winners = _score(model, batch, scored_at)
            tally.add(batch, winners)
            drift.add(batch.features)
            shard.write(table)
        return
    with (
        ThreadPoolExecutor(settings.workers, thread_name_prefix="score") as pool,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="write") as background,
    ):
        in_flight: deque[tuple[Batch, Future[tuple[pa.Table, np.ndarray]]]] = deque()
        pending: Future[None] | None = None
        take = functools.partial(
            _take, in_flight, shard=shard, tally=tally, drift=drift, background=background
        )
        try:
            for batch in read_ahead(batches, depth=_READ_AHEAD):
                in_flight.append((batch, pool.submit(_score, model, batch, scored_at)))
                while len(in_flight) > settings.workers:
                    pending = take(pending=pending)
            while in_flight:
                pending = take(pending=pending)
            if pending is not None:
                pending.result()
        finally:
            for _, future in in_flight:  # a failure: do not score what nobody will write
                future.cancel()


def _take(
    in_flight: deque[tuple[Batch, Future[tuple[pa.Table, np.ndarray]]]],
    *,
    shard: ShardWriter,
    tally: _Tally,
    drift: DriftAccumulator,
    background: ThreadPoolExecutor,
    pending: Future[None] | None,
) -> Future[None]:
    """The oldest chunk's result: counted, then written behind (one write in flight)."""
    batch, future = in_flight.popleft()
    table, winners = future.result()
    tally.add(batch, winners)
    drift.add(batch.features)
    if pending is not None:
        pending.result()
    return background.submit(shard.write, table)


def _one_thread_per_call(model: ProductionModel) -> None:
    """The pool is the parallelism: an estimator trained with n_jobs=-1 would start its own
    threads on every call and oversubscribe the cores."""
    get_params = getattr(model.estimator, "get_params", None)
    if get_params is not None and "n_jobs" in get_params(deep=False):
        model.estimator.set_params(n_jobs=1)


def _timings(
    settings: InferenceSettings, rows: int, seconds: tuple[float, float, float]
) -> dict[str, object]:
    started, loaded, finished = seconds
    scoring = finished - loaded
    return {
        "duration_seconds": round(finished - started, 3),
        "model_load_seconds": round(loaded - started, 3),
        "scoring_seconds": round(scoring, 3),
        "rows_per_second": round(rows / scoring) if scoring > 0 else None,
        "workers": settings.workers,
    }


def _shard_manifest(
    settings: InferenceSettings,
    *,
    model: ProductionModel,
    host: str,
    files: list[Path],
    tally: _Tally,
    scored_at: dt.datetime,
    timings: dict[str, object],
) -> dict[str, object]:
    source: dict[str, object] = (
        {"mode": "files", "files": tally.per_source}
        if files or settings.generate_rows == 0
        else {"mode": "generated", "rows": settings.generate_rows, "seed": settings.generation_seed}
    )
    return {
        "host": host,
        "date": settings.date.isoformat(),
        "rows": tally.rows,
        "classes": list(model.classes),
        "class_counts": dict(zip(model.classes, map(int, tally.class_counts), strict=True)),
        "per_source": tally.per_source,
        "input": source,
        "model": {
            "name": model.name,
            "alias": model.alias,
            "version": model.version,
            "run_id": model.run_id,
        },
        "drift_threshold": settings.drift_threshold,
        "scored_at": scored_at.isoformat(),
        "timings": timings,
    }


def _check_input(settings: InferenceSettings, files: list[Path]) -> None:
    """Checked before anything is written: the previous partition stays as it was."""
    if files or settings.generate_rows > 0:
        return
    if not settings.input_dir.exists():
        raise UserError(f"input directory {settings.input_dir} does not exist")
    if not settings.input_dir.is_dir():
        raise UserError(f"input directory {settings.input_dir} is not a directory")
    raise UserError(f"input directory {settings.input_dir} holds no .csv or .parquet file")


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


def _score(
    model: ProductionModel, batch: Batch, scored_at: dt.datetime
) -> tuple[pa.Table, np.ndarray]:
    """One chunk's output rows and winning class indices; touches no shared state."""
    frame = pd.DataFrame(batch.features, columns=list(model.features), copy=False)
    probabilities = np.asarray(model.estimator.predict_proba(frame))
    winners = probabilities.argmax(axis=1).astype(np.int32)  # what predict() returns, reused
    rows = batch.rows
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
    return pa.Table.from_arrays(columns, schema=output_schema(model)), winners
