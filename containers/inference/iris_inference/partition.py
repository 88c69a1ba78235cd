"""The published partition ``<output>/date=YYYY-MM-DD/`` and the contract its readers follow.

S3 has no multi-object transaction: a PUT of one object is atomic (a reader gets the old
object or the new one, never part of one) and reads and lists are strongly consistent after
it, but "there is no way to make atomic updates across keys" (Amazon S3 User Guide, "Amazon S3
data consistency model", https://docs.aws.amazon.com/AmazonS3/latest/userguide/Welcome.html#ConsistencyModel).
So a partition is defined by one object, its manifest, written after everything it lists:

Reader's contract
  1. No ``_SUCCESS`` in the partition: nothing was ever committed there; read nothing.
  2. Otherwise read ``_manifest.json``: the partition is exactly the data parts it lists, in
     that order, with the row counts it states. Ignore every other object in the prefix (parts
     of a commit in progress or of a failed one; ``drift.json`` and ``summary.json`` belong to
     the partition only when their ``commit_id`` equals the manifest's).
  3. A listed part that is gone (a newer commit replaced the partition and removed it after
     its own ``_SUCCESS``): start again at 1.

Writer (one commit at a time per date: the pipeline runs one execution per date)
  data parts under names unique to the commit -> drift.json -> summary.json -> _manifest.json
  (the switch) -> _SUCCESS -> only then delete what the new manifest does not list (the
  previous commit's parts, leftovers of failed ones). A failure at any step before the
  manifest leaves the previous manifest, and every part it lists, in place.

The same code writes a local directory (each file written beside and renamed over its name,
the local equivalent of one PUT) and an ``s3://`` prefix (boto3).
"""

from __future__ import annotations

import io
import json
import os
import secrets
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.parquet as pq

from iris_inference.errors import UserError
from iris_inference.shard_contract import MANIFEST_FILE, SUCCESS_FILE

PARTITION_FORMAT = "iris-inference-partition/v1"
DRIFT_FILE = "drift.json"
SUMMARY_FILE = "summary.json"
# Written in place by every commit; everything else in a partition is named by its commit.
FIXED_FILES = frozenset({DRIFT_FILE, SUMMARY_FILE, MANIFEST_FILE, SUCCESS_FILE})
_SINGLE_PUT_BYTES = 5 * 1024**3 - 1  # above this S3 needs a multipart upload


class Destination(Protocol):
    """One partition's location: a local directory or an S3 prefix."""

    uri: str

    def names(self) -> set[str]: ...
    def put_bytes(self, name: str, data: bytes) -> None: ...
    def put_file(self, name: str, source: Path, *, move: bool) -> None: ...
    def get_bytes(self, name: str) -> bytes | None: ...
    def delete(self, name: str) -> None: ...


class LocalDestination:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.uri = f"{directory}/"

    def names(self) -> set[str]:
        if not self.directory.is_dir():
            return set()
        return {p.name for p in self.directory.iterdir() if p.is_file()}

    def put_bytes(self, name: str, data: bytes) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        temporary = self.directory / f".{name}.{secrets.token_hex(4)}.tmp"
        with temporary.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(self.directory / name)

    def put_file(self, name: str, source: Path, *, move: bool) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        temporary = self.directory / f".{name}.{secrets.token_hex(4)}.tmp"
        if move:
            shutil.move(source, temporary)  # a rename when both are on one file system
        else:
            shutil.copyfile(source, temporary)
        temporary.replace(self.directory / name)

    def get_bytes(self, name: str) -> bytes | None:
        try:
            return (self.directory / name).read_bytes()
        except FileNotFoundError:
            return None

    def delete(self, name: str) -> None:
        (self.directory / name).unlink(missing_ok=True)


