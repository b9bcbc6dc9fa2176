"""The decision policy: the one place that says what a clip's answer is besides the model's probabilities.

Used by the :class:`~signlang.inference.predictor.Predictor` (and so by ``signlang predict``,
``evaluate``, ``explain``, the HTTP service), by the streaming recognizer (``spot``, ``live``,
``/ws/live``) and by nothing else: no other module decides these questions.

* **Which clips are refused**: a clip with no frames or with infinite values
  (:meth:`DecisionPolicy.check_clip`: :func:`signlang.landmarks.layout.check_clips`, the one clip
  validation, which the service's request parsing calls too).
* **Nothing to classify** (:meth:`DecisionPolicy.screen`): nobody in any frame (rule
  :data:`NO_PERSON_RULE`) or a person without hands in any frame (rule :data:`NO_HANDS_RULE`). Where the
  vocabulary has a no-sign class (:func:`no_sign_class`, one list of names: :data:`NO_SIGN_NAMES`) that
  class answers with probability 1 ("nobody signing"); without one the clip is an error
  (:class:`NoPersonError` / :class:`NoHandsError`, a :class:`DetectionError`, HTTP 422), reported for
  that clip alone.
* **Unsure** (``low_confidence``): the top probability is below ``min_confidence`` (the bundle's
  ``preprocessing.min_confidence``, :data:`MIN_CONFIDENCE` by default, or the user's).
* **Unknown** (open set): the bundle's :class:`~signlang.models.openset.OpenSetRule`
  (``manifest["meta"]["open_set"]``, carried in the ensemble plan so both backends apply it) says
  the sign is not one the model knows. A bundle without a rule never answers unknown, and an answer
  given by a rule (nobody, no hands) is never unknown.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from signlang.landmarks.layout import check_clips, part_present
from signlang.models.openset import OpenSetRule

NO_SIGN_NAMES: tuple[str, ...] = ("-", "_", "<none>", "none", "no_sign", "no-sign", "nosign", "idle", "_idle",
                                  "blank", "background", "nothing", "rest")
"""Class names that mean "no sign" (idle, hands down), compared case-insensitively; the first match in a
vocabulary is its no-sign class (the predictor's and the streaming recognizer's alike)."""
NO_PERSON_RULE = "no_person"
"""``rule`` of an answer given because nobody is in any frame (the no-sign class answered)."""
NO_HANDS_RULE = "no_hands"
"""``rule`` of an answer given because a person but no hand is in any frame (the no-sign class answered)."""
MIN_CONFIDENCE = 0.5
"""Below this top-1 probability an answer carries ``low_confidence`` (a bundle may set its own
``preprocessing.min_confidence``). On the cross-signer benchmark most confident errors are people
whose recordings are poor; docs/benchmarks.md lists them."""


def no_sign_class(classes: Sequence[str]) -> str | None:
    """The vocabulary's no-sign class (a name of :data:`NO_SIGN_NAMES`, case-insensitive), or None."""
    lowered = {str(c).strip().lower(): str(c) for c in classes}
    return next((lowered[n] for n in NO_SIGN_NAMES if n in lowered), None)


class DetectionError(ValueError):
    """Nothing to classify and no no-sign class to say so: no person, or no hand, in the clip (HTTP 422)."""

    code = "nothing_detected"


class NoPersonError(DetectionError):
    """No pose and no hand was detected in any frame."""


class NoHandsError(DetectionError):
    """A person is visible but neither hand is detected in any frame."""


def error_code(exc: BaseException) -> str:
    """The service's error code for an exception raised on an input (``invalid_input`` by default)."""
    return str(getattr(exc, "code", "invalid_input"))


@dataclass(frozen=True)
class Screen:
    """What the policy found in a clip before any model ran: the share of frames with a hand and, when a
    rule answers instead of the model, its name (:data:`NO_PERSON_RULE` or :data:`NO_HANDS_RULE`)."""

    hands: float
    rule: str | None = None


