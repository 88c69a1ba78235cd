"""`python -m iris_inference.commit --expected-shards N --output-uri URI [--staging-dir DIR]`.

The sharded pipeline's last step (``shard_contract.COMMIT_ENTRYPOINT``): check that exactly N
complete shards agree (date, model version, drift threshold, no input file scored twice),
merge them, and publish ``<output>/date=YYYY-MM-DD/`` by the reader's contract
(:mod:`iris_inference.partition`): data parts named by this commit, ``drift.json`` (PSI of the
bin counts summed over the shards), ``summary.json``, then ``_manifest.json`` and ``_SUCCESS``,
and only then the previous commit's parts are deleted. Anything wrong: one line, exit 1,
nothing written. One instance (``python -m iris_inference``) commits its single shard through
the same functions, in-process.

When ``MLFLOW_TRACKING_URI`` is set, the merged drift report is logged as one run of the
``iris-inference`` experiment, as one instance does.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_runtime.logs import configure_logging

from iris_inference.drift import DriftAccumulator, summary_entry
from iris_inference.errors import UserError
from iris_inference.partition import (
    DRIFT_FILE,
    PARTITION_FORMAT,
    SUMMARY_FILE,
    Destination,
    PartFile,
    destination,
    new_commit_id,
    partition_name,
    write_partition,
)
from iris_inference.settings import BASE_DIR_ENV, DEFAULT_BASE_DIR
from iris_inference.shard import Shard, find_shards, read_shard
from iris_inference.shard_contract import COMMIT_INPUT_DIR, MANIFEST_FILE

log = logging.getLogger("iris_inference")
MAX_SHARDS = 100  # SageMaker's processing instance count limit is far lower


@dataclass(frozen=True)
class ModelRef:
    name: str
    alias: str
    version: str
    run_id: str


@dataclass(frozen=True)
class Prepared:
    """Checked and merged shards: everything to publish except names and the commit id."""

    shards: list[Shard]
    date: str
    model: ModelRef
    rows: int
    class_counts: dict[str, int]
    per_source: dict[str, int]
    input: dict[str, Any]
    report: dict[str, Any]


def prepare(shard_dirs: Sequence[Path], expected: int) -> Prepared:
    """Exactly `expected` complete shards that agree, merged; UserError in one line otherwise."""
    shards = [read_shard(d) for d in shard_dirs]  # an incomplete (failed) shard stops here
    hosts = ", ".join(s.host for s in shards) or "none"
    if len(shards) != expected:
        raise UserError(f"expected {expected} complete shard(s), found {len(shards)} ({hosts})")
    for key, what in (("date", "date"), ("model", "model version"), ("drift_threshold", "drift "
                      "threshold"), ("classes", "classes")):  # fmt: skip
        values = {json.dumps(s.manifest[key], sort_keys=True) for s in shards}
        if len(values) > 1:
            seen = "; ".join(f"{s.host} {_short(s.manifest[key])}" for s in shards)
            raise UserError(f"shards disagree on the {what}: {seen}")
    first = shards[0].manifest
    per_source: dict[str, int] = {}
    owner: dict[str, str] = {}
    for shard in shards:
        for name, count in shard.manifest["per_source"].items():
            if name in owner:
                raise UserError(f"input {name} was scored by both {owner[name]} and {shard.host}")
            owner[name], per_source[name] = shard.host, int(count)
    rows = sum(s.rows for s in shards)
    if rows == 0:
        raise UserError(f"the {len(shards)} shard(s) hold no data row: nothing to publish")
    class_counts = {c: sum(int(s.manifest["class_counts"][c]) for s in shards)
                    for c in first["classes"]}  # fmt: skip
    inputs = [s.manifest["input"] for s in shards if s.rows]
    if len(inputs) == 1 and inputs[0]["mode"] == "generated":
        source: dict[str, Any] = dict(inputs[0])
    else:
        source = {"mode": "files", "files": per_source}
    merged = DriftAccumulator.merged([s.drift_counts for s in shards])
    return Prepared(
        shards=shards,
        date=str(first["date"]),
        model=ModelRef(**first["model"]),
        rows=rows,
        class_counts=class_counts,
        per_source=per_source,
        input=source,
        report=merged.report(float(first["drift_threshold"])),
    )


def _short(value: object) -> str:
    if isinstance(value, dict) and "version" in value:
        return f"{value.get('name')} v{value['version']}"
    return str(value)


def publish(
    prepared: Prepared,
    target: Destination,
    *,
    move_parts: bool,
    mlflow_run_id: str | None = None,
    extra_summary: Mapping[str, object] | None = None,
) -> dict[str, Any]:
    """Write the partition by the reader's contract; return its summary."""
    committed_at = dt.datetime.now(dt.UTC).isoformat()
    commit_id = new_commit_id(committed_at)
    partition = partition_name(prepared.date)
    parts = [
        PartFile(f"part-{commit_id}-{index:05d}.parquet", path, rows)
        for index, (path, rows) in enumerate(p for s in prepared.shards for p in s.parts())
    ]
    hosts = [s.host for s in prepared.shards for _ in s.parts()]
    report = {**prepared.report, "commit_id": commit_id}
    drift = {**summary_entry(report, partition), "mlflow_run_id": mlflow_run_id}
    model = vars(prepared.model)
    summary: dict[str, Any] = {
        "date": prepared.date,
        "commit_id": commit_id,
        "rows": prepared.rows,
        "class_counts": prepared.class_counts,
        "model": model,
        "input": prepared.input,
        "output": f"{partition}/{MANIFEST_FILE}",
        "parts": [p.name for p in parts],
        "shards": [
            {"host": s.host, "rows": s.rows, **s.manifest.get("timings", {})}
            for s in prepared.shards
        ],
        "scored_at": min(str(s.manifest["scored_at"]) for s in prepared.shards),
        "committed_at": committed_at,
        **dict(extra_summary or {}),
        "drift": drift,
    }
    manifest = {
        "format": PARTITION_FORMAT,
        "commit_id": commit_id,
        "committed_at": committed_at,
        "date": prepared.date,
        "rows": prepared.rows,
        "class_counts": prepared.class_counts,
        "per_source": prepared.per_source,
        "model": model,
        "parts": [
            {"name": p.name, "rows": p.rows, "bytes": p.source.stat().st_size, "host": host}
            for p, host in zip(parts, hosts, strict=True)
        ],
        "drift": {"file": DRIFT_FILE, **drift},
        "summary": SUMMARY_FILE,
    }
    retired = write_partition(
        target, parts=parts, drift=report, summary=summary, manifest=manifest,
        move_parts=move_parts,
    )  # fmt: skip
    log.info(
        "commit %s: %d rows in %d part(s) -> %s%s (%d previous object(s) removed)",
        commit_id, prepared.rows, len(parts), target.uri, MANIFEST_FILE, len(retired),
    )  # fmt: skip
    return summary


