"""The quality gate: promote a challenger only when it clears the bar and beats no one worse.

A challenger is judged on what production serves. Rules, in order:
1. the training data, the held-out set and the challenger's classes must each be exactly
   SPECIES, spelled as production spells them (a forest trained on one class, or on labels
   spelled `Iris-setosa`, scores 1.0 on its own held-out rows and must never be promoted);
2. the challenger's accuracy must be >= min_accuracy;
3. with no production version yet, a challenger that clears the bar is promoted;
4. a production version that cannot be scored blocks promotion (nothing is promoted blind);
5. a production version that predicts other classes than the challenger blocks promotion
   (the two cannot be compared on one evaluation set);
6. otherwise the challenger must score >= the production version on the same held-out rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

# The labels the production model serves, as the inference output and its consumers spell them
# (scikit-learn's bundled Iris spells them so too).
SPECIES = ("setosa", "versicolor", "virginica")


@dataclass(frozen=True)
class ClassCoverage:
    """The classes seen in training, in the held-out set, and those the challenger predicts."""

    train: tuple[str, ...]
    evaluation: tuple[str, ...]
    model: tuple[str, ...]

    @classmethod
    def of(
        cls, *, train: Iterable[object], evaluation: Iterable[object], model: Iterable[object]
    ) -> ClassCoverage:
        return cls(_classes(train), _classes(evaluation), _classes(model))

    def problem(self) -> str | None:
        """Why these classes are not what production serves, or None when they are."""
        for what, classes in (
            ("training data", self.train),
            ("held-out set", self.evaluation),
            ("challenger model", self.model),
        ):
            missing = [c for c in SPECIES if c not in classes]
            unexpected = [c for c in classes if c not in SPECIES]
            if missing or unexpected:
                parts = []
                if missing:
                    parts.append(f"lacks class(es) {', '.join(missing)}")
                if unexpected:
                    parts.append(f"has unexpected {', '.join(unexpected)}")
                return (
                    f"the {what} {' and '.join(parts)}; production serves exactly "
                    f"{', '.join(SPECIES)}"
                )
        return None


def _classes(values: Iterable[object]) -> tuple[str, ...]:
    return tuple(sorted({str(v) for v in values}))


@dataclass(frozen=True)
class Champion:
    """The version holding the production alias, scored on the challenger's held-out set."""

    version: str
    accuracy: float | None
    error: str | None = None
    classes: tuple[str, ...] | None = None  # what it predicts (its `classes_`), when scored


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reason: str
    challenger_accuracy: float
    min_accuracy: float
    champion: Champion | None

    @property
    def verdict(self) -> str:
        return "promoted" if self.promote else "rejected"

    def tags(self) -> dict[str, str]:
        """Tags for the model version and the run: the decision and both scores."""
        tags = {
            "gate.decision": self.verdict,
            "gate.reason": self.reason,
            "gate.challenger_accuracy": f"{self.challenger_accuracy:.6f}",
            "gate.min_accuracy": f"{self.min_accuracy:.6f}",
        }
        if self.champion is not None:
            tags["gate.champion_version"] = self.champion.version
            if self.champion.accuracy is not None:
                tags["gate.champion_accuracy"] = f"{self.champion.accuracy:.6f}"
            if self.champion.error is not None:
                tags["gate.champion_error"] = self.champion.error[:500]
        return tags


def decide(
    *,
    challenger_accuracy: float,
    min_accuracy: float,
    champion: Champion | None,
    classes: ClassCoverage,
) -> GateDecision:
    def decision(promote: bool, reason: str) -> GateDecision:
        return GateDecision(promote, reason, challenger_accuracy, min_accuracy, champion)

    problem = classes.problem()
    if problem is not None:
        return decision(False, problem)

    if challenger_accuracy < min_accuracy:
        return decision(
            False, f"accuracy {challenger_accuracy:.4f} is below min_accuracy {min_accuracy:.4f}"
        )
    if champion is None:
        return decision(
            True,
            f"accuracy {challenger_accuracy:.4f} >= min_accuracy {min_accuracy:.4f} "
            "and there is no production version yet",
        )
    if champion.accuracy is None:
        return decision(
            False,
            f"production version {champion.version} could not be scored on the held-out set "
            f"({champion.error}); move or delete the alias to unblock promotion",
        )
    if champion.classes is not None and champion.classes != classes.model:
        return decision(
            False,
            f"production version {champion.version} predicts {', '.join(champion.classes)}, "
            f"the challenger {', '.join(classes.model)}: they cannot be compared on one "
            "evaluation set; move or delete the alias to unblock promotion",
        )
    if challenger_accuracy < champion.accuracy:
        return decision(
            False,
            f"accuracy {challenger_accuracy:.4f} is worse than production version "
            f"{champion.version}'s {champion.accuracy:.4f} on the same held-out set",
        )
    return decision(
        True,
        f"accuracy {challenger_accuracy:.4f} >= min_accuracy {min_accuracy:.4f} and >= "
        f"production version {champion.version}'s {champion.accuracy:.4f} on the same held-out set",
    )
