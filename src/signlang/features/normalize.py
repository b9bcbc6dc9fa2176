"""Normalisation of raw landmarks: gap filling, smoothing, a body frame and a fixed length.

Input is ``(T, 75, 3)`` (or batched ``(N, T, 75, 3)``) float landmarks in MediaPipe's image
coordinates with NaN where a point was not detected (layout in :mod:`signlang.landmarks.layout`).
:func:`normalize_clip` runs the chain

    fill_gaps -> smooth -> to_body_frame -> [level_shoulders] -> [canonical_hand] -> resample

and returns landmarks in a body-centred frame (origin between the shoulders, unit = shoulder
width) that no longer depend on where the signer stands or how far from the camera, resampled to
``NormalizeConfig.target_frames``. With ``canonical_hand`` a clip whose dominant hand is the
signer's left (a left-handed signer, or a mirrored webcam image) is mirrored so that the dominant
hand is always the right one (:func:`canonical_hand`); the rule is decided from the clip alone and
is the same at training and inference because it travels in the bundle's preprocessing. With
``level_shoulders`` a tilted camera (or signer) is undone: the clip is turned in the image plane so
that the median shoulder line is horizontal (:func:`level_shoulders`). NaN stays NaN: missing data are never invented beyond short,
bounded interpolation gaps; the feature stage turns them into zeros plus presence flags.

Everything is vectorised over time (and over a batch of equal-length clips); the only Python
loops are over the three parts or over groups of clips of equal length.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from functools import lru_cache
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from signlang.landmarks.layout import (
    HANDS,
    LEFT_HAND,
    LEFT_SHOULDER,
    MIDDLE_MCP,
    MIRROR_PERMUTATION,
    N_COORDS,
    N_HAND,
    N_POINTS,
    RIGHT_HAND,
    RIGHT_SHOULDER,
    WRIST,
    refuse_infinite,
)

SHOULDER_PER_PALM: float = 3.0
"""Shoulder width expressed in palm lengths (wrist -> middle-finger MCP), used as the scale when
no shoulders are visible. Adult anthropometry gives about 3.5-4; on the traduttore data (image
coordinates, x and y differently scaled) the median ratio is 2.5 for the right hand and 4.0 for
the left, so 3 sits between them. Only the clips without shoulders depend on it."""

_EPS = 1e-12


@dataclass(frozen=True)
class NormalizeConfig:
    """Settings of :func:`normalize_clip`.

    ``target_frames``: output length (``None`` keeps each clip's own length);
    ``smooth_window``/``smooth_order``: Savitzky-Golay window (odd) and polynomial order;
    ``max_gap``: longest run of missing frames that is linearly interpolated;
    ``canonical_hand``: mirror clips whose dominant hand is the left one (:func:`canonical_hand`);
    ``level_shoulders``: turn each clip so its shoulder line is horizontal (:func:`level_shoulders`).
    Both default to False so that bundles written before the options existed load unchanged.
    """

    target_frames: int | None = 64
    smooth_window: int = 11
    smooth_order: int = 3
    max_gap: int = 8
    canonical_hand: bool = False
    level_shoulders: bool = False

    def __post_init__(self) -> None:
        if self.target_frames is not None and (not isinstance(self.target_frames, (int, np.integer)) or self.target_frames < 1):
            raise ValueError(f"NormalizeConfig.target_frames must be a positive int or None, got {self.target_frames!r}")
        if self.smooth_order < 0:
            raise ValueError(f"NormalizeConfig.smooth_order must be >= 0, got {self.smooth_order}")
        if self.smooth_window < 1:
            raise ValueError(f"NormalizeConfig.smooth_window must be >= 1, got {self.smooth_window}")
        if self.max_gap < 0:
            raise ValueError(f"NormalizeConfig.max_gap must be >= 0, got {self.max_gap}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "NormalizeConfig":
        """Build from a mapping; unknown keys raise ``ValueError`` naming them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"NormalizeConfig: unknown keys {unknown}; known keys are {sorted(known)}")
        return cls(**d)


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def _check(lm: np.ndarray, name: str = "landmarks", *, min_ndim: int = 3) -> np.ndarray:
    """Return ``lm`` as a float array of shape ``(..., T, 75, 3)`` with T >= 1, or raise."""
    arr = np.asarray(lm)
    if arr.ndim < min_ndim or arr.shape[-2:] != (N_POINTS, N_COORDS):
        raise ValueError(f"{name}: expected shape (..., T, {N_POINTS}, {N_COORDS}), got {tuple(arr.shape)}")
    if arr.shape[-3] < 1:
        raise ValueError(f"{name}: clip has no frames (T = 0)")
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float32)
    refuse_infinite(arr, name)
    return arr


