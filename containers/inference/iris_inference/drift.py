"""Drift report: each scored batch against the training data's reference profile.

The training container stores `extra_files/reference_profile.json` in the MLflow model
directory (`iris_training.profile`): per feature, quantile bin edges of the training data and
the share of its rows in each bin. Here the scored rows are counted into the same bins chunk by
chunk (memory does not grow with the rows), and each feature gets a population stability index

    PSI = sum over bins of (batch share - reference share) * ln(batch share / reference share)

with shares floored at 1e-4 so an empty bin stays finite. Rules of thumb: < 0.1 stable,
0.1-0.2 moderate shift, > 0.2 (the default threshold) a shift worth a look. Drift never fails
the job: features above the threshold are flagged in drift.json, summary.json and MLflow.
"""

from __future__ import annotations

import json
import logging
import math
import re
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from iris_inference.errors import UserError

log = logging.getLogger("iris_inference")

PROFILE_DIR = "extra_files"  # inside the MLflow model directory
PROFILE_PATH = f"{PROFILE_DIR}/reference_profile.json"
PROFILE_FORMAT = "iris-reference-profile/v1"
DRIFT_FILE = "drift.json"
STATE_FORMAT = "iris-drift-counts/v1"  # a shard's drift counts (DriftAccumulator.state)
# One MLflow run per scored partition, in its own experiment: training runs stay a record of
# training, and the runs of this experiment chart drift.psi.<feature> day by day.
INFERENCE_EXPERIMENT = "iris-inference"
_FLOOR = 1e-4  # smallest share used in PSI: an empty bin costs a bounded amount

# drift.json "status": whether PSI could be computed.
OK = "ok"
NO_PROFILE = "no reference profile"
INVALID_PROFILE = "invalid reference profile"
NO_ROWS = "no rows"


