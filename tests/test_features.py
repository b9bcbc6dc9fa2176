"""The feature table: block dimensions, finiteness on hostile input, hull shapes, pooling, real data."""

from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.spatial import ConvexHull

from signlang.features.engineering import (
    FEATURE_BLOCKS,
    POOL_STATS,
    block_slices,
    feature_dim,
    frame_features,
    frame_mask,
    hull_shape,
    pool_features,
    pooled_dim,
)
from signlang.features.normalize import NormalizeConfig, normalize_clip, normalize_clips
from signlang.landmarks.layout import LEFT_HAND, POSE, RIGHT_HAND, RIGHT_WRIST, from_258

DOCUMENTED = {
    "hands_xyz": 126, "joint_angles": 78, "velocity": 126, "acceleration": 126,
    "hand_shape": 6, "trajectory": 30, "body_relative": 18, "presence": 3,
}


def body_clip(t: int = 24, seed: int = 0) -> np.ndarray:
    """A clip already in a body-like frame, both hands present and moving."""
    rng = np.random.default_rng(seed)
    lm = rng.normal(0, 0.3, (75, 3)).astype(np.float32)[None].repeat(t, axis=0)
    lm += rng.normal(0, 0.01, lm.shape).astype(np.float32)
    lm[:, 11] = [0.5, 0, 0]
    lm[:, 12] = [-0.5, 0, 0]
    return lm


def test_block_dimensions_match_documentation() -> None:
    assert FEATURE_BLOCKS == DOCUMENTED
    assert list(FEATURE_BLOCKS) == list(DOCUMENTED)  # order is part of the contract
    lm = body_clip()
    full = frame_features(lm)
    assert full.shape == (24, feature_dim()) and full.dtype == np.float32
    assert feature_dim() == sum(DOCUMENTED.values())
    for name, dim in DOCUMENTED.items():
        alone = frame_features(lm, [name])
        assert alone.shape == (24, dim) == (24, feature_dim([name]))
        np.testing.assert_allclose(full[:, block_slices()[name]], alone, atol=1e-6)
    with pytest.raises(ValueError, match="'bogus'.*known blocks"):
        frame_features(lm, ["hands_xyz", "bogus"])


def test_missing_hand_gives_zeros_and_presence_flags() -> None:
    lm = body_clip()
    lm[:, LEFT_HAND] = np.nan
    lm[5:8, RIGHT_HAND] = np.nan
    f = frame_features(lm)
    sl = block_slices()
    assert np.isfinite(f).all()
    assert (f[:, sl["hands_xyz"]][:, :63] == 0).all()
    np.testing.assert_array_equal(f[:, sl["presence"]][:, 1], 0)
    np.testing.assert_array_equal(f[:, sl["presence"]][:, 2], np.r_[np.ones(5), np.zeros(3), np.ones(16)])
    np.testing.assert_array_equal(frame_mask(lm), np.ones(24, bool))
    lm[:, POSE] = np.nan
    lm[:, RIGHT_HAND] = np.nan
    assert not frame_mask(lm).any()
    assert (frame_features(lm) == 0).all()


def test_batched_features_equal_per_clip() -> None:
    batch = np.stack([body_clip(16, s) for s in range(3)])
    batch[1, :, RIGHT_HAND] = np.nan
    f = frame_features(batch)
    assert f.shape == (3, 16, feature_dim())
    for i in range(3):
        np.testing.assert_allclose(f[i], frame_features(batch[i]), atol=1e-5)
    assert frame_mask(batch).shape == (3, 16)


def test_joint_angles_straight_and_bent_finger() -> None:
    lm = body_clip(2)
    hand = np.zeros((21, 3), np.float32)
    hand[:, 1] = np.arange(21) * 0.1  # all points on a line: every flexion angle is straight (cos = -1)
    lm[:, RIGHT_HAND] = hand
    ang = frame_features(lm, ["joint_angles"])[0].reshape(2, 3, 13)[1]  # right hand, (plane, angle)
    np.testing.assert_allclose(ang[0, :10], -1.0, atol=1e-6)  # 3-D flexion
    np.testing.assert_allclose(ang[2, :10], -1.0, atol=1e-6)  # yz plane
    np.testing.assert_allclose(ang[1, :10], -1.0, atol=1e-6)  # xy plane


def test_hull_shape_matches_scipy_and_known_shapes() -> None:
    rng = np.random.default_rng(3)
    pts = np.round(rng.normal(size=(300, 21, 2)), 1)  # rounding creates duplicates and collinear points
    area, perim, rect = hull_shape(pts)
    ref = [ConvexHull(p) for p in pts]
    np.testing.assert_allclose(area, [h.volume for h in ref], atol=1e-9)
    np.testing.assert_allclose(perim, [h.area for h in ref], atol=1e-9)
    assert (area <= rect + 1e-9).all()
    square = np.array([[0, 0], [1, 0], [1, 1], [0, 1], [0.5, 0], [0.3, 0.6]] + [[0.4, 0.4]] * 15, float)
    angle = 0.7
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    a, p, r = hull_shape(np.stack([square, square @ rot.T]))
    np.testing.assert_allclose(a, 1.0)
    np.testing.assert_allclose(p, 4.0)
    np.testing.assert_allclose(r, 1.0)  # the minimum-area rectangle follows the rotation
    nan_pts = square.copy()
    nan_pts[:19] = np.nan
    assert hull_shape(nan_pts[None])[0][0] == 0.0  # fewer than 3 valid points


