"""The SageMaker training contract: where inputs are read and outputs written.

SageMaker mounts everything under /opt/ml. `SAGEMAKER_BASE_DIR` (the variable the SageMaker
toolkits use) moves that root so the same entry point runs locally and in tests.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from iris_training.errors import UserError

BASE_DIR_ENV = "SAGEMAKER_BASE_DIR"
DEFAULT_BASE_DIR = Path("/opt/ml")
TRAIN_CHANNEL = "train"


@dataclass(frozen=True)
class TrainingPaths:
    """Paths of the training contract under one base directory."""

    base: Path

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> TrainingPaths:
        return cls(Path(env.get(BASE_DIR_ENV) or DEFAULT_BASE_DIR))

    @property
    def hyperparameters_file(self) -> Path:
        return self.base / "input" / "config" / "hyperparameters.json"

    @property
    def resource_config_file(self) -> Path:
        """The job's hosts (iris_training.hosts); absent outside SageMaker."""
        return self.base / "input" / "config" / "resourceconfig.json"

    def channel(self, name: str) -> Path:
        return self.base / "input" / "data" / name

    @property
    def model_dir(self) -> Path:
        return self.base / "model"

    @property
    def output_dir(self) -> Path:
        return self.base / "output"

    @property
    def output_data_dir(self) -> Path:
        return self.output_dir / "data"

    def check_writable(self) -> None:
        """Fail before training when the model or the evaluation could not be written."""
        for what, path in (("model", self.model_dir), ("output", self.output_data_dir)):
            try:
                path.mkdir(parents=True, exist_ok=True)
                with tempfile.NamedTemporaryFile(dir=path, prefix=".write-probe-"):
                    pass
            except OSError as err:
                shown = self.output_dir if what == "output" else path
                raise UserError(
                    f"{what} directory {shown} is not writable: {err.strerror or err}"
                ) from err

    @property
    def failure_file(self) -> Path:
        return self.base / "output" / "failure"


def write_atomically(path: Path, text: str) -> None:
    """Write text to a temporary file beside `path`, then rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_hyperparameters(path: Path) -> dict[str, object]:
    """The raw hyperparameters; a missing file means "all defaults" (local runs)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"cannot read hyperparameters file {path}: {err}") from err
    try:
        raw = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as err:
        raise UserError(f"hyperparameters file {path} is not valid JSON: {err}") from err
    if not isinstance(raw, dict):
        raise UserError(f"hyperparameters file {path} must hold a JSON object, not {text[:40]!r}")
    return {str(key): value for key, value in raw.items()}
