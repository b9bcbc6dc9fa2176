"""Time axis and normalisation of importance maps: plain numpy, shared by every explanation method.

Kept apart from :mod:`signlang.explain.attribution` (torch) so that occlusion explanations on the
ONNX backend run with numpy alone.
"""

from __future__ import annotations

import numpy as np


def resample_time(values: np.ndarray, t_out: int) -> np.ndarray:
    """Linearly resample ``(T_src, ...)`` to ``(t_out, ...)`` along axis 0, both ends fixed."""
    v = np.asarray(values, dtype=np.float32)
    t_src = v.shape[0]
    if t_out < 1 or t_src < 1:
        raise ValueError(f"resample_time: need at least one frame, got T_src={t_src}, t_out={t_out}")
    if t_src == t_out:
        return v.copy()
    if t_src == 1:
        return np.repeat(v, t_out, axis=0)
    pos = np.linspace(0.0, t_src - 1, t_out) if t_out > 1 else np.zeros(1)
    lo = np.floor(pos).astype(np.int64).clip(0, t_src - 2)
    w = (pos - lo).astype(np.float32).reshape((-1,) + (1,) * (v.ndim - 1))
    return (1.0 - w) * v[lo] + w * v[lo + 1]


def normalise_map(values: np.ndarray) -> np.ndarray:
    """Scale a non-negative map so that it sums to 1 (all-zero stays zero)."""
    v = np.clip(np.nan_to_num(np.asarray(values, dtype=np.float32)), 0.0, None)
    total = float(v.sum())
    return v / total if total > 0 else v
