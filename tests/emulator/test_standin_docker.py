"""The stand-in docker's build check (no emulator needed): a context without a file its
Dockerfile copies fails the build, as ``docker build`` would."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.emulator import standin_docker


@pytest.fixture
def context(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EMULATOR_DOCKER_STATE", str(tmp_path / "state"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "training").mkdir()
    (tmp_path / "training" / "Dockerfile").write_text(
        "FROM python:3.11.14-slim\nCOPY training/requirements.txt .\n"
        "COPY --chown=0:0 shared/mlops_runtime ./mlops_runtime\n"
        "COPY --from=builder /x /x\n"
    )
    return tmp_path


def test_build_needs_every_copied_file(context: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["build", "--tag", "cdkasset-1", "--file", "training/Dockerfile", "."]
    assert standin_docker.main(args) == 1
    assert "['training/requirements.txt', 'shared/mlops_runtime']" in capsys.readouterr().err
    (context / "training" / "requirements.txt").write_text("")
    (context / "shared" / "mlops_runtime").mkdir(parents=True)
    assert standin_docker.main(args) == 0
    assert standin_docker.main(["inspect", "cdkasset-1"]) == 0
