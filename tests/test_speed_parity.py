"""The fast feature and normalisation code against the implementations it replaced (kept here, verbatim
from before issue 22, as the reference): the same values on real clips, random clips and degenerate
ones (collinear points, repeated points, missing points and hands)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from signlang.features.engineering import _BLOCK_FNS, _EPS, _hands, frame_features, hull_shape
import warnings

from scipy.signal import savgol_filter

from signlang.features import normalize as nz
from signlang.features.normalize import NormalizeConfig, normalize_clips
from signlang.landmarks.layout import (
    HANDS,
    LEFT_HAND,
    LEFT_SHOULDER,
    MIDDLE_MCP,
    N_HAND,
    PART_SLICES,
    POSE,
    RIGHT_HAND,
    RIGHT_SHOULDER,
    WRIST,
    from_258,
)

_HULL_CHUNK = 4096


# ---------------------------------------------------------------------------------------------
# reference: the convex-hull hand shape before issue 22 (sort by angle, parallel reflex removal)
# ---------------------------------------------------------------------------------------------
def _cyclic_neighbours(alive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For ``alive (B, n)`` the index of the next and previous alive entry, cyclically."""
    n = alive.shape[1]
    a2 = np.concatenate([alive, alive], axis=1)
    idx = np.arange(2 * n)
    nxt = np.flip(np.minimum.accumulate(np.flip(np.where(a2, idx, 2 * n), axis=1), axis=1), axis=1)
    prv = np.maximum.accumulate(np.where(a2, idx, -1), axis=1)
    nxt_i = nxt[:, np.arange(1, n + 1)] % n
    prv_i = prv[:, np.arange(n - 1, 2 * n - 1)] % n
    return nxt_i, prv_i


