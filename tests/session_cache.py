"""A directory shared by every process of one test session (the xdist workers included).

tests/conftest.py creates it when the session starts, hands it to each worker and removes it
at the end. :func:`computed` stores JSON results under a key, so work that depends only on
its input (linting one distinct template) runs once per session, whichever worker needs it
first; the others wait for it (a file lock) and read the result.

:func:`remembered` also keeps a result for later sessions, in pytest's own cache directory
(``.pytest_cache/d/``, emptied by ``pytest --cache-clear`` and ``make clean``; nowhere under
``-p no:cacheprovider``): for a pure function of its key, a linter's findings on one template
with the linter's version and settings in the key, so a run after a change lints only the
templates the change touched.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tools.json_files import write_json_atomically

_directory: Path | None = None
_kept: Path | None = None


def use(directory: str) -> None:
    global _directory  # noqa: PLW0603 -- set once per process by tests/conftest.py
    _directory = Path(directory)
    _directory.mkdir(parents=True, exist_ok=True)


def keep_in(directory: Path | None) -> None:
    """Where :func:`remembered` keeps results between sessions (None: only for this one)."""
    global _kept  # noqa: PLW0603 -- set once per process by tests/conftest.py
    _kept = directory


def kept_directory(namespace: str) -> Path | None:
    """A folder kept between sessions for ``namespace``'s results, if there is a place."""
    if _kept is None:
        return None
    folder = _kept / namespace
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def directory() -> Path:
    if _directory is None:
        raise RuntimeError("the session cache is set up by tests/conftest.py (pytest_configure)")
    return _directory


def computed(namespace: str, key: str, compute: Callable[[], Any]) -> Any:
    """``compute()`` once per session for ``key`` (any string), across processes."""
    result = _entry(directory(), namespace, key)
    with result.with_suffix(".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if result.exists():
            return json.loads(result.read_text())
        value = compute()
        put(namespace, key, value)
        return value


def remembered(namespace: str, key: str, compute: Callable[[], Any]) -> Any:
    """:func:`computed`, and kept for later sessions (see the module's doc): ``key`` must name
    everything the result depends on."""
    entry = _entry(_kept, namespace, key) if _kept is not None else None
    if entry is not None and entry.exists():
        return json.loads(entry.read_text())
    value = computed(namespace, key, compute)
    if entry is not None:
        write_json_atomically(entry, value)
    return value


def put(namespace: str, key: str, value: Any) -> None:
    """Store ``value`` under ``key`` for the other processes (replacing what is there);
    nothing outside a test session (a tool that imports the tests' helpers)."""
    if _directory is None:
        return
    write_json_atomically(_entry(_directory, namespace, key), value)


def get(namespace: str, key: str) -> Any | None:
    """What some process :func:`put` under ``key`` so far, else None (also outside a session)."""
    if _directory is None:
        return None
    result = _entry(_directory, namespace, key)
    return json.loads(result.read_text()) if result.exists() else None


def _entry(root: Path, namespace: str, key: str) -> Path:
    """The JSON file that holds ``key``'s value in ``namespace`` (named by the key's digest)."""
    folder = root / namespace
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{hashlib.sha256(key.encode()).hexdigest()}.json"
