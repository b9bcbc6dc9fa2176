"""Open-set recognition: is the sign in a clip one the model knows? Numpy only.

An :class:`OpenSetRule` turns the combined class probabilities ``(N, C)`` (after the bundle's
temperature) into a "knownness" score ``(N,)`` (higher = more likely a known sign) and declares a
clip ``unknown`` when its score is below ``threshold``. The rule travels with a bundle as
``manifest["meta"]["open_set"]`` (:meth:`OpenSetRule.to_json`); a bundle without one never answers
``unknown``. Scores are registered in :data:`OPEN_SET_SCORES` (one place; CLI choices and the
benchmark read it).

Every score reads only the combined probabilities, so the ONNX serving path needs nothing more::

    max_prob      p_max                                   (the baseline)
    margin        p_(1) - p_(2)
    entropy       sum_c p_c log p_c                        (minus the Shannon entropy)
    energy        T log sum_c p_c^(1/T), T < 1             (the energy score on log p as logits; T = 1 is constant)
    mahalanobis   -min_c (z - mu_c)' P (z - mu_c), z = sqrt(p)   (class prototypes in the square-root embedding)
    unknown_class 1 - p_unknown                            (a model trained with a "none of these" class)

:func:`fit_open_set` fits a method's constants and its threshold on held-out probabilities of
known signs, for a stated false-rejection rate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from signlang._registry import Registry

ScoreFn = Callable[[np.ndarray, dict[str, Any]], np.ndarray]
FitFn = Callable[[np.ndarray, "np.ndarray | None", "np.ndarray | None", dict[str, Any]], dict[str, Any]]
OPEN_SET_SCORES: Registry[ScoreFn] = Registry("open-set score")
OPEN_SET_FITTERS: Registry[FitFn] = Registry("open-set fitter")
"""Per method with fitted constants: ``(proba_known (N, C), y_known (N,) | None, proba_unknown (M, C) | None,
options) -> params``; a method without an entry has no constants."""

PROBA_FLOOR = 1e-6
"""Probabilities are floored here before a logarithm (a class at 0 would be -inf)."""
ENERGY_TEMPERATURES = (0.05, 0.1, 0.2, 0.35, 0.5, 0.75)
"""The energy score's temperatures tried when unknown clips are given to :func:`fit_open_set`."""
ENERGY_DEFAULT_T = 0.2
"""The energy temperature without unknown clips to choose one (chosen on the leave-signs-out validation part)."""


@OPEN_SET_SCORES.register("max_prob")
def max_prob_score(proba: np.ndarray, params: dict[str, Any]) -> np.ndarray:
    """The top class's probability: ``(N, C) -> (N,)``."""
    return np.asarray(proba, dtype=np.float64).max(axis=1)


def _log_proba(proba: np.ndarray) -> np.ndarray:
    return np.log(np.clip(np.asarray(proba, dtype=np.float64), PROBA_FLOOR, None))


@OPEN_SET_SCORES.register("margin")
def margin_score(proba: np.ndarray, params: dict[str, Any]) -> np.ndarray:
    """The top class's probability minus the runner-up's: ``(N, C) -> (N,)``."""
    p = np.sort(np.asarray(proba, dtype=np.float64), axis=1)
    return p[:, -1] - (p[:, -2] if p.shape[1] > 1 else 0.0)


@OPEN_SET_SCORES.register("entropy")
def entropy_score(proba: np.ndarray, params: dict[str, Any]) -> np.ndarray:
    """Minus the Shannon entropy (nats) of each row: ``(N, C) -> (N,)``; 0 for a one-hot row."""
    p = np.asarray(proba, dtype=np.float64)
    return (p * _log_proba(p)).sum(axis=1)


@OPEN_SET_SCORES.register("energy")
def energy_score(proba: np.ndarray, params: dict[str, Any]) -> np.ndarray:
    """Minus the free energy with ``log p`` as logits: ``T * logsumexp(log p / T)``, ``(N, C) -> (N,)``.

    ``params["T"]`` (default :data:`ENERGY_DEFAULT_T`) must be in (0, 1): at T = 1 the score is 0 for
    every row (the probabilities sum to 1); as T -> 0 it tends to log p_max.
    """
    t = float(params.get("T", ENERGY_DEFAULT_T))
    if not 0.0 < t < 1.0:
        raise ValueError(f"open_set energy: params.T must be in (0, 1), got {t!r}")
    z = _log_proba(proba) / t
    m = z.max(axis=1, keepdims=True)
    return t * (m[:, 0] + np.log(np.exp(z - m).sum(axis=1)))


