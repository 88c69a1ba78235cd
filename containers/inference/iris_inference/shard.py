"""One instance's share of a day's scoring, staged for the commit (``iris_inference.commit``).

Sharded mode (``shard_contract.SHARDED_ENV`` = "1") writes it to ``STAGING_DIR/<host>/``, which
SageMaker uploads to the run's staging location for the commit step; one instance writes it to
a hidden directory beside the output and commits it in-process, so both publish through the
same code and readers see one layout whatever the instance count.

    <shard>/
      part-00000.parquet   the scored rows, in input order (files sorted, rows ascending)
      drift_counts.json    per feature, rows per bin of the training reference's edges, and
                           moments (DriftAccumulator.state): summed over shards, never a PSI
      shard.json           rows, per-class and per-source counts, date, model, parts
      _COMPLETE            written last; a shard without it failed and is never committed
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from iris_inference.errors import UserError

SHARD_FORMAT = "iris-inference-shard/v1"
PART_FILE = "part-00000.parquet"
DRIFT_COUNTS_FILE = "drift_counts.json"
SHARD_MANIFEST_FILE = "shard.json"
COMPLETE_FILE = "_COMPLETE"
LOCAL_HOST = "local"  # no resourceconfig.json: not in a SageMaker job
_HOST = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


def current_host(resource_config: Path) -> str:
    """``current_host`` of the job's resourceconfig.json (``algo-1``, ``algo-2``, ...).

    SageMaker Processing writes /opt/ml/config/resourceconfig.json into every container:
    ``{"current_host": "algo-1", "hosts": ["algo-1", "algo-2"]}`` ("How Amazon SageMaker
    Processing Provides Information About Your Processing Container",
    https://docs.aws.amazon.com/sagemaker/latest/dg/build-your-own-processing-container.html).
    Missing: a run outside a job, host "local".
    """
    try:
        text = resource_config.read_text(encoding="utf-8")
    except FileNotFoundError:
        return LOCAL_HOST
    except OSError as err:
        raise UserError(f"cannot read {resource_config}: {err.strerror or err}") from err
    try:
        host = json.loads(text)["current_host"]
    except (ValueError, KeyError, TypeError) as err:
        raise UserError(f'{resource_config} has no "current_host" string: {err}') from err
    if not isinstance(host, str) or not _HOST.match(host):
        raise UserError(
            f"{resource_config} current_host={host!r} is not a host name "
            "(letters, digits, '.', '_', '-')"
        )
    return host


def host_order(host: str) -> tuple[str, int, str]:
    """algo-2 before algo-10: the order shards' parts are listed in the partition."""
    match = re.match(r"^(.*?)(\d+)$", host)
    return (match.group(1), int(match.group(2)), host) if match else (host, -1, host)


class ShardWriter:
    """Streams Arrow tables into the shard's part; `finish` writes the rest, `_COMPLETE` last.

    A shard that fails (an exception inside the block) removes its directory: nothing of it,
    and never a complete marker, is left for the commit.
    """

    def __init__(self, directory: Path, schema: pa.Schema) -> None:
        self.directory = directory
        self._schema = schema
        self._writer: pq.ParquetWriter | None = None
        self._finished = False
        self.rows = 0

    def __enter__(self) -> ShardWriter:
        if self.directory.exists():  # a retried attempt on the same host starts clean
            shutil.rmtree(self.directory)
        self.directory.mkdir(parents=True)
        self._writer = pq.ParquetWriter(self.directory / PART_FILE, self._schema)
        return self

    def write(self, table: pa.Table) -> None:
        assert self._writer is not None, "use ShardWriter as a context manager"
        self._writer.write_table(table)
        self.rows += table.num_rows

    def finish(self, manifest: dict[str, Any], drift_counts: dict[str, Any]) -> None:
        assert self._writer is not None, "use ShardWriter as a context manager"
        self._writer.close()
        self._writer = None
        manifest = {
            "format": SHARD_FORMAT,
            **manifest,
            "parts": [{"name": PART_FILE, "rows": self.rows}],
        }
        _write_json(self.directory / DRIFT_COUNTS_FILE, drift_counts)
        _write_json(self.directory / SHARD_MANIFEST_FILE, manifest)
        _write_json(self.directory / COMPLETE_FILE, {"host": manifest.get("host")})
        self._finished = True

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if not self._finished:
            shutil.rmtree(self.directory, ignore_errors=True)


def _write_json(path: Path, content: object) -> None:
    """Whole or absent: written beside, flushed, then renamed over the name."""
    temporary = path.with_name(f".{path.name}.tmp")
    with temporary.open("w", encoding="utf-8") as handle:
        handle.write(json.dumps(content, indent=2) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    temporary.replace(path)


@dataclass(frozen=True)
class Shard:
    """A complete shard, read back for the commit."""

    directory: Path
    manifest: dict[str, Any]
    drift_counts: dict[str, Any]

    @property
    def host(self) -> str:
        return str(self.manifest["host"])

    @property
    def rows(self) -> int:
        return int(self.manifest["rows"])

    def parts(self) -> list[tuple[Path, int]]:
        return [(self.directory / p["name"], int(p["rows"])) for p in self.manifest["parts"]]


def read_shard(directory: Path) -> Shard:
    """A complete shard; UserError naming the shard when it is not."""
    if not (directory / COMPLETE_FILE).is_file():
        raise UserError(f"shard {directory.name} is incomplete (no {COMPLETE_FILE}: it failed)")
    try:
        manifest = json.loads((directory / SHARD_MANIFEST_FILE).read_text(encoding="utf-8"))
        counts = json.loads((directory / DRIFT_COUNTS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise UserError(f"shard {directory.name} is unreadable: {err}") from err
    if manifest.get("format") != SHARD_FORMAT:
        raise UserError(
            f"shard {directory.name} format is {manifest.get('format')!r}, "
            f"expected {SHARD_FORMAT!r}"
        )
    shard = Shard(directory, manifest, counts)
    for path, _ in shard.parts():
        if not path.is_file():
            raise UserError(f"shard {directory.name} lacks its part {path.name}")
    return shard


def find_shards(staging_dir: Path) -> list[Path]:
    """Every shard directory under the staging directory, in host order."""
    if not staging_dir.is_dir():
        raise UserError(f"staging directory {staging_dir} does not exist")
    found = [p for p in staging_dir.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return sorted(found, key=lambda p: host_order(p.name))
