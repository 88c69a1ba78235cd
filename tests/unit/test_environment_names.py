"""The environment names have one home: cdk.json, read through tools/cdk_json.py.

A list of them spelled out anywhere else (a test's parameters, a tool's loop, the Makefile's
synth) goes stale without a sound when an environment is added to cdk.json: the new one is
then synthesized, linted, snapshotted or costed nowhere, and every check still passes.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tools.cdk_json import ENVIRONMENTS, ROOT

PYTHON_ROOTS = ("mlops_cdk", "tools", "tests", "benchmarks", "containers", "lambda", "local")
# Files other than Python that list environments for a loop or a matrix.
OTHER_FILES = (
    "Makefile",
    ".ci/run",
    *sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / ".github").glob("**/*.yml")),
)


def python_sources() -> list[Path]:
    return sorted(
        {*ROOT.glob("*.py"), *(p for top in PYTHON_ROOTS for p in (ROOT / top).rglob("*.py"))}
    )


def spelled_out(path: Path) -> list[int]:
    """Lines of ``path`` with a list, tuple or set literal holding every environment name."""
    every = set(ENVIRONMENTS)
    return sorted(
        node.lineno
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path)))
        if isinstance(node, ast.List | ast.Tuple | ast.Set)
        and every
        <= {e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)}
    )


def test_there_are_environments_to_spell() -> None:
    # With one environment, every literal naming it would be "the list": nothing to check.
    assert len(ENVIRONMENTS) > 1, ENVIRONMENTS


def test_no_python_module_spells_out_the_environment_names() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in python_sources()
        for line in spelled_out(path)
    ]
    assert not found, (
        f"the environment names {ENVIRONMENTS} are written out in {', '.join(found)}; "
        "take them from cdk.json (tools.cdk_json.ENVIRONMENTS)"
    )


def test_no_makefile_script_or_workflow_spells_them_out() -> None:
    found = [
        f"{name}:{number}"
        for name in OTHER_FILES
        if (ROOT / name).is_file()
        for number, line in enumerate((ROOT / name).read_text().splitlines(), start=1)
        if set(ENVIRONMENTS) <= set(re.findall(r"[\w-]+", line))
    ]
    assert not found, (
        f"the environment names {ENVIRONMENTS} are written out in {', '.join(found)}; "
        "ask cdk.json for them (python3 -m tools.cdk_json prints them)"
    )


def test_they_are_cdk_jsons_in_its_order() -> None:
    import json  # noqa: PLC0415

    configured = json.loads((ROOT / "cdk.json").read_text())["context"]["environments"]
    assert list(ENVIRONMENTS) == list(configured)