class ModelIdentity(Protocol):
    """The model version a partition was scored with (model.ProductionModel, commit.ModelRef)."""

    @property
    def name(self) -> str: ...
    @property
    def alias(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def run_id(self) -> str: ...


@dataclass(frozen=True)
class FeatureReference:
    edges: np.ndarray  # (bins - 1,) increasing cut points
    proportions: np.ndarray  # (bins,) reference share of rows per bin
    stats: dict[str, float]  # count, mean, std, min, max of the training data


@dataclass(frozen=True)
class ReferenceProfile:
    features: dict[str, FeatureReference]
    rows: int
    data: dict[str, str]  # source and sha256 of the training data


@dataclass(frozen=True)
class ProfileLookup:
    """The reference profile of a model version, or why there is none."""

    profile: ReferenceProfile | None
    status: str  # OK, NO_PROFILE or INVALID_PROFILE
    reason: str | None = None


def load_reference_profile(model_uri: str) -> ProfileLookup:
    """The profile stored with `models:/NAME/VERSION`; older versions have none (not an error)."""
    # MLflow is imported where it is used: the commit step merges shard counts without it.
    from mlflow.exceptions import MlflowException  # noqa: PLC0415
    from mlflow.store.artifact.artifact_repository_registry import (  # noqa: PLC0415
        get_artifact_repository,
    )

    try:
        repository = get_artifact_repository(model_uri)
        listed = {entry.path for entry in repository.list_artifacts(PROFILE_DIR)}
        if PROFILE_PATH not in listed:
            return ProfileLookup(None, NO_PROFILE, f"{model_uri} has no {PROFILE_PATH}")
        with tempfile.TemporaryDirectory(prefix="iris-profile-") as scratch:
            local = repository.download_artifacts(PROFILE_PATH, scratch)  # type: ignore[no-untyped-call]
            text = Path(local).read_text(encoding="utf-8")
    except MlflowException as err:  # an outage, not a missing profile: same as loading the model
        first_line = (err.message or str(err)).strip().splitlines()[0]
        raise UserError(f"reading {PROFILE_PATH} of {model_uri} failed: {first_line}") from err
    try:
        return ProfileLookup(parse_profile(json.loads(text)), OK)
    except (ValueError, TypeError, KeyError) as err:  # JSONDecodeError is a ValueError
        return ProfileLookup(None, INVALID_PROFILE, f"{model_uri} {PROFILE_PATH}: {err}")


def parse_profile(raw: Any) -> ReferenceProfile:
    if not isinstance(raw, dict) or raw.get("format") != PROFILE_FORMAT:
        found = raw.get("format") if isinstance(raw, dict) else type(raw).__name__
        raise ValueError(f"format is {found!r}, expected {PROFILE_FORMAT!r}")
    features = {}
    for name, entry in dict(raw["features"]).items():
        edges = np.asarray(entry["edges"], dtype=np.float64)
        proportions = np.asarray(entry["proportions"], dtype=np.float64)
        if edges.ndim != 1 or proportions.shape != (len(edges) + 1,):
            raise ValueError(f"feature {name}: {len(edges)} edges need {len(edges) + 1} shares")
        if np.any(np.diff(edges) <= 0) or not np.all(np.isfinite(edges)):
            raise ValueError(f"feature {name}: edges are not finite and increasing")
        stats = {key: float(entry[key]) for key in ("mean", "std", "min", "max")}
        stats = {"count": int(entry["count"]), **stats}
        features[str(name)] = FeatureReference(edges, proportions, stats)
    return ReferenceProfile(features, int(raw["rows"]), dict(raw.get("data", {})))


def profile_document(profile: ReferenceProfile) -> dict[str, Any]:
    """`profile` as reference_profile.json holds it (parse_profile reads it back unchanged)."""
    return {
        "format": PROFILE_FORMAT,
        "rows": profile.rows,
        "data": profile.data,
        "features": {
            name: {
                "edges": ref.edges.tolist(),
                "proportions": ref.proportions.tolist(),
                **ref.stats,
            }
            for name, ref in profile.features.items()
        },
    }


def psi(reference: np.ndarray, observed_counts: np.ndarray) -> float:
    """Population stability index of observed counts against reference shares, same bins."""
    expected = np.maximum(reference, _FLOOR)
    actual = np.maximum(observed_counts / max(int(observed_counts.sum()), 1), _FLOOR)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


class DriftAccumulator:
    """Per-feature bin counts and moments of every scored chunk; O(features x bins) memory."""

    def __init__(self, features: Sequence[str], lookup: ProfileLookup) -> None:
        self.features = tuple(features)
        self.lookup = lookup
        profile = lookup.profile
        self._references = [profile.features.get(f) if profile else None for f in self.features]
        self._counts = [
            np.zeros(len(ref.proportions), dtype=np.int64) if ref is not None else None
            for ref in self._references
        ]
        width = len(self.features)
        self.rows = 0
        self._sum = np.zeros(width)
        self._sum_sq = np.zeros(width)
        self._min = np.full(width, np.inf)
        self._max = np.full(width, -np.inf)

    def add(self, chunk: np.ndarray) -> None:
        """Count one (rows, features) chunk, columns in `features` order."""
        rows = chunk.shape[0]
        if rows == 0:
            return
        self.rows += rows
        # One column at a time over a contiguous copy: ~10x faster than reducing over axis 0
        # of the row-major chunk, and than searchsorted + bincount (see _bin_counts).
        for column, values in enumerate(np.ascontiguousarray(chunk.T)):
            self._sum[column] += values.sum()
            self._sum_sq[column] += np.einsum("i,i->", values, values)  # no BLAS threads
            self._min[column] = min(self._min[column], values.min())
            self._max[column] = max(self._max[column], values.max())
            reference, counts = self._references[column], self._counts[column]
            if reference is not None and counts is not None:
                counts += _bin_counts(values, reference.edges)

    def state(self) -> dict[str, Any]:
        """What a shard keeps of this accumulator (its drift counts): per feature the rows per
        bin of the training reference's edges, and the moments. Summing states over shards
        (`merged`) gives the counts of the whole day, so the PSI of the merge is the PSI of all
        rows, not an average of per-shard PSIs."""
        profile = self.lookup.profile
        finite = self.rows > 0
        return {
            "format": STATE_FORMAT,
            "features": list(self.features),
            "status": self.lookup.status,
            "reason": self.lookup.reason,
            "profile": profile_document(profile) if profile is not None else None,
            "rows": self.rows,
            "sum": self._sum.tolist(),
            "sum_sq": self._sum_sq.tolist(),
            "min": self._min.tolist() if finite else None,
            "max": self._max.tolist() if finite else None,
            "counts": [c.tolist() if c is not None else None for c in self._counts],
        }

    @classmethod
    def merged(cls, states: Sequence[Mapping[str, Any]]) -> DriftAccumulator:
        """One accumulator holding the sum of shard states that share features and profile."""
        if not states:
            raise ValueError("no drift counts to merge")
        first = states[0]
        for index, other in enumerate(states):
            if other.get("format") != STATE_FORMAT:
                raise UserError(f"drift counts #{index}: format {other.get('format')!r}, "
                                f"expected {STATE_FORMAT!r}")  # fmt: skip
            for key in ("features", "status", "profile"):
                if other[key] != first[key]:
                    raise UserError(
                        f"drift counts disagree on {key}: every shard must bin on the same "
                        "training reference profile"
                    )
        raw = first["profile"]
        lookup = ProfileLookup(
            parse_profile(raw) if raw is not None else None, first["status"], first["reason"]
        )
        merged = cls(first["features"], lookup)
        for state in states:
            if state["rows"] == 0:
                continue
            merged.rows += int(state["rows"])
            merged._sum += np.asarray(state["sum"], dtype=np.float64)
            merged._sum_sq += np.asarray(state["sum_sq"], dtype=np.float64)
            merged._min = np.minimum(merged._min, np.asarray(state["min"], dtype=np.float64))
            merged._max = np.maximum(merged._max, np.asarray(state["max"], dtype=np.float64))
            for total, shard in zip(merged._counts, state["counts"], strict=True):
                if total is not None and shard is not None:
                    np.add(total, np.asarray(shard, dtype=np.int64), out=total)
        return merged

    def report(self, threshold: float) -> dict[str, Any]:
        """drift.json: status, threshold, flagged features and per-feature statistics."""
        status, reason = self.lookup.status, self.lookup.reason
        if status == OK and self.rows == 0:
            status, reason = NO_ROWS, "nothing was scored"
        features: dict[str, Any] = {}
        scores: dict[str, float] = {}
        for column, name in enumerate(self.features):
            reference, counts = self._references[column], self._counts[column]
            entry: dict[str, Any] = {"batch": self._batch_stats(column), "psi": None}
            if reference is not None and counts is not None:
                entry["reference"] = reference.stats
                entry["bins"] = {
                    "edges": reference.edges.tolist(),
                    "reference": reference.proportions.round(6).tolist(),
                    "batch_counts": counts.tolist(),
                }
                if status == OK:
                    scores[name] = entry["psi"] = round(psi(reference.proportions, counts), 6)
            elif status == OK:
                entry["note"] = "not in the reference profile"
            features[name] = entry
        above = sorted((n for n, v in scores.items() if v > threshold), key=lambda n: -scores[n])
        profile = self.lookup.profile
        return {
            "status": status,
            "reason": reason,
            "method": "population stability index over the training data's quantile bins",
            "threshold": threshold,
            "flagged": bool(above),
            "features_above_threshold": above,
            "max_psi": max(scores.values()) if scores else None,
            "rows": self.rows,
            "reference": {"rows": profile.rows, "data": profile.data} if profile else None,
            "features": features,
        }

    def _batch_stats(self, column: int) -> dict[str, float | int | None]:
        if self.rows == 0:
            return {"count": 0, "mean": None, "std": None, "min": None, "max": None}
        mean = self._sum[column] / self.rows
        variance = max(self._sum_sq[column] / self.rows - mean * mean, 0.0)
        return {
            "count": self.rows,
            "mean": float(mean),
            "std": math.sqrt(variance),
            "min": float(self._min[column]),
            "max": float(self._max[column]),
        }


def _bin_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Rows per bin, bin i holding edges[i-1] <= x < edges[i] (searchsorted side="right").

    With a handful of edges, one vectorised comparison per edge beats a binary search per row.
    """
    at_or_above = [np.count_nonzero(values >= edge) for edge in edges]
    cumulative = np.array([values.size, *at_or_above, 0], dtype=np.int64)
    return cumulative[:-1] - cumulative[1:]


def summary_entry(report: Mapping[str, Any], partition: str) -> dict[str, Any]:
    """What summary.json carries of the report."""
    return {
        "status": report["status"],
        "flagged": report["flagged"],
        "features_above_threshold": report["features_above_threshold"],
        "threshold": report["threshold"],
        "max_psi": report["max_psi"],
        "report": f"{partition}/{DRIFT_FILE}",
    }


def psi_metrics(report: Mapping[str, Any]) -> dict[str, float]:
    """MLflow metrics `drift.psi.<feature>` (names restricted to MLflow's metric alphabet)."""
    return {
        "drift.psi." + re.sub(r"[^A-Za-z0-9_.-]+", "_", name): float(entry["psi"])
        for name, entry in report["features"].items()
        if entry["psi"] is not None
    }


@contextmanager
def inference_run(
    report: dict[str, Any], *, model: ModelIdentity, date: str, partition: str
) -> Iterator[str]:
    """An MLflow run in the `iris-inference` experiment holding the report; yields its id.

    The caller publishes the partition inside the block: a failed publish ends the run FAILED.
    """
    import mlflow  # noqa: PLC0415

    experiment = mlflow.set_experiment(INFERENCE_EXPERIMENT)
    tags = {
        "inference.date": date,
        "inference.partition": partition,
        "model.name": model.name,
        "model.alias": model.alias,
        "model.version": model.version,
        "model.run_id": model.run_id,
        "drift.status": str(report["status"]),
        "drift.flagged": str(report["flagged"]).lower(),
    }
    with mlflow.start_run(run_name=f"inference-{date}", tags=tags) as run:
        report["mlflow"] = {"experiment": INFERENCE_EXPERIMENT, "run_id": run.info.run_id}
        mlflow.log_metrics(
            {
                **psi_metrics(report),
                "rows": float(report["rows"]),
                "drift.features_above_threshold": float(len(report["features_above_threshold"])),
            }
        )
        mlflow.log_param("drift.threshold", report["threshold"])
        mlflow.log_dict(report, DRIFT_FILE)
        log.info(
            "mlflow: run %s in experiment %r (%s)", run.info.run_id, experiment.name, DRIFT_FILE
        )
        yield run.info.run_id
