"""JSON files that several processes read and write at once (the test workers' shared results)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def write_json_atomically(path: Path, value: Any) -> None:
    """``value`` as JSON at ``path``, replacing what is there: a reader in another process
    sees the old file or all of the new one, never a part (rename within one directory)."""
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    partial.write_text(json.dumps(value))
    partial.replace(path)
