"""The training container: hyperparameters, data, the quality gate, and what lands in MLflow."""

from __future__ import annotations

from pathlib import Path

import pytest
from iris_training.cli import main
from iris_training.data import bundled_iris, load_dataset
from iris_training.errors import UserError
from iris_training.gate import SPECIES, Champion, ClassCoverage, decide
from iris_training.hyperparameters import Hyperparameters, parse_hyperparameters
from mlflow.exceptions import MlflowException

from tests.containers.conftest import (
    HOPELESS,
    SMALL_FOREST,
    TRAINING_CODE,
    Store,
    TrainingRun,
    new_store,
    run_module,
    sagemaker_tree,
    train,
)

IRIS_HEADER = "sepal_length,sepal_width,petal_length,petal_width,species\n"


# --- hyperparameters ------------------------------------------------------------------------


def test_sagemaker_string_hyperparameters_are_typed() -> None:
    parsed = parse_hyperparameters(
        {
            "n_estimators": "25",
            "max_depth": "none",
            "min_samples_leaf": "2",
            "max_features": '"log2"',  # the SDK's framework estimators JSON-encode strings
            "criterion": "entropy",
            "random_state": "7",
            "split_random_state": "8",
            "test_size": "0.3",
            "min_accuracy": "0.5",
            "sagemaker_program": "ignored",  # added by the platform, not ours to validate
        }
    )
    assert parsed == Hyperparameters(
        n_estimators=25,
        max_depth=None,
        min_samples_leaf=2,
        max_features="log2",
        criterion="entropy",
        random_state=7,
        split_random_state=8,
        test_size=0.3,
        min_accuracy=0.5,
    )


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"n_estimators": "abc"}, "hyperparameter n_estimators='abc' is not an integer between 1"),
        ({"n_estimators": True}, "hyperparameter n_estimators=True is not an integer"),
        ({"max_depth": "0"}, "hyperparameter max_depth='0' is not an integer between 1 and 100"),
        ({"test_size": "1"}, "hyperparameter test_size='1' is not a number strictly between 0"),
        ({"min_accuracy": "nan"}, "hyperparameter min_accuracy='nan' is not a number between"),
        ({"max_features": "auto"}, "hyperparameter max_features='auto' is not one of sqrt, log2"),
        ({"n_trees": "5"}, "hyperparameter n_trees='5' is not a known hyperparameter (known: "),
    ],
)
def test_a_bad_hyperparameter_is_named_with_what_is_allowed(
    raw: dict[str, object], message: str
) -> None:
    with pytest.raises(UserError) as caught:
        parse_hyperparameters(raw)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_bad_hyperparameter_fails_the_job_in_one_line_without_touching_mlflow(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = sagemaker_tree(tmp_path / "opt-ml", {"n_estimators": "abc", "test_size": "2"})
    database = tmp_path / "never-created.db"
    code = main(
        ["train"], {"SAGEMAKER_BASE_DIR": str(base), "MLFLOW_TRACKING_URI": f"sqlite:///{database}"}
    )

    expected = (
        "error: hyperparameter n_estimators='abc' is not an integer between 1 and 2000; "
        "hyperparameter test_size='2' is not a number strictly between 0 and 1"
    )
    assert code == 1
    assert capsys.readouterr().err == expected + "\n"
    assert TrainingRun(code, base).failure == expected + "\n"  # SageMaker's FailureReason
    assert not database.exists()
    assert not (base / "model").exists()


def test_missing_tracking_uri_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = sagemaker_tree(tmp_path / "opt-ml")
    assert main([], {"SAGEMAKER_BASE_DIR": str(base)}) == 1
    assert capsys.readouterr().err == (
        "error: setting MLFLOW_TRACKING_URI is not set "
        "(expected an MLflow tracking URI or SageMaker MLflow ARN)\n"
    )


def test_hyperparameters_file_that_is_not_json_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = sagemaker_tree(tmp_path / "opt-ml")
    config = base / "input" / "config" / "hyperparameters.json"
    config.write_text("{n_estimators: 5")
    assert main([], {"SAGEMAKER_BASE_DIR": str(base), "MLFLOW_TRACKING_URI": "sqlite://"}) == 1
    assert capsys.readouterr().err.startswith(f"error: hyperparameters file {config} is not valid")


def test_command_line_contract_as_sagemaker_starts_it(tmp_path: Path) -> None:
    """`docker run IMAGE train`: a bad value exits 1 with one line and no traceback."""
    base = sagemaker_tree(tmp_path / "opt-ml", {"max_depth": "-3"})
    env = {"SAGEMAKER_BASE_DIR": str(base), "MLFLOW_TRACKING_URI": "sqlite://"}

    failed = run_module("iris_training", ["train"], env, TRAINING_CODE)
    unknown = run_module("iris_training", ["serve"], env, TRAINING_CODE)

    assert failed.returncode == 1
    assert failed.stderr.splitlines() == [
        "error: hyperparameter max_depth='-3' is not an integer between 1 and 100, "
        "or 'none' for unlimited"
    ]
    assert unknown.returncode == 2  # only `train` is a command
    assert "invalid choice: 'serve'" in unknown.stderr


# --- data -----------------------------------------------------------------------------------


def test_train_channel_csv_replaces_the_bundled_copy(tmp_path: Path) -> None:
    bundled = bundled_iris()
    # scikit-learn's own column spelling is accepted too.
    frame = bundled.features.rename(columns=lambda c: c.replace("_", " ").title() + " (cm)")
    frame["species"] = bundled.labels
    (tmp_path / "part-1.csv").write_text(frame.iloc[:75].to_csv(index=False))
    (tmp_path / "part-2.csv").write_text(frame.iloc[75:].to_csv(index=False))

    loaded = load_dataset(tmp_path)

    assert loaded.rows == 150
    assert loaded.source == "train channel (part-1.csv, part-2.csv)"
    assert loaded.sha256 == bundled.sha256  # the hash follows the rows, not the files


def test_without_a_channel_the_bundled_iris_is_used(tmp_path: Path) -> None:
    loaded = load_dataset(tmp_path / "absent")
    assert loaded.rows == 150
    assert sorted(loaded.labels.unique()) == ["setosa", "versicolor", "virginica"]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (
            IRIS_HEADER + "5.1,3.5,1.4,0.2,setosa\n4.9,abc,1.4,0.2,setosa\n",
            "line 3: sepal_width='abc' is not a finite number",
        ),
        (IRIS_HEADER + "5.1,3.5,1.4,,setosa\n", "line 2: petal_width is empty"),
        (IRIS_HEADER + "5.1,3.5,1.4,0.2,\n", "line 2: species is empty"),
        (
            "sepal_length,sepal_width,species\n5.1,3.5,setosa\n",
            "lacks column(s) petal_length, petal_width",
        ),
        (
            IRIS_HEADER + "5.1,3.5,1.4,0.2,setosa,extra,fields\n",
            "line 2: 7 fields, the header has 5",
        ),
        (
            IRIS_HEADER + "5.1,3.5,1.4,0.2,setosa\n\n4.9,3.0,1.4,x,setosa\n",
            "line 4: petal_width='x' is not a finite number",
        ),  # blank lines still count
        ("", "is empty"),
    ],
)
def test_malformed_train_csv_is_named_with_the_line(
    tmp_path: Path, content: str, problem: str
) -> None:
    (tmp_path / "iris.csv").write_text(content)
    with pytest.raises(UserError) as caught:
        load_dataset(tmp_path)
    assert str(caught.value).startswith(f"train channel file {tmp_path / 'iris.csv'}")
    assert problem in str(caught.value)