def _compact(rel: np.ndarray, alive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Move the alive points of each row first (keeping their order) and cut to the widest row."""
    order = np.argsort(~alive, axis=1, kind="stable")
    width = max(int(alive.sum(axis=1).max()), 1)
    order = order[:, :width]
    return np.take_along_axis(rel, order[..., None], axis=1), np.take_along_axis(alive, order, axis=1)


def ref_hull_shape(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Area, perimeter and minimum-area bounding rectangle of 2-D convex hulls.

    ``points (B, n, 2)`` (NaN rows are ignored) -> ``(area, perimeter, rect_area)`` each ``(B,)``;
    fewer than 3 valid points give 0. Vectorised over B (see the module docstring).
    """
    pts = np.asarray(points, dtype=np.float64)
    valid = ~np.isnan(pts).any(axis=-1)
    count = valid.sum(axis=1)
    area, perimeter, rect = (np.zeros(pts.shape[0]) for _ in range(3))
    todo = count >= 3  # only these have a hull with an area (a missing hand costs nothing)
    if todo.any():
        area[todo], perimeter[todo], rect[todo] = _ref_hull_shape(pts[todo], valid[todo], count[todo])
    return area, perimeter, rect


def _ref_hull_shape(pts: np.ndarray, valid: np.ndarray, count: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`hull_shape` for rows with at least 3 valid points."""
    b, n, _ = pts.shape
    centre = np.where(valid[..., None], pts, 0.0).sum(axis=1) / np.maximum(count, 1)[:, None]
    pts = np.where(valid[..., None], pts, centre[:, None, :])  # invalid points sit at the centroid
    rel = pts - centre[:, None, :]
    rows = np.arange(b)[:, None]
    # Akl-Toussaint: points strictly inside the quadrilateral of the extreme points are not on the hull
    ext = np.stack(
        [np.argmin(np.where(valid, rel[..., 0], np.inf), axis=1), np.argmin(np.where(valid, rel[..., 1], np.inf), axis=1),
         np.argmax(np.where(valid, rel[..., 0], -np.inf), axis=1), np.argmax(np.where(valid, rel[..., 1], -np.inf), axis=1)],
        axis=1,
    )  # (B, 4) counter-clockwise: left, bottom, right, top
    q0 = rel[rows, ext]  # (B, 4, 2)
    q1 = np.roll(q0, -1, axis=1)
    d = q1 - q0
    side = d[:, :, None, 0] * (rel[:, None, :, 1] - q0[:, :, None, 1]) - d[:, :, None, 1] * (rel[:, None, :, 0] - q0[:, :, None, 0])
    inside = np.all(side > 0, axis=1)  # (B, n)
    # sort by angle around the centroid, ties (points on one ray) nearest first, so repeats are adjacent
    ang = np.where(valid, np.arctan2(rel[..., 1], rel[..., 0]), np.inf)
    order = np.lexsort((np.einsum("bnc,bnc->bn", rel, rel), ang), axis=1)
    rel = np.take_along_axis(rel, order[..., None], axis=1)
    alive = np.take_along_axis(valid & ~inside, order, axis=1)
    rel, alive = _compact(rel, alive)
    n = rel.shape[1]
    for _ in range(n):
        nxt, prv = _cyclic_neighbours(alive)
        p, pn, pp = rel, rel[rows, nxt], rel[rows, prv]
        cross = (p[..., 0] - pp[..., 0]) * (pn[..., 1] - p[..., 1]) - (p[..., 1] - pp[..., 1]) * (pn[..., 0] - p[..., 0])
        # strictly reflex vertices, and repeats of the previous point (a duplicate would block the test)
        drop = alive & ((cross < 0) | (np.all(p == pp, axis=-1) & (prv != np.arange(n))))
        if not drop.any():
            break
        alive &= ~drop
    rel, alive = _compact(rel, alive)  # the hull vertices, in order, first
    nxt, _ = _cyclic_neighbours(alive)
    pn = rel[rows, nxt]
    enough = alive.sum(axis=1) >= 3
    area = 0.5 * np.sum(np.where(alive, rel[..., 0] * pn[..., 1] - rel[..., 1] * pn[..., 0], 0.0), axis=1)
    edge = pn - rel
    length = np.linalg.norm(edge, axis=-1)
    perimeter = np.sum(np.where(alive, length, 0.0), axis=1)
    # minimum-area rectangle: one side lies on a hull edge; project every point on each edge
    e = edge / np.maximum(length, _EPS)[..., None]  # (B, n, 2)
    along = np.einsum("bkc,bjc->bkj", e, rel)  # (B, edges, points)
    across = e[..., 0, None] * rel[:, None, :, 1] - e[..., 1, None] * rel[:, None, :, 0]
    rect = (along.max(axis=2) - along.min(axis=2)) * (across.max(axis=2) - across.min(axis=2))
    rect = np.where(alive & (length > _EPS), rect, np.inf).min(axis=1)
    area = np.where(enough, np.abs(area), 0.0)
    perimeter = np.where(enough, perimeter, 0.0)
    rect = np.where(enough & np.isfinite(rect), rect, 0.0)
    return area, perimeter, rect



def ref_hand_shape(lm: np.ndarray) -> np.ndarray:
    h = _hands(lm)  # (M, T, 2, 21, 3)
    lead = h.shape[:3]
    flat = h[..., :2].reshape(-1, N_HAND, 2)
    pieces = [ref_hull_shape(flat[i : i + _HULL_CHUNK]) for i in range(0, flat.shape[0], _HULL_CHUNK)]
    area, perim, rect = (np.concatenate([pc[k] for pc in pieces]) for k in range(3))
    area, perim, rect = (a.reshape(lead) for a in (area, perim, rect))
    palm = np.linalg.norm(h[..., MIDDLE_MCP, :] - h[..., WRIST, :], axis=-1).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        circ = np.where(perim > _EPS, 4.0 * np.pi * area / np.maximum(perim, _EPS) ** 2, 0.0)
        rectangularity = np.where(rect > _EPS, area / np.maximum(rect, _EPS), 0.0)
        area_palm = np.where(palm > _EPS, area / np.maximum(palm, _EPS) ** 2, 0.0)
    out = np.stack([circ, rectangularity, area_palm], axis=-1)  # (M, T, 2, 3)
    missing = np.all(np.isnan(h[..., 0]), axis=-1)  # (M, T, 2)
    out = np.where(missing[..., None], np.nan, out)
    return out.reshape(*lead[:2], -1)



# ---------------------------------------------------------------------------------------------
# reference: normalisation before issue 22 (np.nanmedian, per-part gap filling, SciPy's savgol_filter,
# every fallback of the body frame computed for every clip, np.where over a mirrored copy)
# ---------------------------------------------------------------------------------------------
SHOULDER_PER_PALM = nz.SHOULDER_PER_PALM
_EPS_N = 1e-12


def _nanmedian(x: np.ndarray, axis: int) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(x, axis=axis)


def _check(lm: np.ndarray) -> np.ndarray:
    return np.asarray(lm)


_frame_centroid = nz._frame_centroid


def ref_body_frame_params(lm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-clip centre ``(..., 3)`` and scale ``(...)`` of the body frame (see :func:`to_body_frame`).

    Clips with nothing detected get NaN centre and scale.
    """
    arr = _check(lm).astype(np.float64)
    mid = 0.5 * (arr[..., LEFT_SHOULDER, :] + arr[..., RIGHT_SHOULDER, :])  # (..., T, 3)
    centre = _nanmedian(mid, axis=-2)  # (..., 3)
    centroid = _nanmedian(_frame_centroid(arr), axis=-2)
    no_shoulders = np.isnan(centre).any(axis=-1, keepdims=True)
    centre = np.where(no_shoulders, centroid, centre)

    width = np.linalg.norm(arr[..., LEFT_SHOULDER, :] - arr[..., RIGHT_SHOULDER, :], axis=-1)  # (..., T)
    scale = _nanmedian(width, axis=-1)
    palms = np.stack(
        [np.linalg.norm(arr[..., h.start + MIDDLE_MCP, :] - arr[..., h.start + WRIST, :], axis=-1) for h in HANDS], axis=-1
    )  # (..., T, 2)
    palm = _nanmedian(palms.reshape(*palms.shape[:-2], -1), axis=-1)
    scale = np.where(~(scale > _EPS_N), SHOULDER_PER_PALM * palm, scale)
    # last resort: the RMS distance of all present points from the centre
    sq = np.sum((arr - centre[..., None, None, :]) ** 2, axis=-1)  # (..., T, 75)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        spread = np.sqrt(np.nanmean(sq.reshape(*sq.shape[:-2], -1), axis=-1))
    scale = np.where(~(scale > _EPS_N), spread, scale)
    scale = np.where(~(scale > _EPS_N) & ~np.isnan(centre[..., 0]), 1.0, scale)
    return centre, scale


def _frame_centroid(arr: np.ndarray) -> np.ndarray:
    """Mean of the present points per frame: ``(..., T, 75, 3) -> (..., T, 3)`` (NaN if none)."""
    present = ~np.isnan(arr)
    total = np.where(present, arr, 0.0).sum(axis=-2)
    count = present.sum(axis=-2)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)



def ref_fill_gaps(arr: np.ndarray, max_gap: int) -> np.ndarray:
    out = arr.copy()
    for part in PART_SLICES.values():
        x = nz._time_last(arr[..., part, :])
        out[..., part, :] = nz._time_back(nz._interp_fill(x, max_gap, hold_edges=False))
    return out


def ref_smooth(arr: np.ndarray, window: int, order: int) -> np.ndarray:
    t = arr.shape[-3]
    w = min(int(window), t)
    w -= 1 if w % 2 == 0 else 0
    if w <= order or w < 3:
        return arr.copy()
    missing = np.isnan(arr)
    x = nz._time_last(arr)
    if missing.any():
        x = nz._interp_fill(x, None, hold_edges=True)
    y = savgol_filter(np.nan_to_num(x, nan=0.0), window_length=w, polyorder=order, axis=-1, mode="interp")
    out = nz._time_back(y).astype(arr.dtype, copy=False)
    out[missing] = np.nan
    return out


def ref_canonical_hand(arr: np.ndarray) -> np.ndarray:
    flip = nz.left_dominant(arr)[..., None, None, None]
    return np.where(flip, nz.mirror(arr), arr).astype(arr.dtype, copy=False)


def ref_normalize(arr: np.ndarray, cfg: NormalizeConfig) -> np.ndarray:
    """The chain of :func:`normalize_clip` built from the references (batched, empty clips stay NaN)."""
    x = ref_smooth(ref_fill_gaps(arr.astype(np.float32), cfg.max_gap), cfg.smooth_window, cfg.smooth_order)
    centre, scale = ref_body_frame_params(x)
    x = ((x - centre[..., None, None, :]) / scale[..., None, None, None]).astype(np.float32)
    if cfg.canonical_hand:
        x = ref_canonical_hand(x)
    return nz.resample(x, cfg.target_frames) if cfg.target_frames else x


# ---------------------------------------------------------------------------------------------
# tests
# ---------------------------------------------------------------------------------------------
def _real_norm(npz, n: int = 96, frames: int = 64) -> np.ndarray:
    """``n`` real traduttore clips (a fixed sample of all classes) normalised to ``frames`` frames."""
    data = np.load(npz)
    idx = np.random.default_rng(0).choice(len(data["X"]), n, replace=False)
    lm, _ = from_258(data["X"][np.sort(idx)])
    return normalize_clips(list(lm), NormalizeConfig(target_frames=frames, canonical_hand=True))


def _hard_point_sets(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Random and degenerate 21-point sets: rounded (repeats, collinear triples), missing points, a
    line, a single repeated point, integer grids, tiny and huge scales."""
    rnd = rng.normal(size=(400, 21, 2))
    missing = rnd.copy()
    missing[rng.random((400, 21)) < 0.6] = np.nan  # some rows keep fewer than 3 points
    line = rng.normal(size=(50, 21, 1)) * rng.normal(size=(50, 1, 2)) + rng.normal(size=(50, 1, 2))
    return {
        "random": rnd,
        "rounded": np.round(rnd, 1),
        "grid": rng.integers(0, 4, size=(400, 21, 2)).astype(float),
        "missing": missing,
        "collinear": line,
        "one point": np.repeat(rng.normal(size=(20, 1, 2)), 21, axis=1),
        "tiny": rnd[:50] * 1e-6,
        "huge": rnd[:50] * 1e4,
    }


def test_hand_shape_block_equals_the_reference_on_degenerate_hands() -> None:
    rng = np.random.default_rng(11)
    lm = rng.normal(0, 0.3, (4, 16, 75, 3)).astype(np.float32)
    lm[0, :, LEFT_HAND] = np.nan  # a missing hand
    lm[1, :5, RIGHT_HAND, :2] = rng.normal(size=(5, 1, 2)).astype(np.float32) * np.linspace(0, 1, 21)[:, None].astype(np.float32)  # a hand on a line
    lm[2, :, RIGHT_HAND] = lm[2, :, RIGHT_HAND.start][:, None]  # every point of the hand in one place
    lm[3, ::2, LEFT_HAND.start + 3 : LEFT_HAND.start + 17] = np.nan  # points missing inside a present hand
    with np.errstate(invalid="ignore"):
        np.testing.assert_allclose(_BLOCK_FNS["hand_shape"](lm), ref_hand_shape(lm), rtol=1e-7, atol=1e-9)


def test_hand_shape_equals_the_reference_on_real_clips(traduttore_npz) -> None:
    norm = _real_norm(traduttore_npz)
    assert (~np.isnan(_hands(norm)[..., 0, 0])).sum() > 5000  # thousands of real hands
    np.testing.assert_allclose(_BLOCK_FNS["hand_shape"](norm), ref_hand_shape(norm), rtol=1e-9, atol=1e-12)
    sl = frame_features(norm, ["hand_shape"])
    assert np.isfinite(sl).all() and (sl != 0).any()


def _hostile_clips(rng: np.random.Generator, n: int = 12, t: int = 30) -> np.ndarray:
    """Raw-looking clips with every fallback of the body frame: gaps, no shoulders, no pose, no hands,
    a single point, nothing at all."""
    lm = (rng.normal(0.5, 0.1, (n, t, 75, 3)) + np.linspace(0, 0.05, t)[None, :, None, None]).astype(np.float32)
    lm[:, 5:9, LEFT_HAND] = np.nan  # a short gap (filled)
    lm[:, 12:25, RIGHT_HAND] = np.nan  # a long gap (kept)
    lm[:, :, RIGHT_HAND.start + 4] = np.where(rng.random((n, t, 1)) < 0.3, np.nan, lm[:, :, RIGHT_HAND.start + 4])
    lm[1, :, [LEFT_SHOULDER, RIGHT_SHOULDER]] = np.nan  # no shoulders: centroid, palm scale
    lm[2, :, POSE] = np.nan  # hands only
    lm[3, :, POSE] = np.nan
    lm[3, :, LEFT_HAND] = np.nan
    lm[3, :, RIGHT_HAND.start + 1 :] = np.nan  # a single point: scale 1
    lm[4] = np.nan  # nothing detected
    lm[5, ::3] = np.nan  # every third frame empty
    lm[6, :, :, 0] = 1.0 - lm[6, :, :, 0]  # mirrored: the left hand leads
    lm[6, :, RIGHT_HAND] = np.nan
    return lm


def test_nanmedian_equals_numpy_bit_for_bit() -> None:
    rng = np.random.default_rng(5)
    for dtype in (np.float64, np.float32):
        x = rng.normal(size=(40, 6, 33)).astype(dtype)
        x[rng.random(x.shape) < 0.4] = np.nan
        x[0] = np.nan  # all-NaN slices
        for axis in (-1, 1):
            assert np.array_equal(nz._nanmedian(x, axis), _nanmedian(x, axis), equal_nan=True)
            assert nz._nanmedian(x, axis).dtype == dtype


def test_savgol_equals_scipy() -> None:
    rng = np.random.default_rng(6)
    for t, w, order in ((64, 11, 3), (20, 5, 2), (11, 11, 3), (9, 3, 1), (40, 7, 0)):
        x = rng.normal(size=(5, 3, t))
        np.testing.assert_allclose(nz._savgol(x, w, order), savgol_filter(x, w, order, axis=-1, mode="interp"), rtol=1e-10, atol=1e-12)
        x32 = x.astype(np.float32)
        ref = savgol_filter(x32, w, order, axis=-1, mode="interp")
        np.testing.assert_allclose(nz._savgol(x32, w, order).astype(np.float32), ref, rtol=2e-6, atol=2e-6)


def test_normalisation_steps_equal_the_reference() -> None:
    lm = _hostile_clips(np.random.default_rng(8))
    filled = nz.fill_gaps(lm, 8)
    assert np.array_equal(filled, ref_fill_gaps(lm, 8), equal_nan=True)
    np.testing.assert_allclose(nz.smooth(filled, 11, 3), ref_smooth(filled, 11, 3), rtol=2e-6, atol=2e-6)
    for clips in (filled, filled[0], filled[4]):  # a batch, one clip, an empty clip
        (c, s), (rc, rs) = nz.body_frame_params(clips), ref_body_frame_params(clips)
        assert np.array_equal(c, rc, equal_nan=True) and np.array_equal(s, rs, equal_nan=True)
    body = nz.to_body_frame(filled, allow_empty=True)
    assert np.array_equal(nz.canonical_hand(body), ref_canonical_hand(body), equal_nan=True)
    assert np.array_equal(nz.canonical_hand(body[6]), ref_canonical_hand(body[6]), equal_nan=True)
    assert nz.left_dominant(body).sum() >= 1  # the mirrored clip turns


@pytest.mark.parametrize("cfg", [NormalizeConfig(), NormalizeConfig(target_frames=32, smooth_window=5, smooth_order=2, canonical_hand=True)])
def test_normalize_clips_equals_the_reference(cfg: NormalizeConfig) -> None:
    lm = _hostile_clips(np.random.default_rng(9))
    out = normalize_clips(list(lm), cfg)
    ref = ref_normalize(lm, cfg)
    assert np.array_equal(np.isnan(out), np.isnan(ref))
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)


def test_normalize_clips_equals_the_reference_on_real_clips(traduttore_npz) -> None:
    data = np.load(traduttore_npz)
    lm, _ = from_258(data["X"][::40])
    cfg = NormalizeConfig(target_frames=32, smooth_window=5, smooth_order=2, canonical_hand=True)
    out = normalize_clips(list(lm), cfg)
    ref = ref_normalize(lm, cfg)
    assert np.array_equal(np.isnan(out), np.isnan(ref))
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)
    assert np.mean((out == ref) | np.isnan(ref)) > 0.99  # all but the last bit of a few edge samples


def test_shipped_model_gives_the_same_probabilities_as_with_the_reference_code(traduttore_npz, monkeypatch) -> None:
    """The shipped asl-cafe bundle on real clips: the fast normalisation and hull against the reference ones."""
    import signlang
    from signlang.features import engineering
    from signlang.inference.plan import compute_features
    from signlang.inference.predictor import Predictor

    data = np.load(traduttore_npz)
    lm, _ = from_258(data["X"][5::97])  # ~48 clips of every class
    bundle = Path(signlang.__file__).parent / "pretrained" / "asl-cafe"
    with Predictor(bundle, backend="torch", threads=1) as pred:
        fast = pred.proba(list(lm))
        X = ref_normalize(lm, pred.normalize_config)
        X = np.where(np.isnan(X).all(axis=(1, 2, 3), keepdims=True), np.nan, X)  # empty clips stay empty
        monkeypatch.setitem(engineering._BLOCK_FNS, "hand_shape", ref_hand_shape)
        ref = pred.runner.run(compute_features(X, pred.runner.plan))[0]
    assert fast.shape == (len(lm), len(pred.classes))
    np.testing.assert_allclose(fast, ref, atol=1e-5)
    assert np.array_equal(fast.argmax(axis=1), ref.argmax(axis=1))
