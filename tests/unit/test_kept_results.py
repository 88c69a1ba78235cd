"""Results kept between test sessions: used only for exactly the input that produced them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests import session_cache
from tools import checkov_report
from tools.checkov_report import KeptResults, run_checkov


@pytest.fixture
def kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Results kept in a pytest cache directory of this test's own (the real session's set-up
    is restored afterwards)."""
    monkeypatch.setattr(session_cache, "_directory", None)
    monkeypatch.setattr(session_cache, "_kept", None)
    session_cache.keep_in(tmp_path / "pytest-cache")
    return tmp_path / "pytest-cache"


def _new_session(kept: Path, name: str) -> None:
    session_cache.use(str(kept.parent / name))


def test_a_remembered_value_is_computed_once_across_sessions(kept: Path) -> None:
    calls: list[str] = []

    def lint(text: str) -> Any:
        calls.append(text)
        return [f"finding on {text}"]

    _new_session(kept, "first")
    assert session_cache.remembered("lint", "v1\0a", lambda: lint("a")) == ["finding on a"]
    _new_session(kept, "second")
    assert session_cache.remembered("lint", "v1\0a", lambda: lint("a")) == ["finding on a"]
    assert calls == ["a"]
    # Anything else in the key (another version, another text) is computed.
    session_cache.remembered("lint", "v2\0a", lambda: lint("a"))
    session_cache.remembered("lint", "v1\0b", lambda: lint("b"))
    assert calls == ["a", "a", "b"]


def test_without_pytest_s_cache_nothing_outlives_the_session(kept: Path) -> None:
    session_cache.keep_in(None)  # -p no:cacheprovider
    calls: list[int] = []
    for name in ("first", "second"):
        _new_session(kept, name)
        session_cache.remembered("lint", "key", lambda: calls.append(1))
    assert calls == [1, 1]
    assert session_cache.kept_directory("lint") is None


# --- checkov: a template's results, kept per template text and checkov version -----------------

FINDING = {"check_id": "CKV_AWS_1", "resource": "AWS::S3::Bucket.B", "check_name": "n"}


def _templates(directory: Path, **texts: str) -> Path:
    directory.mkdir()
    for stem, text in texts.items():
        (directory / f"{stem}.json").write_text(text)
    return directory


def test_kept_checkov_results_answer_only_the_same_text_and_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kept = KeptResults(tmp_path)
    results = {"failed_checks": [FINDING], "skipped_checks": []}
    kept.put('{"Resources": {}}', results)
    assert kept.get('{"Resources": {}}') == results
    assert kept.get('{"Resources": {"B": {}}}') is None
    monkeypatch.setattr(checkov_report, "checkov_version", lambda: "0.0.1")
    assert kept.get('{"Resources": {}}') is None


def test_run_checkov_scans_only_the_templates_it_has_no_results_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kept = KeptResults(tmp_path / "kept")
    kept.directory.mkdir()
    kept.put("old text", {"failed_checks": [], "skipped_checks": [{**FINDING, "file_path": "/x"}]})
    scanned: list[list[str]] = []

    def scan(directory: Path, templates: list[Path], processes: int) -> dict[str, Any]:
        scanned.append([t.name for t in templates])
        return {"failed_checks": [{**FINDING, "file_path": "/v--new.json"}], "skipped_checks": []}

    monkeypatch.setattr(checkov_report, "_scan_in_processes", scan)
    directory = _templates(tmp_path / "scan", **{"v--old": "old text", "v--new": "new text"})
    result = run_checkov(directory, processes=2, kept=kept)["results"]

    assert scanned == [["v--new.json"]]
    # Kept results are named after the file that has that text in this scan.
    assert result["skipped_checks"] == [{**FINDING, "file_path": "/v--old.json"}]
    assert result["failed_checks"] == [{**FINDING, "file_path": "/v--new.json"}]
    assert kept.get("new text") == {
        "failed_checks": [{**FINDING, "file_path": "/v--new.json"}],
        "skipped_checks": [],
    }
    # A second run scans nothing.
    again = run_checkov(_templates(tmp_path / "again", **{"w--new": "new text"}), kept=kept)
    assert scanned == [["v--new.json"]]
    assert again["results"]["failed_checks"] == [{**FINDING, "file_path": "/w--new.json"}]


def test_a_failing_checkov_process_is_reported_after_the_others_finish(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The caller deletes the scanned directory once run_checkov raises: no checkov process
    may still be reading it then."""
    finished = tmp_path / "second-share-finished"

    def command(share: Path) -> list[str]:
        if share.name == "share-0":
            return ["/bin/sh", "-c", "echo 'checkov broke' >&2; exit 2"]
        return ["/bin/sh", "-c", f"sleep 0.3; touch {finished}; echo '{{}}'"]

    monkeypatch.setattr(checkov_report, "_checkov_command", command)
    directory = _templates(tmp_path / "scan", **{"a--x": "{}", "b--y": "{}"})
    with pytest.raises(RuntimeError, match="checkov exited 2: checkov broke"):
        run_checkov(directory, processes=2)
    assert finished.exists()