def test_an_empty_train_channel_is_an_error_not_a_silent_fallback(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"exists but holds no \.csv file"):
        load_dataset(tmp_path)


@pytest.mark.slow
def test_malformed_channel_fails_the_job_before_mlflow(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = sagemaker_tree(tmp_path / "opt-ml", {}, IRIS_HEADER + "1,2,3,x,setosa\n")
    database = tmp_path / "never-created.db"
    code = main(
        [], {"SAGEMAKER_BASE_DIR": str(base), "MLFLOW_TRACKING_URI": f"sqlite:///{database}"}
    )
    channel_file = base / "input" / "data" / "train" / "iris.csv"
    expected = (
        f"error: train channel file {channel_file} line 2: petal_width='x' is not a finite number"
    )
    assert code == 1
    assert capsys.readouterr().err.splitlines()[-1] == expected
    assert TrainingRun(code, base).failure == expected + "\n"
    assert not database.exists()


# --- the gate's rules -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("challenger", "champion", "promote", "reason"),
    [
        (0.80, None, False, "is below min_accuracy 0.9000"),
        (0.95, None, True, "there is no production version yet"),
        (0.95, Champion("3", 0.97), False, "worse than production version 3's 0.9700"),
        (0.97, Champion("3", 0.97), True, ">= production version 3's 0.9700"),
        (0.99, Champion("3", 0.97), True, ">= production version 3's 0.9700"),
        (0.99, Champion("3", None, "OSError: gone"), False, "could not be scored"),
        (0.80, Champion("3", 0.50), False, "is below min_accuracy 0.9000"),
    ],
)
def test_gate_rules(
    challenger: float, champion: Champion | None, promote: bool, reason: str
) -> None:
    decision = decide(
        challenger_accuracy=challenger,
        min_accuracy=0.9,
        champion=champion,
        classes=ClassCoverage(train=SPECIES, evaluation=SPECIES, model=SPECIES),
    )
    assert decision.promote is promote
    assert reason in decision.reason
    assert decision.tags()["gate.decision"] == ("promoted" if promote else "rejected")


