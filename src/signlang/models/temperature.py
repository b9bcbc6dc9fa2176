"""The temperature-scaling formula alone, numpy only: the ONNX serving path applies a bundle's
temperature without importing scikit-learn (fitting it lives in :mod:`signlang.models.calibration`)."""

from __future__ import annotations

import numpy as np


def apply_temperature(proba: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(log(proba) / T)`` row-wise: ``(N, C) -> (N, C)`` float32; ``T == 1`` returns ``proba`` unchanged."""
    proba = np.asarray(proba, dtype=np.float32)
    if temperature == 1.0:
        return proba
    if not np.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"temperature must be a positive number, got {temperature!r}")
    with np.errstate(divide="ignore"):
        z = np.log(np.asarray(proba, dtype=np.float64)) / float(temperature)
    z -= np.max(z, axis=1, keepdims=True)
    e = np.exp(z)  # exp(-inf) = 0: a class with probability 0 keeps 0
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
