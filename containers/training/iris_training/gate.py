"""The quality gate: promote a challenger only when it clears the bar and beats no one worse.

Rules, in order:
1. the challenger's accuracy must be >= min_accuracy;
2. with no production version yet, a challenger that clears the bar is promoted;
3. a production version that cannot be scored blocks promotion (nothing is promoted blind);
4. otherwise the challenger must score >= the production version on the same held-out rows.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Champion:
    """The version holding the production alias, scored on the challenger's held-out set."""

    version: str
    accuracy: float | None
    error: str | None = None


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
    *, challenger_accuracy: float, min_accuracy: float, champion: Champion | None
) -> GateDecision:
    def decision(promote: bool, reason: str) -> GateDecision:
        return GateDecision(promote, reason, challenger_accuracy, min_accuracy, champion)

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