# --- training against a real MLflow store ---------------------------------------------------


@pytest.mark.slow
def test_first_version_is_logged_registered_and_promoted(
    champion: tuple[Store, TrainingRun],
) -> None:
    store, run = champion
    evaluation = run.evaluation
    version = evaluation["version"]
    tags = store.version_tags(version)
    client = store.client()
    mlflow_run = client.get_run(evaluation["run_id"])
    artifacts = {a.path for a in client.list_artifacts(evaluation["run_id"], "plots")}

    assert store.production_version() == version
    assert evaluation["gate"]["decision"] == "promoted"
    assert tags["gate.decision"] == "promoted"
    assert float(tags["gate.challenger_accuracy"]) == pytest.approx(evaluation["accuracy"])
    assert tags["data.sha256"] == bundled_iris().sha256
    assert tags["pipeline.execution_id"] == "pipeline-exec-0001"
    assert mlflow_run.data.metrics["accuracy"] == pytest.approx(evaluation["accuracy"])
    assert {"macro_f1", "f1_setosa", "recall_versicolor", "precision_virginica"} <= set(
        mlflow_run.data.metrics
    )
    assert mlflow_run.data.params["n_estimators"] == SMALL_FOREST["n_estimators"]
    assert artifacts == {"plots/confusion_matrix.png", "plots/feature_importance.png"}
    # The model also goes to /opt/ml/model (SageMaker's model.tar.gz), with its signature.
    mlmodel = (run.base / "model" / "mlflow-model" / "MLmodel").read_text()
    assert "signature:" in mlmodel
    assert "skops" in mlmodel


@pytest.mark.slow
def test_gate_refuses_a_challenger_below_min_accuracy(
    champion: tuple[Store, TrainingRun], tmp_path: Path
) -> None:
    store, _ = champion
    before = store.production_version()

    run = train(store, tmp_path / "opt-ml", HOPELESS)

    tags = store.version_tags(run.evaluation["version"])
    assert run.exit_code == 0  # a refused challenger is a normal outcome, not a failed job
    assert store.production_version() == before
    assert tags["gate.decision"] == "rejected"
    assert "below min_accuracy 0.8500" in tags["gate.reason"]
    assert run.evaluation["accuracy"] < 0.85


@pytest.mark.slow
def test_gate_refuses_a_challenger_worse_than_the_champion_on_the_same_rows(
    champion: tuple[Store, TrainingRun], tmp_path: Path
) -> None:
    store, champion_run = champion
    before = store.production_version()

    run = train(store, tmp_path / "opt-ml", {**HOPELESS, "min_accuracy": "0"})

    tags = store.version_tags(run.evaluation["version"])
    assert store.production_version() == before
    assert tags["gate.decision"] == "rejected"
    assert tags["gate.champion_version"] == before
    assert "worse than production version" in tags["gate.reason"]
    # Same data and split seed: the champion scores what it scored when it was the challenger.
    assert float(tags["gate.champion_accuracy"]) == pytest.approx(
        champion_run.evaluation["accuracy"]
    )
    assert float(tags["gate.challenger_accuracy"]) < float(tags["gate.champion_accuracy"])


