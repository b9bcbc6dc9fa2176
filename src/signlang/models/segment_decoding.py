"""Decoding a segmenter's tags into segments, without torch (the ONNX-only serving path runs it too).

:class:`SegmentDecoder` turns per-frame tag probabilities ``(n, 3)`` (O, B, I; see
:mod:`signlang.datasets.streams`) into closed segments, incrementally; :func:`segment_f1` scores
segments against true ones at temporal IoU >= 0.5.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from signlang.datasets.streams import TAG_B, TAG_I, TAG_O

FEATURES = "frame_features/v1"
"""The per-frame feature set a segmenter was trained on (stored in the bundle; :mod:`signlang.features.frames`)."""


class SegmentDecoder:
    """Tag probabilities ``(n, 3)`` (O, B, I), frame by frame, -> closed segments ``(start, end)`` (end exclusive).

    A sign starts where ``P(B)`` rises through ``begin`` (a new B inside a sign closes the previous
    one: two signs back to back), or where ``P(B) + P(I)`` rises above 0.5 without a B; it ends where
    ``P(O)`` exceeds 0.5. Segments shorter than ``min_frames`` are dropped; one longer than
    ``max_frames`` is closed there.
    """

    def __init__(self, begin: float = 0.3, min_frames: int = 6, max_frames: int = 150) -> None:
        self.begin, self.min_frames, self.max_frames = begin, min_frames, max_frames
        self.reset()

    def reset(self) -> None:
        self.t = 0  # index of the next frame
        self.start: int | None = None
        self._prev_b = 0.0

    def push(self, probs: np.ndarray) -> list[tuple[int, int]]:
        out: list[tuple[int, int]] = []
        for p in np.asarray(probs, dtype=np.float64):
            t, self.t = self.t, self.t + 1
            rise = p[TAG_B] >= self.begin > self._prev_b
            self._prev_b = p[TAG_B]
            if self.start is not None and (p[TAG_O] > 0.5 or (rise and t - self.start >= self.min_frames) or t - self.start >= self.max_frames):
                out += self._close(t)
            if self.start is None and (rise or p[TAG_B] + p[TAG_I] > 0.5) and p[TAG_O] <= 0.5:
                self.start = t
        return out

    def finish(self) -> list[tuple[int, int]]:
        return self._close(self.t)

    def _close(self, end: int) -> list[tuple[int, int]]:
        start, self.start = self.start, None
        return [(start, end)] if start is not None and end - start >= self.min_frames else []


def decode(probs: np.ndarray, **kwargs: Any) -> list[tuple[int, int]]:
    """Segments of a whole stream's tag probabilities ``(T, 3)`` (:class:`SegmentDecoder`)."""
    dec = SegmentDecoder(**kwargs)
    return dec.push(probs) + dec.finish()


def segment_f1(pred: Sequence[tuple[int, int]], true: Sequence[tuple[int, int]], min_iou: float = 0.5) -> tuple[int, int, int]:
    """(matched, predicted, true) segments at IoU >= ``min_iou`` (greedy, each true segment once)."""
    used: set[int] = set()
    tp = 0
    for a, b in pred:
        best, best_j = min_iou, -1
        for j, (c, d) in enumerate(true):
            inter = max(0, min(b, d) - max(a, c))
            iou = inter / (max(b, d) - min(a, c))
            if j not in used and iou >= best:
                best, best_j = iou, j
        if best_j >= 0:
            used.add(best_j)
            tp += 1
    return tp, len(pred), len(true)
