"""Reference classifiers that the accuracy benchmark puts beside our models.

* :class:`PooledLogisticBaseline` - per-clip mean / std / min / max of the raw 258 community
  values, ``StandardScaler`` + ``LogisticRegression``: what a quick first attempt looks like.
* :class:`MiniRocketBaseline` - aeon's MiniRocket transform + ``RidgeClassifierCV`` on the raw
  sequences ``(N, 258, T)``: what a time-series practitioner would pick off the shelf.

Both take the same input as every estimator of the project, normalised-or-not landmark clips
``(T, 75, 3)`` with NaN = missing, converted back to the flat 258 layout with
:func:`signlang.landmarks.layout.to_258` (NaN -> 0, the community's "not detected"; pose
visibility becomes 1/0 presence because a ClipSet does not carry MediaPipe's visibility).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from signlang.landmarks.layout import FLAT_DIM, to_258


def pad_flat(clips: Sequence[np.ndarray]) -> np.ndarray:
    """Clips ``(T_i, 75, 3)`` -> ``(N, T_max, 258)`` float32, NaN after each clip's end."""
    if len(clips) == 0:
        raise ValueError("no clips given")
    t_max = max(int(c.shape[0]) for c in clips)
    out = np.full((len(clips), t_max, FLAT_DIM), np.nan, dtype=np.float32)
    for i, c in enumerate(clips):  # one copy per clip (not per frame)
        out[i, : c.shape[0]] = to_258(c)
    return out


def pooled_statistics(clips: Sequence[np.ndarray]) -> np.ndarray:
    """Per-clip mean, std, min and max over time of the 258 values: ``(N, 4 * 258)`` float32."""
    flat = pad_flat(clips)
    with np.errstate(invalid="ignore"):
        feats = np.concatenate(
            [np.nanmean(flat, axis=1), np.nanstd(flat, axis=1), np.nanmin(flat, axis=1), np.nanmax(flat, axis=1)],
            axis=1,
        )
    return np.nan_to_num(feats, nan=0.0).astype(np.float32)


def resample_flat(clips: Sequence[np.ndarray], length: int) -> np.ndarray:
    """Clips -> ``(N, 258, length)`` float32 by linear interpolation in time (MiniRocket's layout)."""
    if length < 9:
        raise ValueError(f"MiniRocket needs series of at least 9 time points, got length={length}")
    out = np.empty((len(clips), FLAT_DIM, length), dtype=np.float32)
    grid = np.linspace(0.0, 1.0, length)
    for i, c in enumerate(clips):  # per clip; the interpolation itself is vectorised over channels
        flat = to_258(c)  # (T, 258)
        t = flat.shape[0]
        if t == length:
            out[i] = flat.T
            continue
        if t == 1:
            out[i] = np.repeat(flat.T, length, axis=1)
            continue
        pos = grid * (t - 1)
        lo = np.floor(pos).astype(np.int64).clip(0, t - 2)
        w = (pos - lo)[:, None].astype(np.float32)
        out[i] = ((1 - w) * flat[lo] + w * flat[lo + 1]).T
    return out


class PooledLogisticBaseline:
    """StandardScaler + multinomial LogisticRegression on :func:`pooled_statistics`."""

    name = "pooled-stats LR (baseline)"

    def __init__(self, C: float = 1.0, max_iter: int = 3000, seed: int = 0) -> None:
        self.C = C
        self.max_iter = max_iter
        self.seed = seed

    def fit(self, clips: Sequence[np.ndarray], y: np.ndarray) -> "PooledLogisticBaseline":
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        self.model_ = make_pipeline(
            StandardScaler(), LogisticRegression(C=self.C, max_iter=self.max_iter, random_state=self.seed)
        )
        self.model_.fit(pooled_statistics(clips), np.asarray(y))
        return self

    def predict(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        return self.model_.predict(pooled_statistics(clips))


class MiniRocketBaseline:
    """aeon MiniRocket (10,000 kernels) + RidgeClassifierCV on the raw ``(N, 258, T)`` series."""

    name = "MiniRocket + ridge (baseline)"

    def __init__(self, n_kernels: int = 10_000, seed: int = 0, n_jobs: int = 1) -> None:
        self.n_kernels = n_kernels
        self.seed = seed
        self.n_jobs = n_jobs

    def fit(self, clips: Sequence[np.ndarray], y: np.ndarray) -> "MiniRocketBaseline":
        from aeon.classification.convolution_based import MiniRocketClassifier

        self.length_ = max(9, int(np.median([c.shape[0] for c in clips])))
        self.model_ = MiniRocketClassifier(n_kernels=self.n_kernels, random_state=self.seed, n_jobs=self.n_jobs)
        self.model_.fit(resample_flat(clips, self.length_), np.asarray(y))
        return self

    def predict(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        return np.asarray(self.model_.predict(resample_flat(clips, self.length_))).astype(np.int64)


BASELINES = {"lr": PooledLogisticBaseline, "minirocket": MiniRocketBaseline}
"""Baselines by short name (the benchmark's ``--baselines``)."""