@pytest.mark.slow
def test_gate_refuses_when_the_champion_cannot_be_scored(
    champion: tuple[Store, TrainingRun], tmp_path: Path
) -> None:
    store, _ = champion
    client = store.client()
    # A production version whose artifacts are gone (an empty directory, no MLmodel).
    client.create_registered_model("broken-model")
    (tmp_path / "gone").mkdir()
    broken = client.create_model_version("broken-model", (tmp_path / "gone").as_uri())
    client.set_registered_model_alias("broken-model", "production", broken.version)

    run = train(store, tmp_path / "opt-ml", SMALL_FOREST, MODEL_NAME="broken-model")

    tags = dict(client.get_model_version("broken-model", run.evaluation["version"]).tags)
    production = client.get_model_version_by_alias("broken-model", "production").version
    assert run.exit_code == 0
    assert production == broken.version
    assert tags["gate.decision"] == "rejected"
    assert f"production version {broken.version} could not be scored" in tags["gate.reason"]
    assert "gate.champion_error" in tags
    assert run.evaluation["gate"]["champion_accuracy"] is None


# --- the gate judges what production serves (issue 13) --------------------------------------


def _iris_csv(
    *, species: tuple[str, ...] = ("setosa", "versicolor", "virginica"), prefix: str = ""
) -> str:
    """The bundled Iris as a train-channel CSV, keeping only `species`, labels prefixed."""
    bundled = bundled_iris()
    frame = bundled.features.copy()
    frame["species"] = [prefix + label for label in bundled.labels]
    keep = bundled.labels.isin(species).to_numpy()
    return str(frame[keep].to_csv(index=False))


def _train_on(store: Store, base: Path, csv_text: str, **hyperparameters: str) -> TrainingRun:
    channel = base / "input" / "data" / "train"
    channel.mkdir(parents=True, exist_ok=True)
    (channel / "iris.csv").write_text(csv_text)
    return train(store, base, {**SMALL_FOREST, **hyperparameters})


@pytest.mark.slow
def test_a_model_trained_on_one_class_is_never_promoted_without_a_champion(
    tmp_path: Path,
) -> None:
    store = new_store(tmp_path / "store")

    run = _train_on(store, tmp_path / "opt-ml", _iris_csv(species=("setosa",)))

    assert run.exit_code == 0, run.failure  # registered and rejected, a normal outcome
    assert run.evaluation["gate"]["decision"] == "rejected"
    assert "lacks class(es) versicolor, virginica" in run.evaluation["gate"]["reason"]
    assert run.evaluation["alias"] is None
    with pytest.raises(MlflowException):
        store.production_version()


@pytest.mark.slow
def test_a_model_trained_on_one_class_is_never_promoted_over_a_champion(
    champion: tuple[Store, TrainingRun], tmp_path: Path
) -> None:
    store, _ = champion
    before = store.production_version()

    run = _train_on(store, tmp_path / "opt-ml", _iris_csv(species=("setosa",)))

    assert run.evaluation["gate"]["decision"] == "rejected"
    assert store.production_version() == before


@pytest.mark.slow
def test_labels_spelled_differently_from_production_are_rejected(
    champion: tuple[Store, TrainingRun], tmp_path: Path
) -> None:
    store, _ = champion
    before = store.production_version()

    run = _train_on(store, tmp_path / "opt-ml", _iris_csv(prefix="Iris-"))

    reason = run.evaluation["gate"]["reason"]
    assert run.evaluation["gate"]["decision"] == "rejected"
    assert store.production_version() == before
    assert "unexpected Iris-setosa, Iris-versicolor, Iris-virginica" in reason
    assert "setosa, versicolor, virginica" in reason


EXPECTED = SPECIES


