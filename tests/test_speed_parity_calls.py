"""Issue 22 item 1, second round (fewer, larger NumPy calls): the rewritten joint angles, NaN/inf cleanup,
pooling, gap filling, part presence and both hull paths against the code they replaced, kept here verbatim
as the reference. Same values: bit-identical everywhere but the hull (rounding, ~1e-16 relative)."""

from __future__ import annotations

import numpy as np
import pytest

from signlang.features import engineering as eng
from signlang.features import normalize as nz
from signlang.features.engineering import FEATURE_LIMIT, _BLOCK_FNS, _EPS, _hands, frame_features, frame_mask, hull_shape, pool_features
from signlang.features.normalize import NormalizeConfig, normalize_clips
from signlang.landmarks.layout import LEFT_HAND, POSE, RIGHT_HAND, from_258, part_present

from test_speed_parity import _hard_point_sets, _hostile_clips, ref_hull_shape


# ---------------------------------------------------------------------------------------------
# references: the code before this change
# ---------------------------------------------------------------------------------------------
def ref_joint_angles(lm: np.ndarray) -> np.ndarray:
    h = _hands(lm)  # (M, T, 2, 21, 3)
    pairs = np.asarray(eng.ANGLE_PAIRS)  # (13, 2, 2)
    u = h[..., pairs[:, 0, 1], :] - h[..., pairs[:, 0, 0], :]  # (M, T, 2, 13, 3)
    v = h[..., pairs[:, 1, 1], :] - h[..., pairs[:, 1, 0], :]
    uu, vv, uv = u * u, v * v, u * v  # (M, T, 2, 13, 3)
    dot = np.stack([uv.sum(-1), uv[..., 0] + uv[..., 1], uv[..., 1] + uv[..., 2]], axis=-2)  # (M, T, 2, 3, 13)
    nu = np.stack([uu.sum(-1), uu[..., 0] + uu[..., 1], uu[..., 1] + uu[..., 2]], axis=-2)
    nv = np.stack([vv.sum(-1), vv[..., 0] + vv[..., 1], vv[..., 1] + vv[..., 2]], axis=-2)
    norm = np.sqrt(nu * nv)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.where(norm > _EPS, dot / np.maximum(norm, _EPS), 0.0)
    cos = np.where(np.isnan(dot), np.nan, np.clip(cos, -1.0, 1.0))
    return cos.reshape(*lm.shape[:2], -1)


def ref_finite(x: np.ndarray) -> np.ndarray:
    out = np.nan_to_num(x, copy=True, nan=0.0, posinf=FEATURE_LIMIT, neginf=-FEATURE_LIMIT)
    np.clip(out, -FEATURE_LIMIT, FEATURE_LIMIT, out=out)
    return out


def ref_pool_features(feats: np.ndarray, mask: np.ndarray) -> np.ndarray:
    x = np.asarray(feats, dtype=np.float32)
    m = np.asarray(mask, dtype=bool)
    if not np.isfinite(x).all():
        x = np.nan_to_num(x, nan=0.0, posinf=FEATURE_LIMIT, neginf=-FEATURE_LIMIT)
    mm = m[..., None]
    full = bool(m.all())
    w = mm.astype(np.float32)
    n = m.sum(axis=-1)[..., None]
    any_ = n > 0
    denom = np.maximum(n, 1).astype(np.float64)
    mean = (x if full else x * w).sum(axis=-2, dtype=np.float64) / denom
    dev = x - mean[..., None, :].astype(np.float32)
    var = (dev * dev if full else dev * dev * w).sum(axis=-2, dtype=np.float64) / denom
    std = np.sqrt(np.maximum(var, 0.0))
    if full:
        mn, mx = x.min(axis=-2), x.max(axis=-2)
    else:
        mn = np.where(any_, np.where(mm, x, np.inf).min(axis=-2), 0.0)
        mx = np.where(any_, np.where(mm, x, -np.inf).max(axis=-2), 0.0)
    t = x.shape[-2]
    first_i = np.argmax(m, axis=-1)
    last_i = t - 1 - np.argmax(np.flip(m, axis=-1), axis=-1)
    first = np.where(any_, np.take_along_axis(x, first_i[..., None, None], axis=-2)[..., 0, :], 0.0)
    last = np.where(any_, np.take_along_axis(x, last_i[..., None, None], axis=-2)[..., 0, :], 0.0)
    return np.concatenate([mean, std, mn, mx, first, last], axis=-1).astype(np.float32)