class DecisionPolicy:
    """The rules of the module docstring for one vocabulary ``classes`` (C names).

    ``min_confidence`` in [0, 1]; ``open_set``: the bundle's rule or None (never unknown).
    """

    def __init__(self, classes: Sequence[str], *, min_confidence: float = MIN_CONFIDENCE,
                 open_set: OpenSetRule | None = None) -> None:
        self.classes: tuple[str, ...] = tuple(str(c) for c in classes)
        self.min_confidence = float(min_confidence)
        if not 0.0 <= self.min_confidence <= 1.0:
            raise ValueError(f"min_confidence must be in [0, 1], got {min_confidence}")
        self.open_set = open_set
        self.no_sign: str | None = no_sign_class(self.classes)
        """The vocabulary's no-sign class (the answer when nobody signs), or None."""
        self.no_sign_index: int | None = None if self.no_sign is None else self.classes.index(self.no_sign)

    @classmethod
    def for_model(cls, classes: Sequence[str], preprocessing: dict[str, Any], open_set: dict[str, Any] | None, *,
                  min_confidence: float | None = None, source: str = "model") -> "DecisionPolicy":
        """The policy of a loaded model: its ``preprocessing.min_confidence`` (unless ``min_confidence`` is
        given) and its open-set rule as stored (``None``: no rule); a malformed rule is a ValueError naming ``source``."""
        bar = preprocessing.get("min_confidence", MIN_CONFIDENCE) if min_confidence is None else min_confidence
        return cls(classes, min_confidence=float(bar), open_set=OpenSetRule.from_json(open_set, source=f"{source}: open_set"))

    # --- before the model ----------------------------------------------------------------------
    def check_clip(self, clip: Any, name: str) -> np.ndarray:
        """A clip in any accepted layout as ``(T, 75, 3)`` float32; ``ValueError`` naming ``name`` when it has no
        frames or holds infinite values."""
        return check_clips(clip, name=name)  # the one clip validation, the service's too (serve/schemas.py)

    def screen(self, lm: np.ndarray, name: str) -> Screen:
        """Nobody / no hands: the rule that answers (the no-sign class), or :class:`NoPersonError` /
        :class:`NoHandsError` naming ``name`` when the vocabulary has no no-sign class."""
        present = part_present(lm)
        if not present.any():
            if self.no_sign is None:
                raise NoPersonError(f"{name}: no person found in any of the {lm.shape[0]} frames")
            return Screen(0.0, NO_PERSON_RULE)
        if not present[:, 1:].any():
            if self.no_sign is None:
                raise NoHandsError(f"{name}: a person is visible but no hand was found in any of the {lm.shape[0]} frames")
            return Screen(0.0, NO_HANDS_RULE)
        return Screen(float(present[:, 1:].any(axis=1).mean()))

    def rule_proba(self, n: int = 1) -> np.ndarray:
        """``(n, C)`` float32: the answer of a rule, the no-sign class with probability 1."""
        if self.no_sign_index is None:
            raise ValueError("this vocabulary has no no-sign class, so no rule can answer")
        out = np.zeros((n, len(self.classes)), dtype=np.float32)
        out[:, self.no_sign_index] = 1.0
        return out

    # --- after the model -----------------------------------------------------------------------
    def low_confidence(self, proba: np.ndarray) -> np.ndarray:
        """``(N, C) -> (N,)`` bool: the top probability is below ``min_confidence``."""
        return np.atleast_2d(np.asarray(proba)).max(axis=1) < self.min_confidence

    def unknown(self, proba: np.ndarray, ruled: np.ndarray | None = None) -> np.ndarray:
        """``(N, C) -> (N,)`` bool: the open-set rule's verdict (all False without a rule); rows answered by a rule
        (``ruled (N,)``) are never unknown."""
        p = np.atleast_2d(np.asarray(proba))
        out = np.zeros(p.shape[0], dtype=bool) if self.open_set is None else np.asarray(self.open_set.unknown(p), dtype=bool)
        return out & ~np.asarray(ruled, dtype=bool) if ruled is not None else out

    def is_no_sign(self, index: int) -> bool:
        """Whether class ``index`` is the vocabulary's no-sign class."""
        return self.no_sign_index is not None and int(index) == self.no_sign_index
