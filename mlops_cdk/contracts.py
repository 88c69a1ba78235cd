"""The containers' contracts with the app, loaded by path (one definition each).

Each contract is a module of constants in a container package that imports nothing beyond
``__future__``: the container imports it, the app loads the file by path at synth (it does not
import the image's package), as :mod:`mlops_cdk.constructs.preflight` loads
``preflight_contract.py``.

- :data:`TUNING`: ``containers/training/iris_training/tuning_contract.py`` (the tuning step's
  objective metric and regex, the static ``register`` hyperparameter, the tunable
  hyperparameters, the RegisterBest step's entry point and data directory).
- :data:`SHARD`: ``containers/inference/iris_inference/shard_contract.py`` (the sharded score
  step's environment flag and staging directory, the commit step's entry point and input).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

CONTAINERS = Path(__file__).resolve().parents[1] / "containers"
TUNING_CONTRACT_FILE = CONTAINERS / "training" / "iris_training" / "tuning_contract.py"
SHARD_CONTRACT_FILE = CONTAINERS / "inference" / "iris_inference" / "shard_contract.py"


def load_contract(name: str, path: Path) -> ModuleType:
    """The module at ``path``, loaded under ``name`` without importing its package."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:  # pragma: no cover -- the file is in the repo
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TUNING = load_contract("_iris_tuning_contract", TUNING_CONTRACT_FILE)
SHARD = load_contract("_iris_shard_contract", SHARD_CONTRACT_FILE)
