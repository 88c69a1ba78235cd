"""Count what the test suite checks, so a change to its layout can show it dropped nothing.

Prints the number of collected test items (``pytest --collect-only``, every marker included)
and the checks written in tests/: ``assert`` statements, ``pytest.raises`` blocks, CDK
``Template`` assertion calls, and the ``assert ... == snapshot`` comparisons among the asserts.
Usage (before and after a change; compare the two outputs):

    .venv/bin/python benchmarks/suite_counts.py
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_ASSERTIONS = {
    "has_resource_properties",
    "has_resource",
    "resource_count_is",
    "resource_properties_count_is",
    "has_output",
    "has_mapping",
    "has_condition",
    "has_parameter",
    "all_resources",
    "all_resources_properties",
    "template_matches",
}


def _mentions_snapshot(node: ast.AST) -> bool:
    return any(isinstance(n, ast.Name) and "snapshot" in n.id for n in ast.walk(node))


def static_checks(tests: Path) -> Counter[str]:
    counts: Counter[str] = Counter()
    for path in sorted(tests.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Assert):
                counts["assert statements"] += 1
                if _mentions_snapshot(node.test):
                    counts["  of which snapshot comparisons"] += 1
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                if node.func.attr == "raises" and ast.unparse(node.func.value) == "pytest":
                    counts["pytest.raises blocks"] += 1
                elif node.func.attr in TEMPLATE_ASSERTIONS:
                    counts["Template assertion calls"] += 1
    return counts


def collected_items() -> int:
    environ = {**os.environ, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        check=False,  # syrupy fails a collect-only run: no snapshot was compared
    )
    items = sum(1 for line in result.stdout.splitlines() if "::" in line)
    if items == 0:
        raise SystemExit(
            f"pytest collected nothing:\n{result.stdout[-2000:]}{result.stderr[-2000:]}"
        )
    return items


def main() -> None:
    print(f"collected test items: {collected_items()}")
    for name, count in static_checks(ROOT / "tests").items():
        print(f"{name}: {count}")


if __name__ == "__main__":
    main()