def _mahalanobis_params(params: dict[str, Any], n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    try:
        means = np.asarray(params["means"], dtype=np.float64)
        precision = np.asarray(params["precision"], dtype=np.float64)
    except KeyError as exc:
        raise ValueError(f"open_set mahalanobis: params need 'means' and 'precision', missing {exc}") from None
    if means.ndim != 2 or means.shape[1] != n_classes or precision.shape != (n_classes, n_classes):
        raise ValueError(f"open_set mahalanobis: params.means must be (K, {n_classes}) and params.precision "
                         f"({n_classes}, {n_classes}), got {means.shape} and {precision.shape}")
    return means, precision


@OPEN_SET_SCORES.register("mahalanobis")
def mahalanobis_score(proba: np.ndarray, params: dict[str, Any]) -> np.ndarray:
    """Minus the squared Mahalanobis distance of ``sqrt(p)`` to the nearest class prototype: ``(N, C) -> (N,)``.

    ``sqrt(p)`` maps the probability simplex onto the unit sphere (the Hellinger geometry); ``log p``
    was tried on synthetic probabilities and spreads the near-zero classes too widely (AUROC 0.79 against 0.99).
    ``params``: ``means`` ``(K, C)`` (one prototype per class seen when fitting) and a shared
    ``precision`` ``(C, C)`` (:func:`fit_mahalanobis`).
    """
    z = np.sqrt(np.clip(np.asarray(proba, dtype=np.float64), 0.0, None))
    means, precision = _mahalanobis_params(params, z.shape[1])
    d = z[:, None, :] - means[None, :, :]  # (N, K, C)
    return -np.einsum("nkc,cd,nkd->nk", d, precision, d).min(axis=1)


@OPEN_SET_FITTERS.register("mahalanobis")
def fit_mahalanobis(proba_known: np.ndarray, y_known: np.ndarray | None, proba_unknown: np.ndarray | None,
                    options: dict[str, Any]) -> dict[str, Any]:
    """Prototypes = the mean ``sqrt(p)`` per class of held-out known clips (by label, else by the top class),
    precision = the inverse of their pooled covariance with a ridge (``options["ridge"]``, default 1e-2
    of its mean variance)."""
    z = np.sqrt(np.clip(np.asarray(proba_known, dtype=np.float64), 0.0, None))
    groups = np.argmax(z, axis=1) if y_known is None else np.asarray(y_known, dtype=np.int64)
    classes = np.unique(groups)
    means = np.stack([z[groups == c].mean(axis=0) for c in classes])
    centred = z - means[np.searchsorted(classes, groups)]
    cov = centred.T @ centred / max(len(z) - len(classes), 1)
    ridge = float(options.get("ridge", 1e-2)) * max(float(np.trace(cov)) / cov.shape[0], 1e-12)
    precision = np.linalg.inv(cov + ridge * np.eye(cov.shape[0]))
    return {"means": np.round(means, 6).tolist(), "precision": np.round(precision, 6).tolist(),
            "prototype_classes": classes.tolist()}


@OPEN_SET_FITTERS.register("energy")
def fit_energy(proba_known: np.ndarray, y_known: np.ndarray | None, proba_unknown: np.ndarray | None,
               options: dict[str, Any]) -> dict[str, Any]:
    """``T`` from ``options["T"]``; else with unknown clips the one of :data:`ENERGY_TEMPERATURES` with the
    best knownness AUROC on them; else :data:`ENERGY_DEFAULT_T`."""
    if "T" in options:
        return {"T": float(options["T"])}
    if proba_unknown is None or len(proba_unknown) == 0:
        return {"T": ENERGY_DEFAULT_T}
    aucs = {t: auroc(energy_score(proba_known, {"T": t}), energy_score(proba_unknown, {"T": t})) for t in ENERGY_TEMPERATURES}
    return {"T": max(aucs, key=lambda t: (aucs[t], -t))}


@OPEN_SET_SCORES.register("unknown_class")
def unknown_class_score(proba: np.ndarray, params: dict[str, Any]) -> np.ndarray:
    """``1 - p[:, params["index"]]``: the model's own "none of these" class (``(N, C) -> (N,)``)."""
    p = np.asarray(proba, dtype=np.float64)
    index = params.get("index")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < p.shape[1]:
        raise ValueError(f"open_set unknown_class: params.index must be a column of the {p.shape[1]} classes, got {index!r}")
    return 1.0 - p[:, index]


@OPEN_SET_FITTERS.register("unknown_class")
def fit_unknown_class(proba_known: np.ndarray, y_known: np.ndarray | None, proba_unknown: np.ndarray | None,
                      options: dict[str, Any]) -> dict[str, Any]:
    """``options["index"]``: the column of the bundle's "none of these" class (required)."""
    if "index" not in options:
        raise ValueError("open_set unknown_class: give the column of the model's 'none of these' class (options={'index': i})")
    return {"index": int(options["index"])}


def auroc(known_scores: np.ndarray, unknown_scores: np.ndarray) -> float:
    """Knownness AUROC: P(a known clip scores above an unknown one), ties counted half (Mann-Whitney)."""
    k = np.asarray(known_scores, dtype=np.float64)
    u = np.asarray(unknown_scores, dtype=np.float64)
    if len(k) == 0 or len(u) == 0:
        raise ValueError(f"auroc: need known and unknown scores, got {len(k)} and {len(u)}")
    allv = np.concatenate([k, u])
    order = np.argsort(allv, kind="mergesort")
    ranks = np.empty(len(allv))
    sorted_v = allv[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_v, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[: len(k)].sum() - len(k) * (len(k) + 1) / 2.0) / (len(k) * len(u)))


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