def _ref_neighbour_indices(valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t = valid.shape[-1]
    idx = np.arange(t)
    prev = np.maximum.accumulate(np.where(valid, idx, -1), axis=-1)
    nxt = np.flip(np.minimum.accumulate(np.flip(np.where(valid, idx, t), axis=-1), axis=-1), axis=-1)
    return prev, nxt


def ref_interp_fill(x: np.ndarray, max_gap: int | None, hold_edges: bool) -> np.ndarray:
    shape = x.shape
    t = shape[-1]
    flat = np.ascontiguousarray(x).reshape(-1, t)
    valid = ~np.isnan(flat)
    n_valid = valid.sum(axis=1)
    rows = (n_valid > 0) & (n_valid < t)
    out = flat.copy()
    if not rows.any():
        return out.reshape(shape)
    sub = flat[rows]
    ok = valid[rows]
    prev, nxt = _ref_neighbour_indices(ok)
    idx = np.arange(t)
    has_prev = prev >= 0
    has_next = nxt < t
    xp = np.take_along_axis(sub, np.clip(prev, 0, t - 1), axis=-1)
    xn = np.take_along_axis(sub, np.clip(nxt, 0, t - 1), axis=-1)
    w = (idx - prev) / np.maximum(nxt - prev, 1)
    interior = ~ok & has_prev & has_next
    if max_gap is not None:
        interior &= (nxt - prev - 1) <= max_gap
    filled = np.where(interior, xp + (xn - xp) * w, sub)
    if hold_edges:
        filled = np.where(~ok & ~has_prev, xn, filled)
        filled = np.where(~ok & ~has_next, xp, filled)
    out[rows] = filled
    return out.reshape(shape)


def ref_part_present(lm: np.ndarray) -> np.ndarray:
    return np.stack([~np.all(np.isnan(lm[..., s, 0]), axis=-1) for s in (POSE, LEFT_HAND, RIGHT_HAND)], axis=-1)


# ---------------------------------------------------------------------------------------------
# tests
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def real_norm(traduttore_npz) -> np.ndarray:
    """120 real traduttore clips (every class, hands and idle ones) normalised to 64 frames."""
    data = np.load(traduttore_npz)
    idx = np.sort(np.random.default_rng(2).choice(len(data["X"]), 120, replace=False))
    lm, _ = from_258(data["X"][idx])
    return normalize_clips(list(lm), NormalizeConfig(target_frames=64, canonical_hand=True))


def _odd_clips() -> np.ndarray:
    """Body-frame-like clips with missing hands, single missing points, a missing z, an empty clip and a hand in one place."""
    rng = np.random.default_rng(3)
    lm = rng.normal(0, 0.5, (6, 20, 75, 3)).astype(np.float32)
    lm[0, :, LEFT_HAND] = np.nan
    lm[1, ::2, RIGHT_HAND.start : RIGHT_HAND.start + 6] = np.nan
    lm[2, :, :, 2] = np.nan
    lm[3] = np.nan
    lm[4, :, RIGHT_HAND, :2] = lm[4, :, RIGHT_HAND.start : RIGHT_HAND.start + 1, :2]
    return lm


@pytest.mark.parametrize("few", [0, 10**6], ids=["chain loop", "fixed calls"])
def test_both_hull_paths_equal_the_reference(few: int, monkeypatch) -> None:
    """The O(n^2) slope path (few hulls) and the monotone chain (many) each against the pre-issue-22 reference."""
    monkeypatch.setattr(eng, "_FEW_HULLS", few)
    for name, pts in _hard_point_sets(np.random.default_rng(17)).items():
        area, perim, rect = hull_shape(pts)
        r_area, r_perim, r_rect = ref_hull_shape(pts)
        scale = np.nanmax(np.abs(pts)) if np.isfinite(pts).any() else 1.0
        np.testing.assert_allclose(area, r_area, rtol=1e-9, atol=1e-12 * scale**2, err_msg=name)
        np.testing.assert_allclose(rect, r_rect, rtol=1e-9, atol=1e-12 * scale**2, err_msg=name)
        if name != "collinear":  # the reference's perimeter of a segment depended on rounding; now twice its length
            np.testing.assert_allclose(perim, r_perim, rtol=1e-9, atol=1e-12 * scale, err_msg=name)
        else:
            extent = np.linalg.norm(pts.max(axis=1) - pts.min(axis=1), axis=-1)
            np.testing.assert_allclose(perim, 2 * extent, rtol=1e-9, err_msg=name)


def test_hull_paths_agree_on_real_hands(real_norm, monkeypatch) -> None:
    """One clip goes through the fixed-call path, a batch through the chain loop: the same block values."""
    hands = real_norm[(~np.isnan(real_norm[:, :, LEFT_HAND.start : RIGHT_HAND.stop, 0])).any(axis=(1, 2))]
    assert len(hands) >= 50
    batch = _BLOCK_FNS["hand_shape"](hands)  # thousands of hulls: the chain loop
    one = np.concatenate([_BLOCK_FNS["hand_shape"](hands[i : i + 1]) for i in range(len(hands))])  # <= 128 hulls each
    assert np.array_equal(np.isnan(batch), np.isnan(one)) and np.isfinite(batch).sum() > 5000
    np.testing.assert_allclose(one, batch, rtol=1e-9, atol=1e-12)
    monkeypatch.setattr(eng, "_FEW_HULLS", 10**6)
    np.testing.assert_allclose(_BLOCK_FNS["hand_shape"](hands), batch, rtol=1e-9, atol=1e-12)


def test_joint_angles_equal_the_reference_bit_for_bit(real_norm) -> None:
    with np.errstate(invalid="ignore"):
        for lm in (real_norm, real_norm[:1], _odd_clips()):
            new, ref = _BLOCK_FNS["joint_angles"](lm), ref_joint_angles(lm)
            assert new.shape == ref.shape and new.dtype == ref.dtype
            assert np.array_equal(new, ref, equal_nan=True)
    assert np.isfinite(ref_joint_angles(real_norm)).sum() > 10**5  # real angles, not only missing hands


def test_feature_cleanup_equals_nan_to_num_and_clip() -> None:
    rng = np.random.default_rng(4)
    x = (rng.normal(size=(3, 50, 40)) * 2000).astype(np.float32)
    x[rng.random(x.shape) < 0.2] = np.nan
    x.flat[:6] = [np.inf, -np.inf, np.nan, -0.0, FEATURE_LIMIT, -FEATURE_LIMIT]
    ref = ref_finite(x)
    got = x.copy()
    eng._finite(got)
    assert np.array_equal(got, ref) and np.isfinite(got).all()
    assert got.flat[0] == FEATURE_LIMIT and got.flat[1] == -FEATURE_LIMIT and got.flat[2] == 0.0


def test_frame_features_and_pooling_equal_the_reference(real_norm, monkeypatch) -> None:
    """The whole table with the new joint angles, cleanup and pooling against the table built from the references."""
    new = frame_features(real_norm)
    mask = frame_mask(real_norm)
    monkeypatch.setitem(eng._BLOCK_FNS, "joint_angles", ref_joint_angles)
    monkeypatch.setattr(eng, "_finite", lambda d: np.copyto(d, ref_finite(d)))
    ref = frame_features(real_norm)
    assert np.array_equal(new, ref)
    assert np.array_equal(pool_features(new, mask), ref_pool_features(ref, mask))
    assert np.array_equal(frame_features(real_norm[:1]), new[:1])  # one clip alone: the same row as in the batch


def test_pooling_equals_the_reference_on_masks_and_bad_values() -> None:
    rng = np.random.default_rng(5)
    for shape in [(4, 10, 7), (10, 7), (2, 3, 5, 4), (1, 1, 3)]:
        x = rng.normal(size=shape).astype(np.float32)
        x.flat[::7] = np.nan
        x.flat[3 % x.size] = np.inf
        for m in (np.ones(shape[:-1], bool), rng.random(shape[:-1]) < 0.5, np.zeros(shape[:-1], bool)):
            got, ref = pool_features(x, m), ref_pool_features(x, m)
            assert got.shape == ref.shape and got.dtype == np.float32 and np.array_equal(got, ref), shape
    x = rng.normal(size=(150, 6, 4)).astype(np.float32)  # more clips than one pooling chunk, full and partial masks mixed
    m = np.ones((150, 6), bool)
    m[70:, ::2] = False
    m[149] = False
    assert np.array_equal(pool_features(x, m), ref_pool_features(x, m))
    assert np.array_equal(pool_features(x[:, None], m[:, None])[:, 0], ref_pool_features(x, m))  # extra leading axes
    with pytest.raises(ValueError, match="mask shape"):
        pool_features(np.zeros((2, 5, 3), np.float32), np.ones((2, 4), bool))


def test_gap_filling_equals_the_reference() -> None:
    rng = np.random.default_rng(6)
    for dtype in (np.float32, np.float64):
        for shape in [(5, 75, 3, 20), (1, 75, 3, 64), (7, 3, 1), (40, 33), (3, 9)]:
            x = rng.normal(size=shape).astype(dtype)
            x[rng.random(shape) < 0.3] = np.nan
            x[0] = np.nan
            x[..., -1, :] = np.nan  # a series missing throughout
            view = np.moveaxis(np.moveaxis(x, -1, 0).copy(), 0, -1)  # not time-contiguous, as the chain passes it
            for max_gap in (None, 0, 2, 8):
                for hold in (False, True):
                    got, ref = nz._interp_fill(view, max_gap, hold), ref_interp_fill(view, max_gap, hold)
                    assert got.dtype == ref.dtype and np.array_equal(got, ref, equal_nan=True), (shape, max_gap, hold)
    x = np.arange(10.0)
    x[3:6] = np.nan
    np.testing.assert_allclose(nz._interp_fill(x, 3, False), np.arange(10.0))  # a real interpolation happened
    assert np.isnan(nz._interp_fill(x, 2, False)[3:6]).all()  # a gap longer than max_gap stays


def test_part_present_equals_the_reference(real_norm) -> None:
    lm = _hostile_clips(np.random.default_rng(7))
    for arr in (real_norm, lm, lm[0], lm[:, :1]):
        assert np.array_equal(part_present(arr), ref_part_present(arr))
    assert part_present(real_norm).any(axis=(0, 1)).all() and not part_present(lm[4]).any()


def test_single_clip_normalisation_equals_the_batch(traduttore_npz) -> None:
    """The single-clip path (one check, no re-validation inside) gives the batch's rows, and still refuses bad input."""
    data = np.load(traduttore_npz)
    lm, _ = from_258(data["X"][3::300])
    cfg = NormalizeConfig(target_frames=32, smooth_window=5, smooth_order=2, canonical_hand=True)
    batch = normalize_clips(list(lm), cfg)
    for i, clip in enumerate(lm):
        assert np.array_equal(normalize_clips([clip], cfg)[0], batch[i], equal_nan=True)
        assert np.array_equal(nz.normalize_clip(clip, cfg, allow_empty=True), batch[i], equal_nan=True)
    bad = lm[0].copy()
    bad[2, 5, 0] = np.inf
    with pytest.raises(ValueError, match="clip 1.*infinite"):
        normalize_clips([lm[1], bad], cfg)


def test_gradient_equals_numpy() -> None:
    rng = np.random.default_rng(8)
    for t in (1, 2, 3, 5, 40):
        for dtype in (np.float32, np.float64):
            x = rng.normal(size=(3, t, 7)).astype(dtype)
            x[0, t // 2] = np.nan
            got = eng._gradient(x)
            ref = np.gradient(x, axis=1) if t > 1 else np.zeros_like(x)
            assert got.dtype == ref.dtype and np.array_equal(got, ref, equal_nan=True), t


def test_dense_savgol_operator_equals_the_convolution(monkeypatch) -> None:
    """The cached (T, T) operator (short or single clips) against SciPy and against the convolution path."""
    from scipy.signal import savgol_filter

    rng = np.random.default_rng(9)
    for t, window, order in ((64, 11, 3), (20, 5, 2), (11, 11, 3), (9, 3, 1), (41, 7, 0), (64, 5, 2)):
        x = rng.normal(size=(4, 3, t))
        op = nz._savgol_operator(t, window, order)
        assert op.shape == (t, t) and not op.flags.writeable
        np.testing.assert_allclose(x @ op, savgol_filter(x, window, order, axis=-1, mode="interp"), rtol=1e-10, atol=1e-12)
        x32 = rng.random((50, 225, t)).astype(np.float32)  # image-like coordinates
        monkeypatch.setattr(nz, "_SAVGOL_DENSE_T", 10**6)
        dense = nz._savgol(x32, window, order)
        monkeypatch.setattr(nz, "_SAVGOL_DENSE_T", 0)
        monkeypatch.setattr(nz, "_SAVGOL_DENSE_WORK", 0)
        conv = nz._savgol(x32, window, order)
        monkeypatch.undo()
        assert dense.dtype == conv.dtype == np.float32
        assert np.abs(dense - conv).max() <= 1.2e-7 and np.mean(dense == conv) > 0.99  # both sum in float64: the last bit at most
