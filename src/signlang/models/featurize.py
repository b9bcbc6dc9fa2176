"""The bridge from normalised landmarks to model inputs, shared by every estimator of this stage.

Every estimator takes ``X`` = normalised landmarks ``(N, T, 75, 3)`` float32 (NaN = missing) and
computes its own features here, so an ensemble and its K-fold slicing work on one array.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from signlang.features.engineering import frame_features, frame_mask, pool_features
from signlang.landmarks.layout import N_COORDS, N_POINTS, refuse_infinite


def check_landmarks(X: Any, name: str = "X") -> np.ndarray:
    """``X`` as float32 ``(N, T, 75, 3)``; ``ValueError`` naming ``name`` and the shape otherwise."""
    arr = np.asarray(X, dtype=np.float32)
    if arr.ndim != 4 or arr.shape[2:] != (N_POINTS, N_COORDS) or arr.shape[1] < 1:
        raise ValueError(f"{name}: expected normalised landmarks of shape (N, T, {N_POINTS}, {N_COORDS}), got {arr.shape}")
    refuse_infinite(arr, name)
    return arr


def _blocks(blocks: Sequence[str] | None) -> tuple[str, ...] | None:
    return None if blocks is None else tuple(blocks)


def frame_table(X: Any, blocks: Sequence[str] | None = None, name: str = "X") -> tuple[np.ndarray, np.ndarray]:
    """Per-frame features ``(N, T, F)`` float32 and the frame mask ``(N, T)`` bool (True = real frame)."""
    lm = check_landmarks(X, name)
    feats = np.asarray(frame_features(lm, blocks=_blocks(blocks)), dtype=np.float32)
    mask = np.asarray(frame_mask(lm), dtype=bool)
    return feats, mask


def pooled_features(X: Any, blocks: Sequence[str] | None = None, name: str = "X") -> np.ndarray:
    """Pooled clip features ``(N, P)`` float32: ``pool_features(frame_features(X), frame_mask(X))``."""
    feats, mask = frame_table(X, blocks, name)
    return np.asarray(pool_features(feats, mask), dtype=np.float32)
