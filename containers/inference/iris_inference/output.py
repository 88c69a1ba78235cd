"""The output partition `date=YYYY-MM-DD/`, written in a hidden staging directory and swapped in.

Readers see the previous partition or the new one, never a mix: a failed run removes its
staging directory and leaves the output as it was. Re-running a date replaces that partition
and touches nothing else.
"""

from __future__ import annotations

import json
import secrets
import shutil
from pathlib import Path
from types import TracebackType

import pyarrow as pa
import pyarrow.parquet as pq

PREDICTIONS_FILE = "predictions.parquet"
SUMMARY_FILE = "summary.json"


class PartitionWriter:
    """Streams Arrow tables into one Parquet file of a staged partition; `commit` publishes it."""

    def __init__(self, output_dir: Path, partition: str, schema: pa.Schema) -> None:
        self.output_dir = output_dir
        self.partition = partition
        self.final_dir = output_dir / partition
        self._staging = output_dir / f".{partition}.staging-{secrets.token_hex(4)}"
        self._schema = schema
        self._writer: pq.ParquetWriter | None = None
        self._committed = False

    def __enter__(self) -> PartitionWriter:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        # A run killed outright (SIGKILL, lost instance) cannot clean up after itself.
        for stale in self.output_dir.glob(f".{self.partition}.*"):
            shutil.rmtree(stale, ignore_errors=True)
        self._staging.mkdir()
        self._writer = pq.ParquetWriter(self._staging / PREDICTIONS_FILE, self._schema)
        return self

    def write(self, table: pa.Table) -> None:
        assert self._writer is not None, "use PartitionWriter as a context manager"
        self._writer.write_table(table)

    def write_json(self, name: str, content: object) -> None:
        """Another file of the partition (e.g. drift.json), published with it by `commit`."""
        assert self._writer is not None, "use PartitionWriter as a context manager"
        (self._staging / name).write_text(json.dumps(content, indent=2) + "\n")

    def commit(self, summary: dict[str, object]) -> Path:
        assert self._writer is not None, "use PartitionWriter as a context manager"
        self._writer.close()
        self._writer = None
        (self._staging / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")
        self._swap()
        self._committed = True
        return self.final_dir

    def _swap(self) -> None:
        if not self.final_dir.exists():
            self._staging.replace(self.final_dir)
            return
        retired = self.output_dir / f".{self.partition}.retired-{secrets.token_hex(4)}"
        self.final_dir.replace(retired)
        try:
            self._staging.replace(self.final_dir)
        except BaseException:
            retired.replace(self.final_dir)
            raise
        shutil.rmtree(retired, ignore_errors=True)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._writer is not None:
            self._writer.close()
        if not self._committed:
            shutil.rmtree(self._staging, ignore_errors=True)
