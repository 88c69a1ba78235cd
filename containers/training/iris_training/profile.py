"""The reference profile: per-feature statistics of the training data, stored with the model.

The inference job compares each scored batch with it (population stability index per feature),
so it travels inside the MLflow model directory as `extra_files/reference_profile.json` and
every registered version carries the profile of the data it was trained on.

Bins come from the training distribution's quantiles (deciles by default): the cut points are
the distinct interior quantiles, bin i holds `edges[i-1] <= x < edges[i]` (numpy's
`searchsorted(edges, x, side="right")`), the first and last bins are open-ended. The inference
container implements the same rule (`iris_inference.drift`); `format` names it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

PROFILE_FILE = "reference_profile.json"
PROFILE_FORMAT = "iris-reference-profile/v1"
BINS = 10


def reference_profile(
    features: pd.DataFrame, *, source: str, sha256: str, bins: int = BINS
) -> dict[str, object]:
    """Quantile bin edges, the share of rows in each bin, and summary statistics per feature."""
    profile: dict[str, object] = {}
    for name in features.columns:
        values = features[name].to_numpy(dtype=np.float64)
        cuts = np.quantile(values, np.linspace(0.0, 1.0, bins + 1)[1:-1])
        edges = np.unique(cuts)  # ties (Iris is measured to 1 mm) merge bins
        counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)
        profile[str(name)] = {
            "edges": [float(e) for e in edges],
            "proportions": [float(c) for c in counts / len(values)],
            "count": len(values),
            "mean": float(values.mean()),
            "std": float(values.std()),
            "min": float(values.min()),
            "max": float(values.max()),
        }
    return {
        "format": PROFILE_FORMAT,
        "rows": len(features),
        "data": {"source": source, "sha256": sha256},
        "features": profile,
    }


def write_profile(profile: dict[str, object], directory: Path) -> Path:
    """`directory/reference_profile.json`, the name the inference job looks for."""
    path = directory / PROFILE_FILE
    path.write_text(json.dumps(profile, indent=2) + "\n", encoding="utf-8")
    return path
