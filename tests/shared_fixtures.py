"""Fixtures wider than a test (module, class, package or session scope), under pytest-xdist.

A wide fixture is built once per *process*. With ``--dist loadgroup`` two workers each build it
when its tests are split between them: `app.py` run twice (6 s of CPU each), the containers'
champion model trained twice. So (tests/conftest.py):

- :func:`fixture_group` names the group an otherwise ungrouped test joins, that of the widest
  such fixture it uses (:func:`widest_fixture_of`), so all its users share one worker;
- :func:`spread_fixtures` is the whole-class check: a wide fixture whose users fall in more than
  one group (each of which may run in its own worker) fails the session before any test runs.

Fixtures defined outside ``tests/`` (pytest's, plugins') and autouse ones (every worker runs
them by design) are out of scope. So are fixtures that only ``after_groups`` tests use: those
run last and ungrouped on purpose, and share their work through
:func:`tests.session_cache.computed` instead.

This reads two private pytest attributes, ``Item._fixtureinfo`` and ``FixtureDef._autouse``
(pytest is pinned in requirements-dev.txt). A pytest that moves them would group nothing, or
group every test by an autouse fixture, without a word here: tests/unit/test_shared_fixtures.py
checks both on a small suite, so an upgrade that breaks them fails there.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import Any

import pytest

# Widest first: a test that uses a session fixture and a module one is grouped by the session
# fixture, whose users span more modules.
_SCOPE_ORDER = ("session", "package", "module", "class")
_TESTS = "tests"


def _is_ours(fixturedef: Any) -> bool:
    baseid: str = getattr(fixturedef, "baseid", "")
    return baseid == _TESTS or baseid.startswith(_TESTS + "/")


def _instance_owner(item: pytest.Item, scope: str, defined_in: str) -> str:
    """The node one instance of a fixture of ``scope`` belongs to, for ``item``: pytest builds a
    module-scoped fixture once per module that uses it, even one defined in a conftest."""
    module = item.nodeid.split("::")[0]
    if scope == "module":
        return module
    if scope == "class" and getattr(item, "cls", None) is not None and item.parent is not None:
        return item.parent.nodeid
    return defined_in


def _wide_fixtures(item: pytest.Item) -> Iterator[tuple[int, str]]:
    """(scope rank, key) of each wide fixture ``item`` uses. The key names one instance: the
    module or class it is built for, and a parametrized fixture's parameter."""
    info = getattr(item, "_fixtureinfo", None)
    definitions: dict[str, Any] = getattr(info, "name2fixturedefs", {})
    params: dict[str, Any] = getattr(getattr(item, "callspec", None), "params", {})
    for name in getattr(item, "fixturenames", ()):
        if not definitions.get(name):
            continue
        fixturedef = definitions[name][-1]  # the closest definition is the one that applies
        scope = getattr(fixturedef, "scope", "function")
        if scope not in _SCOPE_ORDER or getattr(fixturedef, "_autouse", False):
            continue
        if not _is_ours(fixturedef):
            continue
        key = f"{_instance_owner(item, scope, fixturedef.baseid)}::{name}"
        if name in params:
            key += f"[{params[name]!r}]"
        yield _SCOPE_ORDER.index(scope), key


def widest_fixture_of(item: pytest.Item) -> str | None:
    """The key of the widest fixture ``item`` uses (ties: by name), or None if it uses none."""
    wide = sorted(_wide_fixtures(item))
    return wide[0][1] if wide else None


def fixture_group(item: pytest.Item) -> str | None:
    """The xdist group an otherwise ungrouped ``item`` joins: its widest fixture's, if any."""
    wide = widest_fixture_of(item)
    return None if wide is None else f"fixture-{wide}"


def group_of_item(item: pytest.Item) -> str:
    """The xdist group ``item`` runs in; a test outside any group is a group of its own."""
    marker = item.get_closest_marker("xdist_group")
    if marker is None:
        return f"(ungrouped) {item.nodeid}"
    name = marker.args[0] if marker.args else marker.kwargs.get("name", "")
    return str(name)


def spread_fixtures(items: Iterable[pytest.Item]) -> dict[str, list[str]]:
    """{fixture key: the groups its users fall in} for each wide fixture of ours whose users
    fall in more than one group, not counting tests marked ``after_groups``."""
    groups: defaultdict[str, set[str]] = defaultdict(set)
    for item in items:
        if item.get_closest_marker("after_groups"):
            continue
        for _, key in _wide_fixtures(item):
            groups[key].add(group_of_item(item))
    return {key: sorted(found) for key, found in sorted(groups.items()) if len(found) > 1}


def describe(spread: dict[str, list[str]]) -> str:
    """One message for :func:`spread_fixtures`'s findings."""
    lines = [
        f"{len(spread)} wide fixture(s) would be built in more than one xdist worker: each is "
        "used by tests in several groups (see tests/shared_fixtures.py)"
    ]
    for key, found in spread.items():
        shown = ", ".join(found[:3]) + (f" and {len(found) - 3} more" if len(found) > 3 else "")
        lines.append(f"  {key}: {shown}")
    return "\n".join(lines)