class S3Destination:
    """``s3://bucket/prefix/``: PutObject, ListObjectsV2 (s3:ListBucket), DeleteObject, and
    GetObject for readers. Calls run in the caller's thread (no transfer threads)."""

    def __init__(self, bucket: str, prefix: str, client: Any = None) -> None:
        import boto3  # noqa: PLC0415 -- only for s3:// outputs

        self.bucket = bucket
        self.prefix = prefix if prefix.endswith("/") else prefix + "/"
        self.uri = f"s3://{bucket}/{self.prefix}"
        self.client = client if client is not None else boto3.client("s3")

    def names(self) -> set[str]:
        found: set[str] = set()
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
            for entry in page.get("Contents", []):
                rest = str(entry["Key"])[len(self.prefix) :]
                if rest and "/" not in rest:
                    found.add(rest)
        return found

    def put_bytes(self, name: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self.prefix + name, Body=data)

    def put_file(self, name: str, source: Path, *, move: bool) -> None:
        from boto3.s3.transfer import TransferConfig  # noqa: PLC0415

        # One PUT up to 5 GB, multipart above; either way the object appears whole or not at all.
        config = TransferConfig(multipart_threshold=_SINGLE_PUT_BYTES, use_threads=False)
        self.client.upload_file(str(source), self.bucket, self.prefix + name, Config=config)
        if move:
            source.unlink()

    def get_bytes(self, name: str) -> bytes | None:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self.prefix + name)
        except self.client.exceptions.NoSuchKey:
            return None
        return bytes(response["Body"].read())

    def delete(self, name: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.prefix + name)


def partition_name(date: str) -> str:
    return f"date={date}"


def destination(output_uri: str, date: str, *, s3_client: Any = None) -> Destination:
    """The partition of `date` under `output_uri` (a directory, file:// or s3://bucket/prefix)."""
    name = partition_name(date)
    if output_uri.startswith("s3://"):
        bucket, _, prefix = output_uri.removeprefix("s3://").partition("/")
        if not bucket:
            raise UserError(f"output URI {output_uri!r} names no bucket (s3://BUCKET/PREFIX/)")
        prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        return S3Destination(bucket, f"{prefix}{name}/", client=s3_client)
    if "://" in output_uri and not output_uri.startswith("file://"):
        raise UserError(f"output URI {output_uri!r} is neither s3://... nor a local path")
    return LocalDestination(Path(output_uri.removeprefix("file://")) / name)


@dataclass(frozen=True)
class PartFile:
    name: str  # the published name, unique to the commit
    source: Path
    rows: int


def new_commit_id(committed_at: str) -> str:
    """Sortable and unique: 20260301T060102Z-1a2b3c4d."""
    stamp = committed_at[:19].replace("-", "").replace(":", "")
    return f"{stamp}Z-{secrets.token_hex(4)}"


def write_partition(
    target: Destination,
    *,
    parts: list[PartFile],
    drift: dict[str, Any],
    summary: dict[str, Any],
    manifest: dict[str, Any],
    move_parts: bool,
) -> list[str]:
    """Publish in the contract's order; returns the names deleted after _SUCCESS."""
    before = target.names()
    for part in parts:
        target.put_file(part.name, part.source, move=move_parts)
    target.put_bytes(DRIFT_FILE, _json(drift))
    target.put_bytes(SUMMARY_FILE, _json(summary))
    target.put_bytes(MANIFEST_FILE, _json(manifest))  # the switch
    target.put_bytes(SUCCESS_FILE, _json({"commit_id": manifest["commit_id"]}))
    keep = FIXED_FILES | {part.name for part in parts}
    retired = sorted(name for name in before if name not in keep)
    for name in retired:
        target.delete(name)
    return retired


def _json(content: object) -> bytes:
    return (json.dumps(content, indent=2) + "\n").encode("utf-8")


@dataclass(frozen=True)
class Partition:
    """What a reader following the contract sees."""

    manifest: dict[str, Any]
    table: pa.Table


def read_partition(target: Destination) -> Partition | None:
    """The committed partition by the reader's contract; None when nothing was committed."""
    for _ in range(3):
        if target.get_bytes(SUCCESS_FILE) is None:
            return None
        raw = target.get_bytes(MANIFEST_FILE)
        if raw is None:
            raise UserError(f"{target.uri} has {SUCCESS_FILE} but no {MANIFEST_FILE}")
        manifest = json.loads(raw)
        tables = []
        for part in manifest["parts"]:
            data = target.get_bytes(part["name"])
            if data is None:
                break  # replaced by a newer commit while reading: read its manifest
            table = pq.read_table(io.BytesIO(data))
            if table.num_rows != part["rows"]:
                raise UserError(
                    f"{target.uri}{part['name']}: {table.num_rows} rows, the manifest says "
                    f"{part['rows']}"
                )
            tables.append(table)
        else:
            return Partition(manifest, _concat(tables))
    raise UserError(f"{target.uri} kept changing while it was read")


def _concat(tables: Iterable[pa.Table]) -> pa.Table:
    listed = list(tables)
    if not listed:
        return pa.table({})
    return pa.concat_tables(listed, promote_options="permissive").unify_dictionaries()
