"""Training scale-out (issue 15): leader/follower hosts, tuning mode, and register_best.

Multi-instance jobs: only the leader (first of the sorted `hosts` of resourceconfig.json) trains;
followers log one line and exit 0 without touching MLflow. Tuning jobs (`register=false`) log
their run and print the objective, never register; `python -m iris_training.register_best`
gates and registers only the best job's model, against a real (SQLite) MLflow store.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from iris_training.cli import main as train_main
from iris_training.cli import objective_line
from iris_training.data import bundled_iris
from iris_training.errors import UserError
from iris_training.hosts import Cluster, read_cluster
from iris_training.hyperparameters import hyperparameter_names, parse_hyperparameters
from iris_training.register_best import main as register_main
from iris_training.tuning_contract import (
    JOB_NAME_TAG,
    OBJECTIVE_REGEX,
    REGISTER_BEST_ENTRYPOINT,
    REGISTER_HYPERPARAMETER,
    TUNABLE_CATEGORICAL,
    TUNABLE_INTEGER,
)

from tests.containers.conftest import (
    HOPELESS,
    MODEL_NAME,
    SMALL_FOREST,
    TRAINING_CODE,
    Store,
    new_store,
    run_module,
    sagemaker_tree,
)


def _resource_config(base: Path, content: object) -> Path:
    path = base / "input" / "config" / "resourceconfig.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def _env(store: Store, base: Path, **extra: str) -> dict[str, str]:
    return {**store.env(**extra), "SAGEMAKER_BASE_DIR": str(base)}


# --- leader / follower ----------------------------------------------------------------------


def test_the_leader_is_the_first_of_the_sorted_hosts_whatever_their_order() -> None:
    hosts = ("algo-3", "algo-10", "algo-1", "algo-2")
    assert {Cluster(host, hosts).leader for host in hosts} == {"algo-1"}
    assert [h for h in hosts if Cluster(h, hosts).is_leader] == ["algo-1"]
    assert Cluster("algo-1", ("algo-1",)).is_leader


def test_without_a_resource_config_the_container_is_a_single_host(tmp_path: Path) -> None:
    assert read_cluster(tmp_path / "resourceconfig.json") is None


def test_a_follower_logs_one_line_and_exits_0_without_touching_mlflow(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = sagemaker_tree(tmp_path / "opt-ml", {"n_estimators": "abc"})  # never even parsed
    _resource_config(
        base,
        {"current_host": "algo-2", "hosts": ["algo-2", "algo-1"], "network_interface_name": "eth0"},
    )
    database = tmp_path / "never-created.db"

    code = train_main(
        ["train"], {"SAGEMAKER_BASE_DIR": str(base), "MLFLOW_TRACKING_URI": f"sqlite:///{database}"}
    )

    out, err = capsys.readouterr()
    assert code == 0
    assert err == ""
    assert len(out.splitlines()) == 1, out
    assert out.rstrip().endswith(
        "host algo-2 is a follower (2 hosts): only the leader algo-1 (first of the sorted hosts) "
        "trains, logs and registers; exiting"
    )
    assert not database.exists()
    assert not (base / "model").exists()
    assert not (base / "output").exists()


@pytest.mark.slow
def test_the_leader_trains_logs_and_registers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = new_store(tmp_path / "store")
    base = sagemaker_tree(tmp_path / "opt-ml", SMALL_FOREST)
    _resource_config(base, {"current_host": "algo-1", "hosts": ["algo-2", "algo-1", "algo-3"]})

    assert train_main(["train"], _env(store, base, TRAINING_JOB_NAME="job-multi")) == 0

    evaluation = json.loads((base / "output" / "data" / "evaluation.json").read_text())
    assert evaluation["registered"] is True
    assert store.production_version() == evaluation["version"]
    out = capsys.readouterr().out
    assert "host algo-1 leads 3 hosts: it alone trains" in out
    assert "is a follower" not in out


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        "[]",
        {"hosts": ["algo-1"]},
        {"current_host": "algo-1"},
        {"current_host": "algo-1", "hosts": []},
        {"current_host": "algo-1", "hosts": "algo-1"},
        {"current_host": "algo-1", "hosts": ["algo-1", 2]},
        {"current_host": "algo-3", "hosts": ["algo-1", "algo-2"]},
        {"current_host": "", "hosts": [""]},
    ],
)
def test_a_malformed_resource_config_fails_in_one_line_before_mlflow(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: object
) -> None:
    base = sagemaker_tree(tmp_path / "opt-ml", {})
    path = _resource_config(base, content)
    database = tmp_path / "never-created.db"

    code = train_main(
        [], {"SAGEMAKER_BASE_DIR": str(base), "MLFLOW_TRACKING_URI": f"sqlite:///{database}"}
    )

    err = capsys.readouterr().err
    assert code == 1
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"error: resource config file {path} "), err
    assert err.rstrip().endswith(
        'expected a JSON object with "current_host" (a host name) and "hosts" (a non-empty '
        "list of host names that includes current_host)"
    )
    assert not database.exists()


# --- the tuning contract --------------------------------------------------------------------


def test_the_contract_names_hyperparameters_the_container_knows() -> None:
    known = set(hyperparameter_names())
    assert {REGISTER_HYPERPARAMETER, *TUNABLE_INTEGER, *TUNABLE_CATEGORICAL} <= known
    assert REGISTER_BEST_ENTRYPOINT == ("python", "-m", "iris_training.register_best")


@pytest.mark.parametrize("accuracy", [0.0, 1.0, 0.9666666666666667, 1e-7])
def test_the_objective_line_is_what_the_tuning_regex_reads(accuracy: float) -> None:
    match = re.search(OBJECTIVE_REGEX, objective_line(accuracy))
    assert match is not None
    assert float(match.group(1)) == pytest.approx(accuracy, abs=5e-7)


@pytest.mark.parametrize(
    ("raw", "expected"), [("true", True), ("false", False), ('"false"', False), (None, True)]
)
def test_register_is_true_or_false(raw: str | None, expected: bool) -> None:
    parsed = parse_hyperparameters({} if raw is None else {REGISTER_HYPERPARAMETER: raw})
    assert parsed.registers is expected


@pytest.mark.parametrize("raw", ["yes", "1", "True", "FALSE", "", True])
def test_register_refuses_anything_but_true_or_false(raw: object) -> None:
    with pytest.raises(UserError) as caught:
        parse_hyperparameters({REGISTER_HYPERPARAMETER: raw})
    assert str(caught.value) == f"hyperparameter register={raw!r} is not one of true, false"


# --- tuning jobs, then register_best --------------------------------------------------------


def _tuning_job(
    store: Store,
    root: Path,
    job: str,
    hyperparameters: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> tuple[dict[str, object], float]:
    """One training job of a tuning step: its evaluation.json and the objective it printed."""
    base = sagemaker_tree(root / job, {**hyperparameters, REGISTER_HYPERPARAMETER: "false"})
    code = train_main(["train"], _env(store, base, TRAINING_JOB_NAME=job))
    out = capsys.readouterr().out
    assert code == 0, (base / "output" / "failure").read_text()
    objectives = [float(m.group(1)) for m in re.finditer(OBJECTIVE_REGEX, out)]
    assert len(objectives) == 1, out
    return json.loads((base / "output" / "data" / "evaluation.json").read_text()), objectives[0]


def _register_best(
    store: Store, base: Path, job: str, min_accuracy: str = "0.85", **env: str
) -> tuple[int, dict[str, object] | None]:
    code = register_main(
        ["--training-job-name", job, "--min-accuracy", min_accuracy], _env(store, base, **env)
    )
    path = base / "output" / "data" / "evaluation.json"
    return code, json.loads(path.read_text()) if path.exists() else None


@pytest.mark.slow
def test_tuning_jobs_register_nothing_and_register_best_gates_the_best(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = new_store(tmp_path / "store")
    client = store.client()
    jobs = {
        "tune-001": {**SMALL_FOREST, "max_depth": "2"},
        "tune-002": {**SMALL_FOREST, "criterion": "entropy", "random_state": "7"},
        "tune-003": HOPELESS,
    }

    # 1. Three tuning jobs: each logs its run, tagged with its job, prints its objective.
    results = {job: _tuning_job(store, tmp_path, job, hp, capsys) for job, hp in jobs.items()}
    for job, (evaluation, objective) in results.items():
        assert objective == pytest.approx(evaluation["accuracy"], abs=5e-7)
        assert evaluation["registered"] is False
        assert evaluation["version"] is None
        assert evaluation["gate"] is None
        assert evaluation["training_job_name"] == job
        run = client.get_run(str(evaluation["run_id"]))
        assert run.data.tags[JOB_NAME_TAG] == job
        assert run.data.params[REGISTER_HYPERPARAMETER] == "false"
    assert client.search_registered_models() == []  # nothing registered, no alias

    # 2. register_best of the best job: re-evaluated on the same rows, registered, promoted.
    best = max(results, key=lambda job: float(results[job][1]))
    code, decision = _register_best(
        store, tmp_path / "register-1", best, PIPELINE_EXECUTION_ID="exec-9"
    )
    out = capsys.readouterr().out
    assert code == 0
    assert decision is not None
    assert decision["gate"]["decision"] == "promoted"  # type: ignore[index]
    assert decision["accuracy"] == pytest.approx(results[best][0]["accuracy"])
    assert decision["run_id"] == results[best][0]["run_id"]
    assert json.loads(out.splitlines()[-1]) == decision  # also on stdout, for the job's log
    version = str(decision["version"])
    assert store.production_version() == version
    tags = store.version_tags(version)
    assert tags[JOB_NAME_TAG] == best
    assert tags["gate.decision"] == "promoted"
    assert tags["data.sha256"] == bundled_iris().sha256
    assert tags["pipeline.execution_id"] == "exec-9"
    assert client.get_run(str(decision["run_id"])).data.tags["gate.decision"] == "promoted"

    # 3. A retried step registers no second version.
    code, again = _register_best(store, tmp_path / "register-2", best)
    assert code == 0
    assert again is not None
    assert again["version"] == version
    assert len(client.search_model_versions(f"name='{MODEL_NAME}'")) == 1

    # 4. A worse "best" job is refused by the gate: below min_accuracy, then worse than the
    # champion on the same held-out rows; the alias stays.
    code, refused = _register_best(store, tmp_path / "register-3", "tune-003")
    assert code == 0
    assert refused is not None
    assert refused["gate"]["decision"] == "rejected"  # type: ignore[index]
    assert "below min_accuracy 0.8500" in refused["gate"]["reason"]  # type: ignore[index]
    assert refused["alias"] is None
    code, worse = _register_best(store, tmp_path / "register-4", "tune-003", min_accuracy="0")
    assert worse is not None
    gate = worse["gate"]
    assert gate["decision"] == "rejected"  # type: ignore[index]
    assert f"worse than production version {version}" in gate["reason"]  # type: ignore[index]
    assert gate["champion_accuracy"] == pytest.approx(results[best][0]["accuracy"])  # type: ignore[index]
    assert store.production_version() == version


@pytest.mark.slow
def test_register_best_needs_exactly_one_run_of_the_job(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = new_store(tmp_path / "store")
    for attempt in ("a", "b"):  # two runs claim the same job
        _tuning_job(store, tmp_path / attempt, "tune-dup", SMALL_FOREST, capsys)

    none_code, none_written = _register_best(store, tmp_path / "r1", "tune-none")
    none_err = capsys.readouterr().err
    dup_code, _ = _register_best(store, tmp_path / "r2", "tune-dup")
    dup_err = capsys.readouterr().err

    assert (none_code, none_written) == (1, None)
    assert none_err == (
        "error: no MLflow run in experiment 'iris-tests' tagged "
        "sagemaker.training_job_name=tune-none: nothing to register for training job tune-none\n"
    )
    assert dup_code == 1
    assert len(dup_err.splitlines()) == 1, dup_err
    assert dup_err.startswith(
        "error: 2 MLflow runs in experiment 'iris-tests' tagged "
        "sagemaker.training_job_name=tune-dup ("
    )
    assert "expected exactly one for training job tune-dup" in dup_err
    assert store.client().search_registered_models() == []


@pytest.mark.slow
def test_register_best_refuses_other_data_than_the_run_trained_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = new_store(tmp_path / "store")
    _tuning_job(store, tmp_path, "tune-data", SMALL_FOREST, capsys)
    other = tmp_path / "other-data"
    other.mkdir()
    iris = bundled_iris()
    frame = iris.features.copy()
    frame["species"] = iris.labels
    (other / "iris.csv").write_text(frame.iloc[::2].to_csv(index=False))  # half the rows

    code = register_main(
        ["--training-job-name", "tune-data", "--min-accuracy", "0.5", "--data-dir", str(other)],
        _env(store, tmp_path / "register"),
    )

    err = capsys.readouterr().err
    assert code == 1
    assert len(err.splitlines()) == 1, err
    assert "is not the data training job tune-data trained on" in err
    assert store.client().search_registered_models() == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--training-job-name", "bad name", "--min-accuracy", "0.9"],
            "error: --training-job-name 'bad name' is not a SageMaker training job name",
        ),
        (
            ["--training-job-name", "job-1", "--min-accuracy", "1.5"],
            "error: --min-accuracy '1.5' is not a number between 0 and 1",
        ),
        (
            ["--training-job-name", "job-1", "--min-accuracy", "nan"],
            "error: --min-accuracy 'nan' is not a number between 0 and 1",
        ),
    ],
)
def test_register_best_refuses_bad_arguments_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    database = tmp_path / "never-created.db"
    env = {"SAGEMAKER_BASE_DIR": str(tmp_path), "MLFLOW_TRACKING_URI": f"sqlite:///{database}"}
    assert register_main(args, env) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1, err
    assert err.startswith(message), err
    assert not database.exists()


def test_register_best_command_line_as_the_processing_job_starts_it(tmp_path: Path) -> None:
    """REGISTER_BEST_ENTRYPOINT in a fresh interpreter: a bad value is one line, no traceback."""
    _, _, module = REGISTER_BEST_ENTRYPOINT
    env = {"SAGEMAKER_BASE_DIR": str(tmp_path), "MLFLOW_TRACKING_URI": "sqlite://"}
    failed = run_module(
        module, ["--training-job-name", "job-1", "--min-accuracy", "x"], env, TRAINING_CODE
    )
    assert failed.returncode == 1
    assert failed.stderr.splitlines() == [
        "error: --min-accuracy 'x' is not a number between 0 and 1"
    ]
