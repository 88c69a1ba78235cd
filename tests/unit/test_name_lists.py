"""Each list of names the checks and tools iterate over has one home.

- The environments: cdk.json, read through tools/cdk_json.py (``ENVIRONMENTS``).
- The values of each settings choice (a ``Literal`` alias in mlops_cdk.settings: the tracking
  modes, the egress modes, the interface endpoints): that alias, through ``get_args`` (for the
  tracking modes, ``TRACKING_MODES``).

A copy written out anywhere else (a test's parameters, a tool's loop, the Makefile's synth)
goes stale without a sound when a name is added: the new environment or mode is then
synthesized, linted, snapshotted or costed nowhere, and every check still passes.
"""

from __future__ import annotations

import ast
import importlib
import json
import pkgutil
import re
from pathlib import Path
from typing import Literal, get_args, get_origin

from mlops_cdk import settings
from tools.cdk_json import ENVIRONMENTS, ROOT

PYTHON_ROOTS = ("mlops_cdk", "tools", "tests", "benchmarks", "containers", "lambda", "local")
# Files other than Python that could list names for a loop or a matrix.
OTHER_FILES = (
    "Makefile",
    ".ci/run",
    *sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / ".github").glob("**/*.yml")),
)


def settings_choices() -> dict[frozenset[str], str]:
    """The values of every ``Literal`` alias in mlops_cdk.settings, to where it is defined."""
    found: dict[frozenset[str], str] = {}
    for info in sorted(pkgutil.iter_modules(settings.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{settings.__name__}.{info.name}")
        for name, value in vars(module).items():
            if get_origin(value) is Literal and len(get_args(value)) > 1:
                found.setdefault(frozenset(get_args(value)), f"mlops_cdk.settings {name}")
    return found


def name_lists() -> dict[frozenset[str], str]:
    """Each list of names with one home, to that home."""
    return {
        frozenset(ENVIRONMENTS): "cdk.json (tools.cdk_json.ENVIRONMENTS)",
        **settings_choices(),
    }


def python_sources() -> list[Path]:
    return sorted(
        {*ROOT.glob("*.py"), *(p for top in PYTHON_ROOTS for p in (ROOT / top).rglob("*.py"))}
    )


def written_out(path: Path, lists: dict[frozenset[str], str]) -> list[str]:
    """``path:line (home)`` for each list, tuple or set literal holding every name of a list,
    other than a ``Literal[...]`` alias's own values."""
    tree = ast.parse(path.read_text(), filename=str(path))
    definitions = {
        id(node.slice)
        for node in ast.walk(tree)
        if isinstance(node, ast.Subscript)
        and (
            getattr(node.value, "id", None) == "Literal"
            or getattr(node.value, "attr", None) == "Literal"
        )
    }
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.List | ast.Tuple | ast.Set) or id(node) in definitions:
            continue
        strings = {
            e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)
        }
        found += [
            f"{path.relative_to(ROOT)}:{node.lineno} ({home})"
            for names, home in lists.items()
            if names <= strings
        ]
    return found


def test_every_list_has_names_to_find() -> None:
    # A list of one name would match every literal naming it: nothing to check.
    lists = name_lists()
    assert all(len(names) > 1 for names in lists), lists
    assert "mlops_cdk.settings TrackingMode" in lists.values(), lists


def test_no_python_module_writes_out_a_list_that_has_a_home() -> None:
    lists = name_lists()
    found = [where for path in python_sources() for where in written_out(path, lists)]
    assert not found, f"lists written out where they have a home: {'; '.join(found)}"


def test_no_makefile_script_or_workflow_writes_one_out() -> None:
    lists = name_lists()
    found = [
        f"{name}:{number} ({home})"
        for name in OTHER_FILES
        if (ROOT / name).is_file()
        for number, line in enumerate((ROOT / name).read_text().splitlines(), start=1)
        for names, home in lists.items()
        if names <= set(re.findall(r"[\w-]+", line))
    ]
    assert not found, (
        f"lists written out where they have a home: {'; '.join(found)} "
        "(`python3 -m tools.cdk_json` prints the environment names)"
    )


def test_the_environments_are_cdk_jsons_in_its_order() -> None:
    configured = json.loads((ROOT / "cdk.json").read_text())["context"]["environments"]
    assert list(ENVIRONMENTS) == list(configured)