def commit(
    shard_dirs: Sequence[Path],
    *,
    expected: int,
    target_for: Callable[[str], Destination],
    move_parts: bool,
    run: Callable[[Prepared], AbstractContextManager[str | None]] | None = None,
    extra_summary: Mapping[str, object] | None = None,
) -> dict[str, Any]:
    """prepare + publish, inside `run` (an MLflow run that ends FAILED if the publish fails)."""
    prepared = prepare(shard_dirs, expected)
    target = target_for(prepared.date)
    with run(prepared) if run is not None else nullcontext(None) as run_id:
        return publish(
            prepared, target, move_parts=move_parts, mlflow_run_id=run_id,
            extra_summary=extra_summary,
        )  # fmt: skip


def mlflow_run(prepared: Prepared) -> AbstractContextManager[str | None]:
    from iris_inference.drift import inference_run  # noqa: PLC0415

    return inference_run(
        prepared.report,
        model=prepared.model,
        date=prepared.date,
        partition=partition_name(prepared.date),
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m iris_inference.commit",
        description="Publish <output>/date=YYYY-MM-DD/ from N complete shards (manifest last).",
    )
    parser.add_argument("--expected-shards", required=True, metavar="N",
                        help="complete shards required (the score step's instance count)")  # fmt: skip
    parser.add_argument("--output-uri", required=True, metavar="URI",
                        help="s3://bucket/prefix/ or a directory")  # fmt: skip
    parser.add_argument("--staging-dir", metavar="DIR",
                        help=f"where the shards are (default {COMMIT_INPUT_DIR})")  # fmt: skip
    return parser


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    configure_logging(log)
    args = _parser().parse_args(argv)
    try:
        expected = _expected(args.expected_shards)
        base = Path(env.get(BASE_DIR_ENV) or DEFAULT_BASE_DIR)
        staging = (
            Path(args.staging_dir)
            if args.staging_dir
            else base / Path(COMMIT_INPUT_DIR).relative_to(DEFAULT_BASE_DIR)
        )
        run = None
        if env.get("MLFLOW_TRACKING_URI"):
            from mlops_runtime.mlflow_auth import (  # noqa: PLC0415
                credentials_from_secret,
                http_environment,
                point_mlflow_at,
            )

            os.environ.update(http_environment(env))
            os.environ.update(credentials_from_secret(env))
            point_mlflow_at(env["MLFLOW_TRACKING_URI"])
            run = mlflow_run
        summary = commit(
            find_shards(staging),
            expected=expected,
            target_for=lambda date: destination(args.output_uri, date),
            move_parts=False,
            run=run,
        )
    except UserError as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        return 1
    except Exception as err:
        failure = _aws_failure(err)
        if failure is None:
            traceback.print_exc()
            failure = f"unexpected error: {type(err).__name__}: {err}"
        print(failure, file=sys.stderr, flush=True)
        return 1
    print(json.dumps(summary), flush=True)
    return 0


def _expected(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_SHARDS or str(value) != raw.strip():
        raise UserError(f"--expected-shards={raw!r} is not an integer between 1 and {MAX_SHARDS}")
    return value


def _aws_failure(err: Exception) -> str | None:
    """One line for an S3 error (access denied, no such bucket, no credentials)."""
    try:
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415
    except ImportError:  # pragma: no cover -- boto3 is in the image
        return None
    if isinstance(err, ClientError):
        error = err.response.get("Error", {})
        return f"error: S3 {err.operation_name} failed: {error.get('Code')}: {error.get('Message')}"
    if isinstance(err, BotoCoreError):
        return f"error: S3: {err}"
    return None


if __name__ == "__main__":
    raise SystemExit(main())