def _neighbour_indices(valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For ``valid (..., T)`` the index of the previous and next valid frame (inclusive).

    ``prev`` is -1 where no valid frame precedes, ``nxt`` is T where none follows.
    """
    t = valid.shape[-1]
    idx = np.arange(t)
    prev = np.maximum.accumulate(np.where(valid, idx, -1), axis=-1)
    nxt = np.minimum.accumulate(np.where(valid, idx, t)[..., ::-1], axis=-1)[..., ::-1]
    return prev, nxt


def _interp_fill(x: np.ndarray, max_gap: int | None, hold_edges: bool) -> np.ndarray:
    """Linearly fill NaN runs along the last axis of ``x (..., T)``.

    Interior runs no longer than ``max_gap`` (``None``: any length) are interpolated; with
    ``hold_edges`` leading/trailing runs take the nearest valid value. Rows without any valid
    value stay NaN. Only the rows that are partly missing are touched (the common case of a part
    present or absent throughout costs nothing).
    """
    shape = x.shape
    t = shape[-1]
    out = np.array(x, order="C").reshape(-1, t)  # one copy, time-contiguous
    valid = ~np.isnan(out)
    n_valid = np.count_nonzero(valid, axis=1)
    rows = np.flatnonzero((n_valid > 0) & (n_valid < t))
    if not rows.size:
        return out.reshape(shape)
    sub = out[rows]
    prev, nxt = _neighbour_indices(valid[rows])
    miss = np.flatnonzero(np.isnan(sub))  # only the missing entries are computed (flat positions in sub)
    p, q = prev.reshape(-1)[miss], nxt.reshape(-1)[miss]
    col = miss % t
    start = miss - col  # the row's first entry
    flat = sub.reshape(-1)
    xp = flat[start + np.maximum(p, 0)]
    xn = flat[start + np.minimum(q, t - 1)]
    has_prev, has_next = p >= 0, q < t
    interior = has_prev & has_next
    if max_gap is not None:
        interior &= (q - p - 1) <= max_gap
    w = (col - p) / np.maximum(q - p, 1)
    filled = np.where(interior, xp + (xn - xp) * w, np.nan)
    if hold_edges:
        filled = np.where(~has_prev, xn, filled)
        filled = np.where(~has_next, xp, filled)
    flat[miss] = filled
    out[rows] = sub
    return out.reshape(shape)


def _time_last(lm: np.ndarray) -> np.ndarray:
    """``(..., T, 75, 3) -> (..., 75, 3, T)``."""
    return np.moveaxis(lm, -3, -1)


def _time_back(x: np.ndarray) -> np.ndarray:
    """``(..., 75, 3, T) -> (..., T, 75, 3)``."""
    return np.moveaxis(x, -1, -3)


def _interp_at(lm: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Sample ``lm (..., T, P, C)`` at fractional frame ``positions (T',)`` in [0, T-1] linearly.

    A sample that falls exactly on a frame copies it; otherwise it is NaN when either
    neighbouring frame is NaN.
    """
    t = lm.shape[-3]
    pos = np.clip(np.asarray(positions, dtype=np.float64), 0.0, t - 1)
    i0 = np.floor(pos).astype(np.int64)
    i1 = np.minimum(i0 + 1, t - 1)
    w = (pos - i0).astype(lm.dtype)[:, None, None]
    a = np.take(lm, i0, axis=-3)
    b = np.take(lm, i1, axis=-3)
    exact = (w == 0)
    with np.errstate(invalid="ignore"):
        out = np.where(exact, a, a * (1 - w) + b * w)
    return out.astype(lm.dtype, copy=False)


# --------------------------------------------------------------------------------------------
# the chain
# --------------------------------------------------------------------------------------------
def fill_gaps(lm: np.ndarray, max_gap: int = 8) -> np.ndarray:
    """Interpolate short missing runs of each part over time: ``(..., T, 75, 3) -> same``.

    A part (pose, left hand, right hand) is missing in a frame when all its points are NaN. Runs
    of at most ``max_gap`` missing frames with the part present on both sides are filled by
    linear interpolation of every point; longer runs and leading/trailing runs stay NaN. Points
    missing individually inside a present part are filled the same way, channel by channel.
    """
    arr = _check(lm)
    if max_gap < 0:
        raise ValueError(f"fill_gaps: max_gap must be >= 0, got {max_gap}")
    return _fill_gaps(arr, max_gap)


def _fill_gaps(arr: np.ndarray, max_gap: int) -> np.ndarray:
    """:func:`fill_gaps` of a checked array: every (point, coordinate) series is filled on its own, so
    all parts go through one call."""
    return _time_back(_interp_fill(_time_last(arr), max_gap, hold_edges=False))


def smooth(lm: np.ndarray, window: int = 11, order: int = 3) -> np.ndarray:
    """Savitzky-Golay smoothing along time of ``(..., T, 75, 3)``; NaN stays exactly where it was.

    The window shrinks (kept odd) for clips shorter than ``window``; when no odd window larger than
    ``order`` fits, the clip is returned unchanged. NaN gaps are filled temporarily (linear inside,
    held at the edges) so that they do not spread, then restored.
    """
    return _smooth(_check(lm), window, order)


def _smooth(arr: np.ndarray, window: int, order: int) -> np.ndarray:
    """:func:`smooth` of a checked array."""
    t = arr.shape[-3]
    w = min(int(window), t)
    if w % 2 == 0:
        w -= 1
    if w <= order or w < 3:
        return arr.copy()
    missing = np.isnan(arr)
    x = _time_last(arr)
    if missing.any():
        x = _interp_fill(x, None, hold_edges=True)
    x = np.where(np.isnan(x), x.dtype.type(0), x)  # parts missing throughout (a checked array has no inf)
    y = _time_back(_savgol(x, w, order))
    return np.where(missing, arr.dtype.type(np.nan), y).astype(arr.dtype, copy=False)  # back to frames-first, NaN restored, in one pass


@lru_cache(maxsize=32)
def _savgol_weights(window: int, order: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Savitzky-Golay convolution coefficients ``(window,)`` and the edge projections ``(window // 2, window)``
    (left, right): the least-squares polynomial of the first/last ``window`` samples evaluated at the
    first/last ``window // 2`` of them."""
    from scipy.signal import savgol_coeffs  # here, not at the top: SciPy's import costs about 1 s of every CLI start

    vander = np.vander(np.arange(window, dtype=np.float64), order + 1)
    hat = vander @ np.linalg.pinv(vander)  # (window, window): samples -> the fitted polynomial at every sample
    half = window // 2
    out = (savgol_coeffs(window, order), hat[:half].copy(), hat[window - half :].copy())
    for a in out:
        a.setflags(write=False)
    return out


def _savgol(x: np.ndarray, window: int, order: int) -> np.ndarray:
    """``scipy.signal.savgol_filter(x, window, order, axis=-1, mode="interp")`` of ``x (..., T)``, T >= window,
    with the coefficients and the edge fits computed once per (window, order) instead of per call.

    Short clips or few series (one clip): one float64 matrix product with the whole ``(T, T)`` operator
    (:func:`_savgol_operator`, cached per length), a fixed cost; otherwise SciPy's own convolution for the
    interior and one small matrix product at each edge (the first and last ``window // 2`` samples, a
    least-squares polynomial). Both sum in float64, so for a float32 ``x`` they can differ from SciPy's
    float32 polynomial fit, and from each other, in the last bit."""
    t = x.shape[-1]
    rows = x.size // max(t, 1)
    if t <= _SAVGOL_DENSE_T or rows * t * t <= _SAVGOL_DENSE_WORK:
        op = _savgol_operator(t, int(window), int(order))
        return np.matmul(x, op, dtype=np.float64).astype(x.dtype, copy=False)
    from scipy.ndimage import convolve1d

    coeffs, left, right = _savgol_weights(int(window), int(order))
    y = convolve1d(x, coeffs, axis=-1, mode="constant")
    half = window // 2
    if half:
        y[..., :half] = x[..., :window] @ left.T
        y[..., -half:] = x[..., -window:] @ right.T
    return y


_SAVGOL_DENSE_T = 40  # up to this many frames the dense operator is the faster way at any batch size ...
_SAVGOL_DENSE_WORK = 2_000_000  # ... and beyond it while series x T^2 stays below this (one 64-frame clip: 0.9 M)


@lru_cache(maxsize=64)
def _savgol_operator(t: int, window: int, order: int) -> np.ndarray:
    """The transposed ``(T, T)`` Savitzky-Golay operator of :func:`_savgol` (``y = x @ op``), edges included (read-only)."""
    coeffs, left, right = _savgol_weights(window, order)
    half = window // 2
    op = np.zeros((t, t))
    for i in range(half, t - half):
        op[i - half : i + half + 1, i] = coeffs[::-1]  # convolution flips the kernel (symmetric for even derivatives anyway)
    if half:
        op[:window, :half] = left.T
        op[t - window :, t - half :] = right.T
    op.setflags(write=False)
    return op


def _nanmedian(x: np.ndarray, axis: int) -> np.ndarray:
    """``np.nanmedian(x, axis)`` (all-NaN -> NaN, no warning), the same values by one sort instead of NumPy's
    per-slice masked-array path."""
    srt = np.sort(np.moveaxis(x, axis, -1), axis=-1)  # NaN sorts last
    n = srt.shape[-1] - np.isnan(srt).sum(axis=-1)
    lo = np.take_along_axis(srt, np.maximum((n - 1) // 2, 0)[..., None], axis=-1)[..., 0]
    hi = np.take_along_axis(srt, np.maximum(n // 2, 0)[..., None] - (n == 0)[..., None], axis=-1)[..., 0]
    with np.errstate(invalid="ignore"):
        med = np.where(n % 2 == 1, lo, (lo + hi) / 2)
    return np.where(n > 0, med, np.nan).astype(srt.dtype, copy=False)


def body_frame_params(lm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-clip centre ``(..., 3)`` and scale ``(...)`` of the body frame (see :func:`to_body_frame`).

    Clips with nothing detected get NaN centre and scale.
    """
    return _body_frame_params(_check(lm))


def _body_frame_params(src: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`body_frame_params` of a checked array."""
    lead = src.shape[:-3]
    arr = src.reshape(-1, *src.shape[-3:])  # (M, T, 75, 3); the fallbacks are computed only for the clips that need them
    shoulders = arr[..., [LEFT_SHOULDER, RIGHT_SHOULDER], :].astype(np.float64)  # (M, T, 2, 3)
    mid = 0.5 * (shoulders[..., 0, :] + shoulders[..., 1, :])  # (M, T, 3)
    width = np.linalg.norm(shoulders[..., 0, :] - shoulders[..., 1, :], axis=-1)  # (M, T)
    med = _nanmedian(np.concatenate([mid, width[..., None]], axis=-1), axis=-2)  # (M, 4): both medians in one sort
    centre, scale = med[:, :3], med[:, 3]
    no_shoulders = np.flatnonzero(np.isnan(centre).any(axis=-1))
    if no_shoulders.size:
        centre[no_shoulders] = _nanmedian(_frame_centroid(arr[no_shoulders].astype(np.float64)), axis=-2)
    need = np.flatnonzero(~(scale > _EPS))
    if need.size:
        sub = arr[need].astype(np.float64)
        palms = np.stack(
            [np.linalg.norm(sub[..., h.start + MIDDLE_MCP, :] - sub[..., h.start + WRIST, :], axis=-1) for h in HANDS], axis=-1
        )  # (m, T, 2)
        palm = _nanmedian(palms.reshape(len(need), -1), axis=-1)
        scale[need] = np.where(~(scale[need] > _EPS), SHOULDER_PER_PALM * palm, scale[need])
        # last resort: the RMS distance of all present points from the centre
        sq = np.sum((sub - centre[need][:, None, None, :]) ** 2, axis=-1)  # (m, T, 75)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            spread = np.sqrt(np.nanmean(sq.reshape(len(need), -1), axis=-1))
        scale[need] = np.where(~(scale[need] > _EPS), spread, scale[need])
        scale[need] = np.where(~(scale[need] > _EPS) & ~np.isnan(centre[need, 0]), 1.0, scale[need])
    return centre.reshape(*lead, 3), scale.reshape(lead)


def _frame_centroid(arr: np.ndarray) -> np.ndarray:
    """Mean of the present points per frame: ``(..., T, 75, 3) -> (..., T, 3)`` (NaN if none)."""
    present = ~np.isnan(arr)
    total = np.where(present, arr, 0.0).sum(axis=-2)
    count = present.sum(axis=-2)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def to_body_frame(lm: np.ndarray, *, allow_empty: bool = False) -> np.ndarray:
    """Move ``(..., T, 75, 3)`` landmarks into a body-centred frame, one transform per clip.

    Centre: the median over frames of the shoulders' midpoint (pose 11, 12); without shoulders,
    the median centroid of the present points. Scale: the median shoulder width; without
    shoulders, ``SHOULDER_PER_PALM`` times the median palm length (wrist -> middle MCP); failing
    that the RMS spread of the points, and 1 for a single point. Medians make it robust to a few
    bad frames; one centre and scale per clip keep the motion intact and make the result invariant
    to translating and scaling the input.

    A clip with nothing detected raises ``ValueError`` (naming the clip index in a batch), or stays
    all-NaN when ``allow_empty``.
    """
    return _to_body_frame(_check(lm), allow_empty)


def _to_body_frame(arr: np.ndarray, allow_empty: bool) -> np.ndarray:
    """:func:`to_body_frame` of a checked array."""
    centre, scale = _body_frame_params(arr)
    empty = np.isnan(scale)
    if empty.any() and not allow_empty:
        if empty.ndim == 0:
            raise ValueError("to_body_frame: no landmarks detected in any frame")
        bad = [tuple(int(i) for i in ix) if len(ix) > 1 else int(ix[0]) for ix in np.argwhere(empty)]
        raise ValueError(f"to_body_frame: clips {bad[:10]}: no landmarks detected in any frame")
    out = (arr - centre[..., None, None, :]) / scale[..., None, None, None]
    return out.astype(arr.dtype, copy=False)


def hand_local_frame(lm: np.ndarray) -> np.ndarray:
    """Each hand centred on its wrist and scaled by its palm length: ``(..., T, 75, 3) -> (..., T, 2, 21, 3)``.

    Left hand first. Per frame, so the result describes the hand's shape only; a missing hand or a
    degenerate one (zero palm length) is NaN.
    """
    arr = _check(lm)
    hands = np.stack([arr[..., h, :] for h in HANDS], axis=-3)  # (..., T, 2, 21, 3)
    wrist = hands[..., WRIST : WRIST + 1, :]
    palm = np.linalg.norm(hands[..., MIDDLE_MCP, :] - hands[..., WRIST, :], axis=-1)[..., None, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(palm > _EPS, (hands - wrist) / np.where(palm > _EPS, palm, 1.0), np.nan)
    assert out.shape[-2] == N_HAND
    return out.astype(arr.dtype, copy=False)


def level_shoulders(lm: np.ndarray) -> np.ndarray:
    """Turn body-frame clips ``(..., T, 75, 3)`` about the z axis so the median shoulder line is horizontal.

    The angle is the median over frames of the right -> left shoulder direction in the x/y plane;
    a clip without shoulders is left as it is. Undoes camera roll within +-90 degrees; the rule
    commutes with :func:`mirror`.
    """
    arr = _check(lm)
    d = arr[..., LEFT_SHOULDER, :2] - arr[..., RIGHT_SHOULDER, :2]  # (..., T, 2)
    angle = _nanmedian(np.arctan2(d[..., 1], d[..., 0]), axis=-1)  # (...)
    angle = np.nan_to_num(angle, nan=0.0)
    c, s = np.cos(-angle)[..., None, None], np.sin(-angle)[..., None, None]
    out = arr.copy()
    x, y = arr[..., 0], arr[..., 1]
    out[..., 0] = c * x - s * y
    out[..., 1] = s * x + c * y
    return out


def mirror(lm: np.ndarray) -> np.ndarray:
    """The mirror image of body-frame landmarks ``(..., T, 75, 3)``: left and right swapped, x negated.

    In the body frame (origin between the shoulders) this is exactly what flipping the camera
    image does after :func:`to_body_frame`.
    """
    out = np.asarray(lm)[..., MIRROR_PERMUTATION, :]  # fancy indexing copies
    out[..., 0] = -out[..., 0]
    return out


def left_dominant(lm: np.ndarray) -> np.ndarray:
    """Whether the signer's left hand is the dominant one, per clip: ``(..., T, 75, 3) -> (...)`` bool.

    The dominant hand is the one detected in more frames; on a tie (e.g. both hands throughout) the
    one whose wrist is higher on average (smaller y: the active hand of most signs is raised), and
    on an exact tie (e.g. no hand at all) the right one. The rule is mirror-symmetric: a mirrored
    clip gets the opposite answer except on exact ties, where both images are symmetric anyway.
    """
    return _left_dominant(_check(lm))


def _left_dominant(arr: np.ndarray) -> np.ndarray:
    """:func:`left_dominant` of a checked array."""
    counts, heights = [], []
    for hand in (LEFT_HAND, RIGHT_HAND):
        wrist_y = arr[..., hand.start + WRIST, 1]  # (..., T)
        present = ~np.isnan(wrist_y)
        n = present.sum(axis=-1)
        counts.append(n)
        heights.append(np.where(n > 0, np.where(present, wrist_y, 0.0).sum(axis=-1) / np.maximum(n, 1), np.inf))
    (n_left, n_right), (y_left, y_right) = counts, heights
    return (n_left > n_right) | ((n_left == n_right) & (y_left < y_right))


def canonical_hand(lm: np.ndarray) -> np.ndarray:
    """Mirror each body-frame clip ``(..., T, 75, 3)`` whose dominant hand is the left (:func:`left_dominant`).

    Afterwards the dominant hand is the right one for every clip, so a left-handed signer, or a
    webcam that mirrors its image, looks like a right-handed signer: ``canonical_hand(mirror(x))
    == canonical_hand(x)`` wherever the hands are not exactly tied.
    """
    return _canonical_hand(_check(lm))


def _canonical_hand(arr: np.ndarray) -> np.ndarray:
    """:func:`canonical_hand` of a checked array."""
    flip = _left_dominant(arr)
    if flip.ndim == 0:
        return mirror(arr).astype(arr.dtype, copy=False) if flip else arr.copy()
    out = arr.copy()
    out[flip] = mirror(arr[flip])  # only the clips that turn (most do not)
    return out


def resample(lm: np.ndarray, target_frames: int) -> np.ndarray:
    """Linear interpolation along time to ``target_frames``: ``(..., T, 75, 3) -> (..., target, 75, 3)``.

    The first and last frames are kept exactly; a new frame is NaN where a neighbouring source
    frame is NaN; a one-frame clip is repeated.
    """
    arr = _check(lm)
    if not isinstance(target_frames, (int, np.integer)) or target_frames < 1:
        raise ValueError(f"resample: target_frames must be a positive int, got {target_frames!r}")
    return _resample(arr, int(target_frames))


def _resample(arr: np.ndarray, target_frames: int) -> np.ndarray:
    """:func:`resample` of a checked array to a checked length."""
    t = arr.shape[-3]
    if t == target_frames:
        return arr.copy()
    if t == 1:
        return np.repeat(arr, target_frames, axis=-3)
    return _interp_at(arr, _positions(t, target_frames))


@lru_cache(maxsize=256)
def _positions(t: int, target_frames: int) -> np.ndarray:
    """``np.linspace(0, t - 1, target_frames)``, once per pair of lengths (read-only)."""
    out = np.linspace(0.0, t - 1, int(target_frames))
    out.setflags(write=False)
    return out


def normalize_clip(lm: np.ndarray, cfg: NormalizeConfig | None = None, *, allow_empty: bool = False) -> np.ndarray:
    """fill_gaps -> smooth -> to_body_frame -> [canonical_hand] -> resample of ``(T, 75, 3)`` (or ``(N, T, 75, 3)``).

    Returns float32 ``(T', 75, 3)`` with ``T' = cfg.target_frames`` (or T when None).
    """
    return _normalize(_check(lm).astype(np.float32, copy=False), cfg or NormalizeConfig(), allow_empty)


def _normalize(arr: np.ndarray, cfg: NormalizeConfig, allow_empty: bool) -> np.ndarray:
    """:func:`normalize_clip` of a checked float32 array: the input was checked once, so no step checks again."""
    x = _fill_gaps(arr, cfg.max_gap)
    x = _smooth(x, cfg.smooth_window, cfg.smooth_order)
    x = _to_body_frame(x, allow_empty)
    if cfg.level_shoulders:
        x = level_shoulders(x)
    if cfg.canonical_hand:
        x = _canonical_hand(x)
    if cfg.target_frames is not None:
        x = _resample(x, cfg.target_frames)
    return x.astype(np.float32, copy=False)


def normalize_clips(
    clips: Sequence[np.ndarray] | np.ndarray, cfg: NormalizeConfig | None = None, *, allow_empty: bool = True
) -> np.ndarray:
    """Normalise clips of varying length to ``(N, target_frames, 75, 3)`` float32.

    Clips of equal length are processed together as one batch. Requires ``cfg.target_frames``.
    A clip with a wrong shape raises ``ValueError`` naming its index. A clip with nothing detected
    comes back all-NaN (its frame mask is all False, its features all zero): real data has such
    clips, e.g. the 60 "idle" (``-``) clips of the traduttore set, so one must not stop a batch;
    ``allow_empty=False`` raises ``ValueError`` naming them instead.
    """
    cfg = cfg or NormalizeConfig()
    if cfg.target_frames is None:
        raise ValueError("normalize_clips: NormalizeConfig.target_frames must be set to stack clips of different lengths")
    arrays = [_check(c, f"clip {i}") for i, c in enumerate(clips)]
    for i, a in enumerate(arrays):
        if a.ndim != 3:
            raise ValueError(f"normalize_clips: clip {i}: expected shape (T, {N_POINTS}, {N_COORDS}), got {tuple(a.shape)}")
    out = np.empty((len(arrays), cfg.target_frames, N_POINTS, N_COORDS), dtype=np.float32)
    lengths = np.array([a.shape[0] for a in arrays], dtype=np.int64)
    for t in np.unique(lengths):
        same = np.flatnonzero(lengths == t)
        for idx in np.array_split(same, max(1, -(-len(same) // _CHUNK))):
            _normalize_group(arrays, idx, out, cfg, allow_empty)
    return out


_CHUNK = 1024  # clips per vectorised batch: bounds the float64 temporaries to ~100 MB at T=64


def _normalize_group(arrays: list[np.ndarray], idx: np.ndarray, out: np.ndarray, cfg: NormalizeConfig, allow_empty: bool) -> None:
    """Normalise the equal-length clips ``arrays[idx]`` into ``out[idx]``."""
    batch = np.stack([arrays[i] for i in idx]).astype(np.float32, copy=False)
    try:
        out[idx] = _normalize(batch, cfg, allow_empty)
    except ValueError:
        _, scale = body_frame_params(batch)
        bad = idx[np.isnan(scale)]
        if bad.size == 0:
            raise
        raise ValueError(f"normalize_clips: clips {bad[:10].tolist()}: no landmarks detected in any frame") from None