def threshold_for(known_scores: np.ndarray, target_false_rejection: float) -> float:
    """The threshold that declines at most ``target_false_rejection`` of ``known_scores`` (``unknown = score < t``):
    the ``floor(target * n)``-th smallest score."""
    s = np.sort(np.asarray(known_scores, dtype=np.float64))
    if len(s) == 0:
        raise ValueError("open set: no held-out known clips to fit a threshold on")
    if not np.isfinite(s).all():
        raise ValueError("open set: the knownness scores of the held-out clips are not all finite")
    return float(s[min(int(np.floor(target_false_rejection * len(s))), len(s) - 1)])


def fit_open_set(proba_known_valid: np.ndarray, method: str = "max_prob", target_false_rejection: float = 0.05,
                 proba_unknown_valid: np.ndarray | None = None, *, y_known_valid: np.ndarray | None = None,
                 options: dict[str, Any] | None = None, fitted_on: str = "held-out clips") -> OpenSetRule:
    """An :class:`OpenSetRule` fitted on held-out probabilities (after the bundle's temperature).

    ``proba_known_valid`` ``(N, C)``: clips of known signs the model never trained on (people or
    sessions it never saw); the threshold declines at most ``target_false_rejection`` of them.
    ``proba_unknown_valid`` ``(M, C)`` (optional): clips of other signs, used to pick a method's free
    constant (the energy temperature) and reported in ``record``. ``y_known_valid`` ``(N,)``: the
    known clips' class columns (prototypes by label; else by top class). ``options``: per-method
    settings (e.g. ``{"index": i}`` for ``unknown_class``).
    """
    OPEN_SET_SCORES.get(method)
    if not 0.0 <= float(target_false_rejection) < 0.5:
        raise ValueError(f"open set: target_false_rejection must be in [0, 0.5), got {target_false_rejection!r}")
    known = np.atleast_2d(np.asarray(proba_known_valid, dtype=np.float64))
    unknown = None if proba_unknown_valid is None else np.atleast_2d(np.asarray(proba_unknown_valid, dtype=np.float64))
    if unknown is not None and unknown.size == 0:
        unknown = None
    if unknown is not None and unknown.shape[1] != known.shape[1]:
        raise ValueError(f"open set: known and unknown probabilities have {known.shape[1]} and {unknown.shape[1]} columns")
    fitter = OPEN_SET_FITTERS.get(method) if method in OPEN_SET_FITTERS else None
    params = fitter(known, y_known_valid, unknown, dict(options or {})) if fitter else {}
    rule = OpenSetRule(method, 0.0, params)
    known_s = rule.score(known)
    threshold = threshold_for(known_s, float(target_false_rejection))
    record: dict[str, Any] = {"fitted_on": fitted_on, "n_known": int(len(known)),
                              "target_false_rejection": float(target_false_rejection),
                              "false_rejection": float((known_s < threshold).mean())}
    if unknown is not None:
        unknown_s = rule.score(unknown)
        record.update(n_unknown=int(len(unknown)), unknown_declined=float((unknown_s < threshold).mean()),
                      auroc=auroc(known_s, unknown_s))
    return OpenSetRule(method, threshold, params, record)
