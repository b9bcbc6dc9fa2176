"""Per-frame features of a raw stream for the segmenter: each frame on its own, plus its motion.

Unlike :func:`signlang.features.engineering.frame_features`, which reads clips normalised as a
whole (gaps filled, smoothed, the dominant hand decided per clip), these need only the frame
itself and the one before it, so a live stream computes them once per frame.

``stream_features(frames (T, 75, 3)) -> (T, FRAME_DIM)`` float32, from image-coordinate landmarks
(NaN = not detected). Every frame is put in its own body frame (origin between the shoulders, unit
= shoulder width):

* per hand (left, right): present (1), wrist position (2), the 20 other points relative to the
  wrist (40);
* pose: nose, elbows and wrists (10);
* motion: the change of both hand wrists and the 5 pose points since the previous frame (14), 0
  where either frame misses them.

Missing values are 0. :class:`StreamFeaturizer` does the same one frame (or a few) at a time,
keeping the previous frame's positions, so a stream's features are computed once per frame:
``StreamFeaturizer()(a) ++ StreamFeaturizer()(b) == stream_features(a ++ b)`` for any cut.
"""

from __future__ import annotations

import warnings
from typing import Final

import numpy as np

from signlang.landmarks.layout import (
    HANDS,
    LEFT_ELBOW,
    LEFT_SHOULDER,
    LEFT_WRIST_POSE,
    NOSE,
    RIGHT_ELBOW,
    RIGHT_SHOULDER,
    RIGHT_WRIST_POSE,
)

_POSE_POINTS: Final = np.array([NOSE, LEFT_ELBOW, RIGHT_ELBOW, LEFT_WRIST_POSE, RIGHT_WRIST_POSE])
FRAME_DIM: Final = 2 * (1 + 2 + 40) + 10 + 14
"""Width of :func:`stream_features` (110)."""


def _positions(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Body-frame features without motion ``(T, 96)`` and the tracked positions ``(T, 14)`` (NaN kept)."""
    xy = frames[..., :2].astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        centre = (xy[:, LEFT_SHOULDER] + xy[:, RIGHT_SHOULDER]) / 2  # (T, 2)
        width = np.linalg.norm(xy[:, LEFT_SHOULDER] - xy[:, RIGHT_SHOULDER], axis=-1)
    width = np.where(np.isfinite(width) & (width > 1e-3), width, np.nan)[:, None, None]
    body = (xy - centre[:, None]) / width  # (T, 75, 2)
    blocks, tracked = [], []
    for hand in HANDS:
        pts = body[:, hand]  # (T, 21, 2)
        wrist = pts[:, 0]
        present = np.isfinite(wrist).all(-1, keepdims=True).astype(np.float32)
        shape = (pts[:, 1:] - wrist[:, None]).reshape(len(xy), -1)
        blocks += [present, wrist, shape]
        tracked.append(wrist)
    pose = body[:, _POSE_POINTS].reshape(len(xy), -1)
    blocks.append(pose)
    tracked.append(pose)
    return np.concatenate(blocks, axis=1), np.concatenate(tracked, axis=1)


def _assemble(static: np.ndarray, tracked: np.ndarray, prev: np.ndarray) -> np.ndarray:
    """Static features + motion against ``prev (14,)`` (the positions before the first frame); NaN -> 0."""
    before = np.concatenate([prev[None], tracked[:-1]], axis=0)
    motion = tracked - before
    out = np.concatenate([static, motion], axis=1)
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)


def stream_features(frames: np.ndarray) -> np.ndarray:
    """``(T, 75, 3)`` landmarks -> ``(T, FRAME_DIM)`` per-frame features (see the module docstring)."""
    arr = np.asarray(frames, dtype=np.float32)
    if arr.ndim != 3 or arr.shape[1:] != (75, 3):
        raise ValueError(f"stream_features: expected (T, 75, 3), got {tuple(arr.shape)}")
    if not len(arr):
        return np.zeros((0, FRAME_DIM), np.float32)
    static, tracked = _positions(arr)
    return _assemble(static, tracked, np.full(tracked.shape[1], np.nan, np.float32))


class StreamFeaturizer:
    """:func:`stream_features` over a stream, a few frames at a time (keeps the last frame's positions)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._prev = np.full(14, np.nan, np.float32)

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        arr = np.asarray(frames, dtype=np.float32)
        if not len(arr):
            return np.zeros((0, FRAME_DIM), np.float32)
        static, tracked = _positions(arr)
        out = _assemble(static, tracked, self._prev)
        self._prev = tracked[-1].copy()
        return out
