"""The package's layers: constructs never know a stack, nag.py knows no construct, files stay small.

Read from the source (an AST scan of every import, including those inside functions and
``TYPE_CHECKING`` blocks), so no synthesis is needed.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "mlops_cdk"
MAX_LINES = 400  # issue 14: no file over 400 lines in the product package


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports (``import a.b`` -> a.b; ``from a import b`` -> a and a.b)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def offending(path: Path, forbidden: tuple[str, ...]) -> list[str]:
    return sorted(
        module
        for module in imported_modules(path)
        if any(module == f or module.startswith(f"{f}.") for f in forbidden)
    )


@pytest.mark.parametrize(
    "path",
    sorted((PACKAGE / "constructs").glob("*.py")),
    ids=lambda p: p.name,
)
def test_a_construct_imports_no_stack(path: Path) -> None:
    # Constructs take interfaces (IBucket, IKey, IVpc, ObjectStore, TrackingBackend), so each
    # can be built in a bare Stack; the stacks compose them.
    assert offending(path, ("mlops_cdk.stacks", "mlops_cdk.platform")) == []


def test_nag_imports_no_construct_stack_or_platform() -> None:
    # Acknowledgements stand beside their resources; nag.py only registers the pack and helps.
    forbidden = ("mlops_cdk.constructs", "mlops_cdk.stacks", "mlops_cdk.platform")
    assert offending(PACKAGE / "nag.py", forbidden) == []


def test_no_file_in_the_package_is_over_the_limit() -> None:
    long = {
        str(path.relative_to(PACKAGE)): lines
        for path in sorted(PACKAGE.rglob("*.py"))
        if (lines := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}, f"split these by responsibility (limit {MAX_LINES} lines): {long}"
