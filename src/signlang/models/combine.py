"""The ensemble's arithmetic, numpy only: one implementation for training and for serving.

A stacking ensemble's answer is built in three steps, each written once here:

* :func:`place_columns`: a model's probabilities over its own classes spread into the ensemble's
  class columns (a class it never saw gets 0);
* :func:`stack_input`: the combiner's input, the base models' probabilities side by side (+ the
  pooled passthrough features);
* :func:`combined`: the combiner's output in the ensemble's columns, rescaled by the temperature.

:class:`~signlang.models.ensemble.StackingEnsemble` (training, validation, ``calibrate``) and the
inference plan (:mod:`signlang.inference.plan`: ``predict``, ``evaluate``, the service, both
backends) call these functions, so the two can only differ in how a base model computes its
probabilities, never in how they are combined. No scikit-learn: the ONNX serving path imports this.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from signlang.models.temperature import apply_temperature


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax ``(N, C) -> (N, C)`` float32."""
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def place_columns(proba: np.ndarray, columns: Sequence[int] | np.ndarray, n_classes: int) -> np.ndarray:
    """Spread ``proba (N, c)`` into ``(N, n_classes)`` float32 at ``columns`` (absent classes -> 0)."""
    cols = np.asarray(columns, dtype=np.int64)
    if proba.shape[1] == n_classes and np.array_equal(cols, np.arange(n_classes)):
        return np.asarray(proba).astype(np.float32, copy=False)
    out = np.zeros((proba.shape[0], n_classes), dtype=np.float32)
    out[:, cols] = proba
    return out


def stack_input(probas: Sequence[np.ndarray], pooled: np.ndarray | None = None) -> np.ndarray:
    """The combiner's input ``(N, n_bases * C [+ P])`` float32: base probabilities ``[(N, C)]`` in order (+ pooled ``(N, P)``)."""
    parts = [np.asarray(p, dtype=np.float32) for p in probas]
    if pooled is not None:
        parts.append(np.asarray(pooled, dtype=np.float32))
    return np.ascontiguousarray(np.concatenate(parts, axis=1), dtype=np.float32)


def combined(meta_proba: np.ndarray, meta_columns: Sequence[int] | np.ndarray, n_classes: int, temperature: float) -> np.ndarray:
    """The ensemble's probabilities ``(N, n_classes)``: the combiner's output ``(N, c)`` placed at ``meta_columns``,
    rescaled by ``temperature`` (:func:`signlang.models.temperature.apply_temperature`)."""
    return apply_temperature(place_columns(meta_proba, meta_columns, n_classes), temperature)
