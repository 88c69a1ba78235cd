"""The drift report: the training data's reference profile against each scored batch."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import iris_inference.commit
import mlflow
import mlflow.sklearn
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from iris_inference.cli import main
from iris_inference.drift import (
    INFERENCE_EXPERIMENT,
    NO_PROFILE,
    OK,
    PROFILE_PATH,
    DriftAccumulator,
    ProfileLookup,
    parse_profile,
    psi,
)
from iris_inference.errors import UserError
from iris_inference.settings import load_settings
from iris_inference.sources import CANONICAL_FEATURES, generated_batches
from iris_training.data import bundled_iris
from iris_training.profile import reference_profile
from sklearn.tree import DecisionTreeClassifier

from tests.containers.conftest import EXPERIMENT, Store, TrainingRun

DATE = "2026-03-01"
HEADER = ",".join(CANONICAL_FEATURES) + "\n"


def _iris_profile() -> ProfileLookup:
    """What training stores for the bundled Iris, read back the way inference reads it."""
    iris = bundled_iris()
    raw = reference_profile(iris.features, source=iris.source, sha256=iris.sha256)
    return ProfileLookup(parse_profile(json.loads(json.dumps(raw))), OK)


def _generated(rows: int, seed: int = 1) -> np.ndarray:
    batches = generated_batches(rows=rows, seed=seed, chunk_rows=rows, features=CANONICAL_FEATURES)
    return np.concatenate([b.features for b in batches])


def _report(rows: np.ndarray, lookup: ProfileLookup, chunk: int = 1000) -> dict[str, Any]:
    drift = DriftAccumulator(CANONICAL_FEATURES, lookup)
    for start in range(0, len(rows), chunk):
        drift.add(rows[start : start + chunk])
    return drift.report(0.2)


# --- PSI on the profile training writes --------------------------------------------------------


def test_rows_from_the_training_distribution_do_not_drift() -> None:
    report = _report(_generated(20_000), _iris_profile())

    assert report["status"] == OK
    assert report["flagged"] is False
    assert report["features_above_threshold"] == []
    assert all(0 <= f["psi"] < 0.1 for f in report["features"].values()), report["max_psi"]
    assert report["rows"] == report["features"]["petal_length"]["batch"]["count"] == 20_000


def test_a_shifted_feature_is_flagged_and_named() -> None:
    rows = _generated(20_000)
    rows[:, CANONICAL_FEATURES.index("petal_length")] += 1.5

    report = _report(rows, _iris_profile())

    assert report["flagged"] is True
    assert report["features_above_threshold"] == ["petal_length"]
    assert report["features"]["petal_length"]["psi"] > 1.0
    assert report["max_psi"] == report["features"]["petal_length"]["psi"]
    assert report["features"]["sepal_width"]["psi"] < 0.1


def test_chunk_size_does_not_change_the_report() -> None:
    rows = _generated(5_000)
    whole, small = _report(rows, _iris_profile(), 5_000), _report(rows, _iris_profile(), 7)
    for name in CANONICAL_FEATURES:
        assert whole["features"][name]["bins"] == small["features"][name]["bins"]
        assert whole["features"][name]["psi"] == small["features"][name]["psi"]
        batch = small["features"][name]["batch"]
        assert batch["mean"] == pytest.approx(rows[:, CANONICAL_FEATURES.index(name)].mean())
        assert batch["std"] == pytest.approx(rows[:, CANONICAL_FEATURES.index(name)].std())


def test_psi_is_zero_for_the_reference_shares_and_grows_with_the_shift() -> None:
    reference = np.array([0.25, 0.25, 0.5])
    assert psi(reference, np.array([25, 25, 50])) == pytest.approx(0.0)
    assert 0 < psi(reference, np.array([30, 25, 45])) < psi(reference, np.array([60, 20, 20]))
    assert np.isfinite(psi(reference, np.array([0, 0, 100])))  # an empty bin stays finite


def test_without_a_profile_the_report_says_so_and_flags_nothing() -> None:
    report = _report(_generated(100), ProfileLookup(None, NO_PROFILE, "models:/m/1 has none"))

    assert report["status"] == NO_PROFILE
    assert report["reason"] == "models:/m/1 has none"
    assert report["flagged"] is False
    assert report["max_psi"] is None
    assert all(f["psi"] is None for f in report["features"].values())
    assert report["features"]["sepal_length"]["batch"]["count"] == 100


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ({"format": "something-else/v9"}, "format is 'something-else/v9'"),
        (
            {
                "format": "iris-reference-profile/v1",
                "rows": 1,
                "features": {"x": {"edges": [2.0, 1.0], "proportions": [0.3, 0.3, 0.4]}},
            },
            "feature x: edges are not finite and increasing",
        ),
        (
            {
                "format": "iris-reference-profile/v1",
                "rows": 1,
                "features": {"x": {"edges": [1.0], "proportions": [1.0]}},
            },
            "feature x: 1 edges need 2 shares",
        ),
    ],
)
def test_an_invalid_profile_is_named(raw: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_profile(raw)


# --- the threshold setting ---------------------------------------------------------------------


@pytest.mark.parametrize("value", ["0", "-0.1", "101", "nan", "inf", "high"])
def test_a_bad_drift_threshold_is_one_line_naming_it(value: str) -> None:
    with pytest.raises(UserError) as caught:
        load_settings(["--drift-threshold", value], {"MLFLOW_TRACKING_URI": "sqlite://"})
    assert str(caught.value) == (
        f"setting --drift-threshold/DRIFT_THRESHOLD={value!r} is not a number greater than 0 "
        "and at most 100 (PSI; 0.2 is the usual alarm level)"
    )


def test_drift_threshold_from_the_environment_or_the_default() -> None:
    env = {"MLFLOW_TRACKING_URI": "sqlite://"}
    assert load_settings([], env).drift_threshold == 0.2
    assert load_settings([], {**env, "DRIFT_THRESHOLD": "0.5"}).drift_threshold == 0.5


# --- the entry point: drift.json, summary.json and the MLflow run ----------------------------


def _score(store: Store, tmp_path: Path, *args: str) -> tuple[int, Path]:
    output = tmp_path / "output"
    argv = ["--input-dir", str(tmp_path / "input"), "--output-dir", str(output), "--date", DATE]
    return main([*argv, *args], store.env()), output / f"date={DATE}"


def _read(folder: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    summary = json.loads((folder / "summary.json").read_text())
    return json.loads((folder / "drift.json").read_text()), summary


@pytest.mark.slow
def test_training_stores_the_profile_with_the_model(champion: tuple[Store, TrainingRun]) -> None:
    store, run = champion
    saved = run.base / "model" / "mlflow-model" / PROFILE_PATH
    registered = mlflow.artifacts.download_artifacts(
        artifact_uri=f"models:/iris-model/{store.production_version()}/{PROFILE_PATH}",
        tracking_uri=store.tracking_uri,
    )
    for path in (saved, Path(registered)):
        profile = parse_profile(json.loads(path.read_text()))
        assert set(profile.features) == set(CANONICAL_FEATURES)
        assert profile.rows == 150
        assert profile.data["sha256"] == run.evaluation["data"]["sha256"]


@pytest.mark.slow
def test_a_drifted_file_is_flagged_next_to_its_predictions_and_in_mlflow(
    champion: tuple[Store, TrainingRun], tmp_path: Path
) -> None:
    store, _ = champion
    rows = pd.DataFrame(_generated(3_000, seed=5), columns=list(CANONICAL_FEATURES))
    rows["petal_length"] += 1.5
    (tmp_path / "input").mkdir()
    rows.to_csv(tmp_path / "input" / "day.csv", index=False)

    code, folder = _score(store, tmp_path, "--chunk-rows", "700", "--drift-threshold", "0.3")

    assert code == 0  # drift flags, it never fails the job
    report, summary = _read(folder)
    assert report["status"] == OK
    assert report["features_above_threshold"] == ["petal_length"]
    assert report["threshold"] == 0.3
    assert report["rows"] == summary["rows"] == 3_000
    assert summary["drift"] == {
        "status": OK,
        "flagged": True,
        "features_above_threshold": ["petal_length"],
        "threshold": 0.3,
        "max_psi": report["features"]["petal_length"]["psi"],
        "report": f"date={DATE}/drift.json",
        "mlflow_run_id": report["mlflow"]["run_id"],
    }
    client = store.client()
    logged = client.get_run(report["mlflow"]["run_id"])
    experiment = client.get_experiment(logged.info.experiment_id)
    assert experiment.name == INFERENCE_EXPERIMENT
    assert logged.info.status == "FINISHED"
    assert logged.data.metrics["drift.psi.petal_length"] == pytest.approx(
        report["features"]["petal_length"]["psi"]
    )
    assert {f"drift.psi.{name}" for name in CANONICAL_FEATURES} <= set(logged.data.metrics)
    assert logged.data.tags["model.version"] == summary["model"]["version"]
    assert logged.data.tags["drift.flagged"] == "true"
    assert [a.path for a in client.list_artifacts(logged.info.run_id)] == ["drift.json"]


@pytest.mark.slow
def test_a_model_version_without_a_profile_is_scored_with_no_psi(
    champion: tuple[Store, TrainingRun], tmp_path: Path
) -> None:
    """Versions trained before the profile existed still score; the report says why no PSI."""
    store, _ = champion
    iris = bundled_iris()
    legacy = DecisionTreeClassifier(max_depth=2).fit(iris.features, iris.labels)
    mlflow.set_tracking_uri(store.tracking_uri)
    client = store.client()
    experiment = client.get_experiment_by_name(EXPERIMENT)
    assert experiment is not None
    with mlflow.start_run(experiment_id=experiment.experiment_id):
        info = mlflow.sklearn.log_model(
            legacy,
            name="model",
            registered_model_name="legacy",
            skops_trusted_types=["sklearn.tree._tree.Tree"],
            # Given, not inferred: inference loads the model in a subprocess (~4 s).
            pip_requirements=["scikit-learn"],
        )
    client.set_registered_model_alias("legacy", "production", info.registered_model_version)

    code, folder = _score(store, tmp_path, "--model-name", "legacy", "--generate-rows", "50")

    assert code == 0
    report, summary = _read(folder)
    assert report["status"] == summary["drift"]["status"] == NO_PROFILE
    assert report["reason"] == f"models:/legacy/1 has no {PROFILE_PATH}"
    assert summary["drift"]["flagged"] is False
    assert report["features"]["petal_width"]["batch"]["count"] == 50
    logged = client.get_run(summary["drift"]["mlflow_run_id"])
    assert not [m for m in logged.data.metrics if m.startswith("drift.psi.")]
    assert logged.data.tags["drift.status"] == NO_PROFILE


@pytest.mark.slow
def test_a_failed_publish_leaves_no_drift_report_and_a_failed_run(
    champion: tuple[Store, TrainingRun], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, _ = champion
    previous = tmp_path / "output" / f"date={DATE}"
    previous.mkdir(parents=True)
    (previous / "predictions.parquet").write_text("the previous run's output")
    staged: list[dict[str, Any]] = []

    def fail_publish(target: object, **content: Any) -> list[str]:
        staged.append(content["drift"])
        raise OSError("disk full")

    monkeypatch.setattr(iris_inference.commit, "write_partition", fail_publish)
    code, folder = _score(store, tmp_path, "--generate-rows", "20")

    assert code == 1
    assert len(staged) == 1 and staged[0]["rows"] == 20
    assert sorted(p.name for p in (tmp_path / "output").iterdir()) == [f"date={DATE}"]
    assert sorted(p.name for p in folder.iterdir()) == ["predictions.parquet"]
    client = store.client()
    experiment = client.get_experiment_by_name(INFERENCE_EXPERIMENT)
    assert experiment is not None
    runs = client.search_runs(
        [experiment.experiment_id], order_by=["attributes.start_time DESC"], max_results=1
    )
    assert runs[0].info.status == "FAILED"


# --- shards: counts summed over shards give the PSI of all rows (never an average) ------------


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.integers(min_value=1, max_value=400),
    seed=st.integers(min_value=0, max_value=2**16),
    cuts=st.lists(st.floats(min_value=0, max_value=1), max_size=4),
    shift=st.floats(min_value=-2, max_value=2),
)
def test_psi_of_summed_shard_counts_is_the_psi_of_all_rows_in_one_pass(
    rows: int, seed: int, cuts: list[float], shift: float
) -> None:
    lookup = _iris_profile()
    data = _generated(rows, seed)
    data[:, 2] += shift  # some drift on petal_length, so PSIs differ from zero
    whole = DriftAccumulator(CANONICAL_FEATURES, lookup)
    whole.add(data)
    # Any split into consecutive shards (an empty shard included), each binned on the
    # reference edges, its state through JSON as the commit reads it.
    bounds = [0, *sorted(int(c * rows) for c in cuts), rows]
    states = []
    for start, end in itertools.pairwise(bounds):
        shard = DriftAccumulator(CANONICAL_FEATURES, lookup)
        shard.add(data[start:end])
        states.append(json.loads(json.dumps(shard.state())))
    merged = DriftAccumulator.merged(states).report(0.2)
    single = whole.report(0.2)
    for name in CANONICAL_FEATURES:
        one, many = single["features"][name], merged["features"][name]
        assert many["psi"] == one["psi"]
        assert many["bins"] == one["bins"]
        assert many["batch"]["count"] == one["batch"]["count"] == rows
        assert many["batch"]["min"] == one["batch"]["min"]
        assert many["batch"]["max"] == one["batch"]["max"]
        assert many["batch"]["mean"] == pytest.approx(one["batch"]["mean"], rel=1e-9)
    assert merged["flagged"] == single["flagged"]
    assert merged["features_above_threshold"] == single["features_above_threshold"]
    # An average of per-shard PSIs would not do: it is not the PSI of the day.


def test_shards_binned_on_different_profiles_are_refused() -> None:
    lookup = _iris_profile()
    other = DriftAccumulator(CANONICAL_FEATURES, ProfileLookup(None, NO_PROFILE, "none"))
    shard = DriftAccumulator(CANONICAL_FEATURES, lookup)
    with pytest.raises(UserError, match="drift counts disagree on status"):
        DriftAccumulator.merged([shard.state(), other.state()])
