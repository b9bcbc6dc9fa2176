"""Calibration of class probabilities: temperature scaling and the expected calibration error.

A model that answers "thanks, 0.95" should be right about 95 % of the time on such answers; the
mean of three base models' probabilities, or a network trained with label smoothing, is usually
not. Temperature scaling (Guo et al., 2017) keeps the ranking of the classes (the top-1 answer
never changes) and rescales the confidence::

    calibrated = softmax(log(proba) / T)          proba (N, C), T > 0 (T > 1 softens, T < 1 sharpens)

``T`` is the one number that minimises the negative log-likelihood of held-out labels: clips the
model never trained on (a validation part, or people it never saw). Classes with probability 0
stay at 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from signlang.models.temperature import apply_temperature  # noqa: F401 - the formula, numpy only (ONNX serving)

CALIBRATION_METHODS: tuple[str, ...] = ("temperature", "none")
"""The choices of the config key ``ensemble.calibration``."""

TEMPERATURE_BOUNDS = (0.05, 20.0)
"""The search range of the temperature (a fitted value at a bound says the held-out part is degenerate)."""


def negative_log_likelihood(y: np.ndarray, proba: np.ndarray) -> float:
    """Mean ``-log p(true class)`` of ``proba (N, C)`` for integer labels ``y (N,)`` (floored at 1e-12)."""
    p = np.asarray(proba, dtype=np.float64)[np.arange(len(y)), np.asarray(y, dtype=np.int64)]
    return float(-np.mean(np.log(np.clip(p, 1e-12, None))))


def expected_calibration_error(y: np.ndarray, proba: np.ndarray, n_bins: int = 15) -> float:
    """ECE of the top-1 probability: sum over confidence bins of |accuracy - mean confidence| x bin share."""
    proba = np.asarray(proba)
    conf = proba.max(axis=1)
    correct = np.argmax(proba, axis=1) == np.asarray(y)
    bins = np.minimum((conf * n_bins).astype(int), n_bins - 1)
    total = 0.0
    for b in np.unique(bins):
        m = bins == b
        total += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(total)


class TemperatureScaling(BaseEstimator):
    """Fit one temperature on held-out probabilities: ``fit(proba (N, C), y (N,))``.

    Fitted: ``temperature_`` and ``fit_report_`` (clips, NLL and ECE before and after).
    ``transform(proba)`` applies it.
    """

    def __init__(self, bounds: tuple[float, float] = TEMPERATURE_BOUNDS) -> None:
        self.bounds = bounds

    def fit(self, proba: Any, y: Any) -> "TemperatureScaling":
        from scipy.optimize import minimize_scalar

        proba = np.asarray(proba, dtype=np.float64)
        y = np.asarray(y, dtype=np.int64)
        if proba.ndim != 2 or y.shape != (proba.shape[0],):
            raise ValueError(f"TemperatureScaling: need proba (N, C) and y (N,), got {proba.shape} and {y.shape}")
        if len(y) == 0:
            raise ValueError("TemperatureScaling: no held-out clips to fit the temperature on")
        if y.min() < 0 or y.max() >= proba.shape[1]:
            raise ValueError(f"TemperatureScaling: labels must index the {proba.shape[1]} probability columns")
        lo, hi = np.log(self.bounds[0]), np.log(self.bounds[1])
        res = minimize_scalar(lambda log_t: negative_log_likelihood(y, apply_temperature(proba, float(np.exp(log_t)))),
                              bounds=(lo, hi), method="bounded", options={"xatol": 1e-4})
        self.temperature_ = float(np.exp(res.x))
        after = apply_temperature(proba, self.temperature_)
        self.fit_report_ = {
            "n_clips": int(len(y)), "temperature": self.temperature_,
            "nll_before": negative_log_likelihood(y, proba), "nll_after": negative_log_likelihood(y, after),
            "ece_before": expected_calibration_error(y, proba), "ece_after": expected_calibration_error(y, after),
        }
        return self

    def transform(self, proba: Any) -> np.ndarray:
        check_is_fitted(self, "temperature_")
        return apply_temperature(proba, self.temperature_)


def cross_fitted_temperature(y: np.ndarray, proba: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Held-out probabilities ``(N, C)`` recalibrated without reading their own labels: the rows of
    each group are rescaled by a temperature fitted on the other groups' rows (e.g. signer folds)."""
    out = np.empty_like(np.asarray(proba, dtype=np.float32))
    groups = np.asarray(groups)
    for g in np.unique(groups):
        m = groups == g
        if (~m).sum() == 0:
            raise ValueError("cross_fitted_temperature: need at least 2 groups")
        out[m] = TemperatureScaling().fit(proba[~m], y[~m]).transform(proba[m])
    return out
