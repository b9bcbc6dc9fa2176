"""Augmentation: registry, config specs, determinism, and what each transform does."""

from __future__ import annotations

import numpy as np
import pytest

from signlang.features.augment import (
    TRANSFORMS,
    Compose,
    FrameDrop,
    KinematicNoise,
    LandmarkDropout,
    Rotate,
    TimeWarp,
    build_augmentation,
    default_augmentation,
    mirror,
)
from signlang.features.engineering import frame_features
from signlang.landmarks.layout import LEFT_HAND, LEFT_SHOULDER, MIRROR_PERMUTATION, RIGHT_HAND, RIGHT_SHOULDER

EXPECTED = {"rotate", "scale", "shear", "translate", "kinematic_noise", "time_warp", "mirror", "frame_drop", "landmark_dropout"}


def clip(t: int = 20, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    lm = (rng.normal(0, 0.5, (75, 3))[None] + np.linspace(0, 1, t)[:, None, None] * rng.normal(0, 0.2, (75, 3))).astype(np.float32)
    lm[4:7, LEFT_HAND] = np.nan
    return lm


def test_registry_has_all_transforms() -> None:
    assert EXPECTED <= set(TRANSFORMS)


def test_same_seed_same_output_different_seed_differs() -> None:
    aug = build_augmentation(default_augmentation() + [{"name": "mirror", "p": 0.5}])
    lm = clip()
    a = aug(lm, np.random.default_rng(7))
    b = aug(lm, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    outs = [aug(lm, np.random.default_rng(s)) for s in range(5)]
    assert any(o.shape != a.shape or not np.array_equal(o, a, equal_nan=True) for o in outs)
    np.testing.assert_array_equal(aug(lm, 7), a)  # an int seed is the same as default_rng(seed)


def test_unknown_transform_and_parameter_errors() -> None:
    with pytest.raises(ValueError, match=r"'spin'.*known.*rotate"):
        build_augmentation([{"name": "spin", "p": 0.5}])
    with pytest.raises(ValueError, match=r"'rotate'.*unknown parameters \['degrees'\]"):
        build_augmentation([{"name": "rotate", "degrees": 10}])
    with pytest.raises(ValueError, match="name"):
        build_augmentation([{"max_degrees": 10}])
    with pytest.raises(ValueError, match="p must be"):
        build_augmentation([{"name": "mirror", "p": 1.5}])
    with pytest.raises(ValueError, match="warp_strength"):
        TimeWarp(warp_strength=1.0)


def test_spec_round_trip() -> None:
    aug = build_augmentation(default_augmentation())
    assert len(aug) == len(default_augmentation())
    again = build_augmentation(aug.to_spec())
    assert again.to_spec() == aug.to_spec()
    lm = clip()
    np.testing.assert_array_equal(aug(lm, 3), again(lm, 3))


def test_mirror_twice_is_identity_and_swaps_sides() -> None:
    lm = clip()
    once = mirror(lm)
    np.testing.assert_array_equal(mirror(once), lm)
    np.testing.assert_array_equal(once[:, RIGHT_HAND, 1:], lm[:, LEFT_HAND, 1:])
    np.testing.assert_array_equal(once[:, RIGHT_HAND, 0], -lm[:, LEFT_HAND, 0])
    np.testing.assert_array_equal(once[:, LEFT_SHOULDER, 0], -lm[:, RIGHT_SHOULDER, 0])
    assert np.isnan(once[4:7, RIGHT_HAND]).all()


def test_p_zero_is_identity() -> None:
    lm = clip()
    for name in EXPECTED:
        np.testing.assert_array_equal(TRANSFORMS[name](p=0.0)(lm, np.random.default_rng(0)), lm)


def test_geometric_transforms_keep_nan_and_rotation_keeps_norms() -> None:
    lm = clip()
    for name in ("rotate", "scale", "shear", "translate", "kinematic_noise", "mirror"):
        out = TRANSFORMS[name](p=1.0)(lm, np.random.default_rng(1))
        assert out.shape == lm.shape and out.dtype == np.float32
        expected_nan = np.isnan(lm[..., MIRROR_PERMUTATION, :] if name == "mirror" else lm)
        np.testing.assert_array_equal(np.isnan(out), expected_nan)
        assert not np.allclose(out, lm, equal_nan=True)
    out = Rotate(max_degrees=40, max_tilt_degrees=10, p=1.0)(lm, np.random.default_rng(2))
    np.testing.assert_allclose(np.linalg.norm(out, axis=-1), np.linalg.norm(lm, axis=-1), rtol=1e-5)


def test_time_warp_changes_length_and_keeps_endpoints() -> None:
    lm = clip(30)
    lengths = set()
    for seed in range(10):
        out = TimeWarp(min_speed=0.5, max_speed=1.5, p=1.0)(lm, np.random.default_rng(seed))
        assert 20 <= out.shape[0] <= 60
        np.testing.assert_array_equal(out[0], lm[0])
        np.testing.assert_array_equal(out[-1], lm[-1])
        lengths.add(out.shape[0])
    assert len(lengths) > 1
    assert TimeWarp(p=1.0)(lm[:1], np.random.default_rng(0)).shape == (1, 75, 3)


def test_frame_drop_keeps_order_and_minimum() -> None:
    lm = clip(20)
    lm[:, 0, 0] = np.arange(20)
    out = FrameDrop(max_fraction=0.5, min_frames=15, p=1.0)(lm, np.random.default_rng(4))
    assert 15 <= out.shape[0] <= 20
    kept = out[:, 0, 0].astype(int)
    assert (np.diff(kept) > 0).all()
    np.testing.assert_array_equal(out, lm[kept])
    assert FrameDrop(max_fraction=0.9, min_frames=2, p=1.0)(lm[:2], np.random.default_rng(0)).shape[0] == 2


def test_landmark_dropout_hands_and_points() -> None:
    lm = clip()
    out = LandmarkDropout(point_p=0.0, hand_p=1.0, p=1.0)(lm, np.random.default_rng(0))
    assert np.isnan(out[:, LEFT_HAND]).all() and np.isnan(out[:, RIGHT_HAND]).all()
    assert not np.isnan(out[:, :33]).any()
    out = LandmarkDropout(point_p=0.3, hand_p=0.0, p=1.0)(lm, np.random.default_rng(0))
    newly = np.isnan(out[..., 0]) & ~np.isnan(lm[..., 0])
    assert 0.2 < newly.mean() < 0.4
    assert np.isnan(out[np.isnan(lm)]).all()


def test_kinematic_noise_is_temporally_correlated() -> None:
    lm = np.zeros((200, 75, 3), np.float32)
    out = KinematicNoise(sigma=0.02, correlation_frames=4.0, p=1.0)(lm, np.random.default_rng(0))
    assert out.std() == pytest.approx(0.02, rel=0.05)
    x = out[:, :, 0]
    lag1 = np.mean(x[1:] * x[:-1]) / np.mean(x * x)
    assert lag1 > 0.8  # white noise would give about 0


def test_augmented_clips_featurise_finite() -> None:
    aug = Compose([TRANSFORMS[n](p=1.0) for n in sorted(EXPECTED)])
    for seed in range(5):
        out = aug(clip(12, seed), seed)
        assert np.isfinite(frame_features(out)).all()
    with pytest.raises(ValueError, match=r"\(T, 75, 3\)"):
        aug(np.zeros((5, 75, 2)), 0)
