"""Metrics and plots of a classifier on the held-out set."""

from __future__ import annotations

import re
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")  # containers have no display

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.base import ClassifierMixin
from sklearn.metrics import ConfusionMatrixDisplay, accuracy_score, precision_recall_fscore_support


@dataclass(frozen=True)
class ClassScores:
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class Evaluation:
    accuracy: float
    macro_f1: float
    per_class: dict[str, ClassScores]

    def metrics(self) -> dict[str, float]:
        """Flat MLflow metrics: accuracy, macro_f1, and precision/recall/f1 per class."""
        flat = {"accuracy": self.accuracy, "macro_f1": self.macro_f1}
        for label, scores in self.per_class.items():
            key = metric_safe(label)
            flat[f"precision_{key}"] = scores.precision
            flat[f"recall_{key}"] = scores.recall
            flat[f"f1_{key}"] = scores.f1
        return flat


def metric_safe(label: str) -> str:
    """MLflow metric names allow letters, digits and `_-. /:`; class names may hold anything."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", label)


def accuracy(model: ClassifierMixin, x: pd.DataFrame, y: pd.Series) -> float:
    return float(accuracy_score(y, model.predict(x)))


def evaluate(model: ClassifierMixin, x: pd.DataFrame, y: pd.Series) -> Evaluation:
    predicted = model.predict(x)
    labels = sorted(str(label) for label in pd.unique(y))
    precision, recall, f1, support = precision_recall_fscore_support(
        y, predicted, labels=labels, zero_division=0
    )
    per_class = {
        label: ClassScores(float(p), float(r), float(f), int(s))
        for label, p, r, f, s in zip(labels, precision, recall, f1, support, strict=True)
    }
    return Evaluation(
        accuracy=float(accuracy_score(y, predicted)),
        macro_f1=float(np.mean(f1)),
        per_class=per_class,
    )


def confusion_matrix_figure(model: ClassifierMixin, x: pd.DataFrame, y: pd.Series) -> Figure:
    figure = Figure(figsize=(5, 4.5), layout="constrained")
    axes = figure.add_subplot()
    ConfusionMatrixDisplay.from_predictions(
        y, model.predict(x), ax=axes, colorbar=False, cmap="Blues"
    )
    axes.set_title("Confusion matrix (held-out set)")
    return figure


def feature_importance_figure(importances: np.ndarray, names: list[str]) -> Figure:
    order = np.argsort(importances)
    figure = Figure(figsize=(5, 3), layout="constrained")
    axes = figure.add_subplot()
    axes.barh([names[i] for i in order], importances[order], color="tab:green")
    axes.set_xlabel("mean decrease in impurity")
    axes.set_title("Feature importance")
    return figure