def test_hand_shape_circularity_of_a_square_hand() -> None:
    lm = body_clip(3)
    hand = np.zeros((21, 3), np.float32)
    hand[:4, :2] = [[0, 0], [1, 0], [1, 1], [0, 1]]
    hand[4:, :2] = 0.5
    hand[9] = [0.5, 1.0, 0.0]  # middle MCP: palm length sqrt(1.25) from the wrist at (0, 0)
    lm[:, RIGHT_HAND] = hand
    shape = frame_features(lm, ["hand_shape"])[0].reshape(2, 3)[1]
    np.testing.assert_allclose(shape, [np.pi / 4, 1.0, 1.0 / 1.25], rtol=1e-5)


def test_trajectory_of_a_straight_wrist_path() -> None:
    t = 11
    lm = body_clip(t)
    lm[:, LEFT_HAND] = np.nan
    path = np.linspace(0, 1, t, dtype=np.float32) ** 2  # uneven speed, straight line along x
    lm[:, RIGHT_HAND] = lm[0, RIGHT_HAND]  # a rigid hand ...
    lm[:, RIGHT_HAND, 0] += (path - lm[:, RIGHT_WRIST, 0])[:, None]  # ... sliding along x
    traj = frame_features(lm, ["trajectory"])
    assert (traj == traj[0]).all()  # per-clip descriptor repeated on every frame
    pts = traj[0].reshape(10, 3)
    np.testing.assert_allclose(pts[:, 0], np.arange(1, 11) / 10 * (path[-1] - path[0]), atol=1e-5)  # evenly by arc length
    np.testing.assert_allclose(pts[:, 1:], 0.0, atol=1e-5)


def test_pool_features_values_and_empty_mask() -> None:
    feats = np.arange(2 * 5 * 3, dtype=np.float32).reshape(2, 5, 3)
    mask = np.array([[False, True, True, False, True], [False] * 5])
    pooled = pool_features(feats, mask)
    assert pooled.shape == (2, pooled_dim(3)) == (2, len(POOL_STATS) * 3)
    valid = feats[0][mask[0]]
    expect = np.concatenate([valid.mean(0), valid.std(0), valid.min(0), valid.max(0), valid[0], valid[-1]])
    np.testing.assert_allclose(pooled[0], expect, rtol=1e-6)
    np.testing.assert_array_equal(pooled[1], 0.0)
    with pytest.raises(ValueError, match="mask shape"):
        pool_features(feats, mask[:, :4])


clip_lengths = st.integers(min_value=1, max_value=12)


@st.composite
def hostile_clips(draw: st.DrawFn) -> np.ndarray:
    """Random clips with NaN gaps, missing parts, length 1 and extreme magnitudes."""
    t = draw(clip_lengths)
    seed = draw(st.integers(0, 2**31 - 1))
    magnitude = draw(st.sampled_from([1e-6, 1.0, 1e6]))
    rng = np.random.default_rng(seed)
    lm = (rng.normal(0, 1, (t, 75, 3)) * magnitude).astype(np.float32)
    for part in (POSE, LEFT_HAND, RIGHT_HAND):
        mode = draw(st.sampled_from(["present", "absent", "gaps"]))
        if mode == "absent":
            lm[:, part] = np.nan
        elif mode == "gaps":
            lm[rng.random(t) < 0.5, part] = np.nan
    if draw(st.booleans()):
        lm[rng.random((t, 75)) < 0.1] = np.nan
    return lm


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile_clips(), st.sampled_from([None, 1, 8]))
def test_hostile_clips_give_finite_features_or_a_clear_error(lm: np.ndarray, target: int | None) -> None:
    try:
        norm = normalize_clip(lm, NormalizeConfig(target_frames=target))
    except ValueError as err:
        assert "no landmarks detected in any frame" in str(err)
        assert np.isnan(lm).all()
        return
    feats = frame_features(norm)
    assert feats.shape == (norm.shape[0], feature_dim())
    assert np.isfinite(feats).all()
    pooled = pool_features(feats, frame_mask(norm))
    assert np.isfinite(pooled).all()


def test_features_of_a_64_frame_clip_are_fast() -> None:
    lm = body_clip(64)
    lm[10:20, LEFT_HAND] = np.nan
    frame_features(lm)
    start = time.process_time()
    for _ in range(20):
        frame_features(lm)
    per_clip_ms = (time.process_time() - start) / 20 * 1e3
    assert per_clip_ms < 20.0, f"{per_clip_ms:.1f} ms per 64-frame clip (CPU time; aim < 5 ms)"


def test_real_traduttore_round_trip_is_finite(traduttore_npz) -> None:
    data = np.load(traduttore_npz)
    x = data["X"][::25]  # every 25th clip keeps the test fast, still ~190 clips of all classes
    lm, _ = from_258(x)
    assert lm.shape == (len(x), 20, 75, 3)
    norm = normalize_clips(list(lm), NormalizeConfig(target_frames=20))
    feats = frame_features(norm)
    mask = frame_mask(norm)
    pooled = pool_features(feats, mask)
    assert feats.shape == (len(x), 20, feature_dim()) and pooled.shape == (len(x), pooled_dim(feature_dim()))
    assert np.isfinite(feats).all() and np.isfinite(pooled).all()
    assert mask.mean() > 0.9
    # body frame: the shoulders sit at about x = +-0.5 where the pose is present
    shoulders = norm[..., [11, 12], 0]
    np.testing.assert_allclose(np.nanmedian(shoulders, axis=(0, 1)), [0.5, -0.5], atol=0.05)
    # clips with nothing detected (the idle class has some) come back empty, not as an error
    empty = ~mask.any(axis=1)
    assert np.array_equal(empty, np.isnan(lm).all(axis=(1, 2, 3)))
