"""Occlusion of landmark groups and of frames: what the *whole* model loses when a part is hidden.

Model-agnostic (it only calls ``predict(clips) -> (N, C)`` on raw clips), so it explains the
whole ensemble, the pooled XGBoost base model and the meta-learner included, through the
predictor's own normalisation and features.

* **Landmark groups** (:data:`LANDMARK_GROUPS`): the face, each arm and the lower body of the
  pose, and per hand the wrist and each finger. Read from :mod:`signlang.landmarks.layout`.
* **Windows** (:func:`time_windows`): overlapping runs of ``width`` input frames, ``stride`` apart,
  covering the whole clip.
* **Hiding** (:func:`hide`): the hidden points of the hidden frames are replaced by the linear
  interpolation between the nearest kept frames before and after (held constant at the clip's
  ends) -- they keep a plausible position but carry no information of their own, which is what
  the normaliser's own gap filling does when MediaPipe misses a few frames. Nothing out of
  distribution (zeros, a hand with one finger missing, missing frames at the clip's ends) is fed
  in; a point that was not detected next to the hidden frames stays missing. The deletion check
  (:mod:`signlang.explain.faithfulness`) and the frame occlusion of the explainer hide whole
  frames the same way.
* **The map** (:func:`occlusion_map`): for each (window, group) one perturbed clip, predicted
  in batches; the drop of p(target) is credited to the group in every frame of
  the window, averaged over the windows covering a frame -> ``(T_in, G)``, negative drops
  (hiding helped) clipped to 0, then spread over the 75 landmarks (every point of a group gets
  the group's value) -> ``(T_in, 75)``.

A group that is missing around a window cannot be hidden there and gets 0: the map says nothing
about evidence from *absence* (e.g. "the left hand is down").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from signlang.landmarks.layout import HANDS, N_HAND, N_POINTS, POSE_NAMES, THUMB_TIP, WRIST


def _landmark_groups() -> dict[str, np.ndarray]:
    pose = np.arange(len(POSE_NAMES))
    face = pose[: POSE_NAMES.index("left_shoulder")]
    hips = POSE_NAMES.index("left_hip")
    upper = pose[len(face) : hips]
    groups = {
        "pose.face": face,
        "pose.left_arm": np.array([i for i in upper if POSE_NAMES[i].startswith("left_")]),
        "pose.right_arm": np.array([i for i in upper if POSE_NAMES[i].startswith("right_")]),
        "pose.lower_body": pose[hips:],
    }
    fingers = ("thumb", "index", "middle", "ring", "pinky")
    for side, part in zip(("left_hand", "right_hand"), HANDS):
        groups[f"{side}.wrist"] = np.array([part.start + WRIST])
        for k, name in enumerate(fingers):  # each finger: 4 points, from THUMB_TIP - 3 on
            first = THUMB_TIP - 3 + 4 * k
            groups[f"{side}.{name}"] = part.start + np.arange(first, first + 4)
    covered = np.concatenate(list(groups.values()))
    assert np.array_equal(np.sort(covered), np.arange(N_POINTS)) and 4 * 5 + 1 == N_HAND
    return groups


LANDMARK_GROUPS: dict[str, np.ndarray] = _landmark_groups()
"""Group name -> absolute landmark indices; the groups partition the 75 points."""


def group_matrix(groups: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """``(G, 75)`` 0/1 membership of each landmark in each group."""
    groups = LANDMARK_GROUPS if groups is None else groups
    out = np.zeros((len(groups), N_POINTS), dtype=np.float32)
    for g, idx in enumerate(groups.values()):
        out[g, idx] = 1.0
    return out


def time_windows(t: int, width: int, stride: int) -> np.ndarray:
    """``(W, 2)`` [start, stop) runs of ``width`` frames every ``stride``, the last one ending at ``t``."""
    if t < 1 or width < 1 or stride < 1:
        raise ValueError(f"time_windows: need t, width, stride >= 1, got {t}, {width}, {stride}")
    width = min(width, t)
    starts = np.arange(0, t - width + 1, stride)
    if starts[-1] != t - width:
        starts = np.r_[starts, t - width]
    return np.stack([starts, starts + width], axis=1)


def hide(clip: np.ndarray, frames: np.ndarray, points: np.ndarray | None = None) -> np.ndarray:
    """A copy of ``clip (T, 75, 3)`` with ``points`` (default all) of ``frames`` hidden.

    A hidden value is replaced by the linear interpolation between the nearest *kept* frames
    before and after it (the nearest one held at the clip's ends): the landmarks keep a plausible
    position but carry no information of their own, as when the normaliser fills frames
    MediaPipe missed. A point missing in a neighbouring kept frame stays missing; with no kept
    frame at all the hidden values are missing (NaN).
    """
    out = np.array(clip, dtype=np.float32, copy=True)
    t = out.shape[0]
    pts = np.arange(out.shape[1]) if points is None else np.asarray(points, dtype=np.int64)
    hidden = np.zeros(t, dtype=bool)
    hidden[np.asarray(frames, dtype=np.int64)] = True
    h = np.flatnonzero(hidden)
    if h.size == 0:
        return out
    if hidden.all():
        out[np.ix_(h, pts)] = np.nan
        return out
    idx = np.arange(t)
    prev = np.maximum.accumulate(np.where(hidden, -1, idx))[h]
    nxt = np.flip(np.minimum.accumulate(np.flip(np.where(hidden, t, idx))))[h]
    before = out[np.clip(prev, 0, t - 1)][:, pts]  # (H, P, 3)
    after = out[np.clip(nxt, 0, t - 1)][:, pts]
    before = np.where((prev >= 0)[:, None, None], before, after)
    after = np.where((nxt < t)[:, None, None], after, before)
    w = np.where((prev >= 0) & (nxt < t), (h - prev) / np.maximum(nxt - prev, 1), 0.0).astype(np.float32)
    out[np.ix_(h, pts)] = before + w[:, None, None] * (after - before)
    return out


def windows_to_frames(drops: np.ndarray, windows: np.ndarray, t: int) -> np.ndarray:
    """Per-window drops ``(W, G)`` -> per-frame ``(t, G)`` >= 0: mean over the windows covering a frame."""
    cover = np.zeros((t, len(windows)), dtype=np.float64)
    for w, (a, b) in enumerate(windows):
        cover[a:b, w] = 1.0
    per_frame = (cover @ np.asarray(drops, dtype=np.float64)) / np.maximum(cover.sum(1, keepdims=True), 1.0)
    return np.clip(per_frame, 0.0, None).astype(np.float32)


def occlusion_map(
    predict: Callable[[Sequence[np.ndarray]], np.ndarray],
    clip: np.ndarray,
    target: int,
    groups: dict[str, np.ndarray] | None = None,
    fraction: float = 0.2,
    p_full: float | None = None,
) -> np.ndarray:
    """Drop of p(target) when each group is hidden around each frame: ``(T_in, G)`` >= 0.

    ``predict`` maps raw clips to probabilities ``(N, C)``. Windows are ``fraction`` of the clip
    (at least 1 frame) every half window. ``p_full`` is p(target) on the clip itself (computed
    when not given). The perturbed clips go through ``predict`` in batches
    (:func:`predict_in_chunks`).
    """
    groups = LANDMARK_GROUPS if groups is None else groups
    clip = np.asarray(clip, dtype=np.float32)
    t = clip.shape[0]
    width = max(1, round(fraction * t))
    windows = time_windows(t, width, max(1, width // 2))
    members = list(groups.values())
    jobs = [(a, b, pts) for a, b in windows for pts in members]
    probs = predict_in_chunks(predict, lambda j: hide(clip, np.arange(jobs[j][0], jobs[j][1]), jobs[j][2]), len(jobs), t)
    base = float(p_full) if p_full is not None else float(np.asarray(predict([clip]))[0, target])
    drops = base - probs[:, target].reshape(len(windows), len(members))  # (W, G)
    return windows_to_frames(drops, windows, t)


MAX_FRAMES_PER_BATCH = 16_384
"""Input frames per prediction batch of the occlusion maps: a long clip's many perturbed copies are
built and predicted a chunk at a time, so memory stays bounded (a 10,000-frame clip: 1-2 copies)."""


def predict_in_chunks(
    predict: Callable[[Sequence[np.ndarray]], np.ndarray], make: Callable[[int], np.ndarray], n: int, t: int
) -> np.ndarray:
    """``predict([make(0), ..., make(n - 1)])`` -> ``(n, C)``, built and predicted in chunks of clips of ``t`` frames."""
    per_batch = max(1, MAX_FRAMES_PER_BATCH // max(t, 1))
    return np.concatenate(
        [np.asarray(predict([make(j) for j in range(start, min(n, start + per_batch))]), dtype=np.float64)
         for start in range(0, n, per_batch)], axis=0)


def groups_to_landmarks(group_map: np.ndarray, groups: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """``(..., G)`` -> ``(..., 75)``: every landmark of a group gets the group's value."""
    return np.asarray(group_map, dtype=np.float32) @ group_matrix(groups)