@pytest.mark.parametrize(
    ("labels", "champion", "promote", "reason"),
    [
        # (training classes, held-out classes, challenger's classes)
        (
            (("setosa",), ("setosa",), ("setosa",)),
            None,
            False,
            "lacks class(es) versicolor, virginica",
        ),
        (
            (EXPECTED, ("setosa", "virginica"), EXPECTED),
            None,
            False,
            "held-out set lacks class(es) versicolor",
        ),
        (
            (("Iris-setosa", "Iris-versicolor", "Iris-virginica"),) * 3,
            Champion("3", 0.0, classes=EXPECTED),
            False,
            "unexpected Iris-setosa",
        ),
        (
            (EXPECTED,) * 3,
            Champion("3", 0.5, classes=("a", "b", "c")),
            False,
            "production version 3 predicts a, b, c",
        ),
        ((EXPECTED,) * 3, Champion("3", 0.97, classes=EXPECTED), True, ">= production version 3's"),
        ((EXPECTED,) * 3, None, True, "no production version yet"),
    ],
)
def test_gate_rejects_challengers_that_do_not_serve_the_production_labels(
    labels: tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]],
    champion: Champion | None,
    promote: bool,
    reason: str,
) -> None:
    train_classes, eval_classes, model_classes = labels
    decision = decide(
        challenger_accuracy=1.0,
        min_accuracy=0.9,
        champion=champion,
        classes=ClassCoverage(train=train_classes, evaluation=eval_classes, model=model_classes),
    )
    assert decision.promote is promote, decision.reason
    assert reason in decision.reason


# --- data the training reader must refuse or accept (issue 13) ------------------------------


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (IRIS_HEADER, "holds no data row (header only)"),
        (IRIS_HEADER + "\n\n", "holds no data row (header only)"),
        (
            "sepal_length,sepal_width,petal_length,petal_width,Sepal Length (cm),species\n"
            "1,2,3,4,5,setosa\n",
            "column sepal_length appears twice (as sepal_length, Sepal Length (cm))",
        ),
        (
            "species,sepal_length,sepal_width,petal_length,petal_width,Species\n"
            "setosa,1,2,3,4,virginica\n",
            "column species appears twice (as species, Species)",
        ),
        (
            IRIS_HEADER + "True,3.5,1.4,0.2,setosa\n",
            "line 2: sepal_length='True' is not a finite number",
        ),
        (
            IRIS_HEADER + "5.1,inf,1.4,0.2,setosa\n",
            "line 2: sepal_width='inf' is not a finite number",
        ),
        (
            IRIS_HEADER + "2026-01-01T00:00:00,3.5,1.4,0.2,setosa\n",
            "line 2: sepal_length='2026-01-01T00:00:00' is not a finite number",
        ),
    ],
)
def test_train_csv_header_only_duplicates_and_non_numbers_are_refused(
    tmp_path: Path, content: str, problem: str
) -> None:
    (tmp_path / "iris.csv").write_text(content)
    with pytest.raises(UserError) as caught:
        load_dataset(tmp_path)
    assert str(caught.value) == f"train channel file {tmp_path / 'iris.csv'} {problem}"


def test_header_only_parts_beside_data_are_skipped(tmp_path: Path) -> None:
    (tmp_path / "part-0.csv").write_text(IRIS_HEADER)
    (tmp_path / "part-1.csv").write_text(_iris_csv())
    assert load_dataset(tmp_path).rows == 150


def test_train_csv_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    (tmp_path / "iris.csv").write_bytes(("\ufeff" + _iris_csv()).encode("utf-8"))
    assert load_dataset(tmp_path).sha256 == bundled_iris().sha256


@pytest.mark.parametrize("blocked", ["model", "output"])
def test_an_unwritable_model_or_output_directory_fails_in_one_line_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], blocked: str
) -> None:
    base = sagemaker_tree(tmp_path / "opt-ml", {})
    (base / blocked).write_text("a file where SageMaker's directory should be")
    database = tmp_path / "never-created.db"

    code = main(
        [], {"SAGEMAKER_BASE_DIR": str(base), "MLFLOW_TRACKING_URI": f"sqlite:///{database}"}
    )

    err = capsys.readouterr().err
    assert code == 1
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"error: {blocked} directory {base / blocked}"), err
    assert "is not writable" in err
    assert not database.exists()
