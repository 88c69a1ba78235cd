"""The command line every generated docs page shares: print it, or ``--write`` it in place.

Each page (docs/architecture.md, docs/nag.md, docs/checkov.md) has a test that it is current;
``make docs``, ``make diagram`` and ``make checkov-docs`` rewrite them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def publish(text: str, path: Path, *, write: bool) -> None:
    """Write ``text`` to ``path`` (saying so), or print it."""
    if write:
        path.write_text(text)
        print(f"wrote {path.relative_to(ROOT)}")
    else:
        sys.stdout.write(text)


def write_flag(
    argv: Sequence[str] | None, *, prog: str, description: str | None, path: Path
) -> bool:
    """Parse the one option of a generated page's command line: ``--write``."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--write", action="store_true", help=f"update {path.relative_to(ROOT)}")
    return bool(parser.parse_args(argv).write)


def main(
    argv: Sequence[str] | None,
    *,
    prog: str,
    description: str | None,
    path: Path,
    generate: Callable[[], str],
) -> int:
    """Generate the page and print or write it."""
    write = write_flag(argv, prog=prog, description=description, path=path)
    publish(generate(), path, write=write)
    return 0
