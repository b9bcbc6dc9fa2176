"""Open-set recognition: is the sign in a clip one the model knows? Numpy only.

An :class:`OpenSetRule` turns the combined class probabilities ``(N, C)`` (after the bundle's
temperature) into a "knownness" score ``(N,)`` (higher = more likely a known sign) and declares a
clip ``unknown`` when its score is below ``threshold``. The rule travels with a bundle as
``manifest["meta"]["open_set"]`` (:meth:`OpenSetRule.to_json`); a bundle without one never answers
``unknown``. Scores are registered in :data:`OPEN_SET_SCORES` (one place; CLI choices and the
benchmark read it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from signlang._registry import Registry

ScoreFn = Callable[[np.ndarray, dict[str, Any]], np.ndarray]
OPEN_SET_SCORES: Registry[ScoreFn] = Registry("open-set score")


@OPEN_SET_SCORES.register("max_prob")
def max_prob_score(proba: np.ndarray, params: dict[str, Any]) -> np.ndarray:
    """The top class's probability: ``(N, C) -> (N,)``."""
    return np.asarray(proba, dtype=np.float64).max(axis=1)


@dataclass(frozen=True)
class OpenSetRule:
    """``unknown = score(proba) < threshold``; ``params`` are the score's fitted constants."""

    method: str
    threshold: float
    params: dict[str, Any] = field(default_factory=dict)
    record: dict[str, Any] = field(default_factory=dict)
    """What the threshold was fitted on (clips, target false-rejection rate, ...): for reports only."""

    def __post_init__(self) -> None:
        OPEN_SET_SCORES.get(self.method)  # an unknown method is a ValueError naming the known ones
        if not np.isfinite(self.threshold):
            raise ValueError(f"open_set.threshold must be a finite number, got {self.threshold!r}")

    def score(self, proba: np.ndarray) -> np.ndarray:
        """Knownness ``(N,)`` of combined probabilities ``(N, C)``; higher = more likely a known sign."""
        proba = np.atleast_2d(np.asarray(proba))
        return OPEN_SET_SCORES.get(self.method)(proba, self.params)

    def unknown(self, proba: np.ndarray) -> np.ndarray:
        """``(N,)`` bool: the clip's sign is outside the vocabulary (score below the threshold)."""
        return self.score(proba) < self.threshold

    def to_json(self) -> dict[str, Any]:
        return {"method": self.method, "threshold": float(self.threshold), "params": dict(self.params),
                "record": dict(self.record)}

    @classmethod
    def from_json(cls, d: dict[str, Any] | None, *, source: str = "open_set") -> "OpenSetRule | None":
        """The rule stored in a manifest (None when absent); a malformed entry is a ValueError naming ``source``."""
        if d is None:
            return None
        if not isinstance(d, dict) or "method" not in d or "threshold" not in d:
            raise ValueError(f"{source}: expected {{'method': ..., 'threshold': ...}}, got {d!r}")
        try:
            return cls(str(d["method"]), float(d["threshold"]), dict(d.get("params") or {}), dict(d.get("record") or {}))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{source}: {exc}") from exc
