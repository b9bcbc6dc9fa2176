"""Normalisation: gap filling, smoothing, the body frame, the hand frame and resampling."""

from __future__ import annotations

import numpy as np
import pytest

from signlang.features.normalize import (
    SHOULDER_PER_PALM,
    NormalizeConfig,
    fill_gaps,
    hand_local_frame,
    normalize_clip,
    normalize_clips,
    resample,
    smooth,
    to_body_frame,
)
from signlang.landmarks.layout import LEFT_HAND, LEFT_SHOULDER, MIDDLE_MCP, POSE, RIGHT_HAND, RIGHT_SHOULDER


def make_clip(t: int = 30, seed: int = 0) -> np.ndarray:
    """A plausible clip in image coordinates: a body around (0.5, 0.5), moving hands."""
    rng = np.random.default_rng(seed)
    lm = np.empty((t, 75, 3), dtype=np.float32)
    lm[:, POSE] = rng.uniform(0.3, 0.7, (33, 3))[None] + rng.normal(0, 0.002, (t, 33, 3))
    lm[:, LEFT_SHOULDER] = [0.62, 0.55, 0.0]
    lm[:, RIGHT_SHOULDER] = [0.38, 0.55, 0.0]
    phase = np.linspace(0, np.pi, t)[:, None, None]
    for k, part in enumerate((LEFT_HAND, RIGHT_HAND)):
        hand = rng.uniform(-0.05, 0.05, (21, 3)) + [0.45 + 0.1 * k, 0.4, 0.0]
        lm[:, part] = hand[None] + 0.05 * np.sin(phase + k)
    return lm


def test_config_round_trip_and_unknown_keys() -> None:
    cfg = NormalizeConfig(target_frames=32, smooth_window=7)
    assert NormalizeConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="smoth_window"):
        NormalizeConfig.from_dict({"smoth_window": 5})
    with pytest.raises(ValueError, match="target_frames"):
        NormalizeConfig(target_frames=0)


def test_fill_gaps_short_gap_exact_on_linear_track_long_gap_stays_nan() -> None:
    t = 40
    lm = np.zeros((t, 75, 3), dtype=np.float32)
    lm[:] = np.arange(t, dtype=np.float32)[:, None, None] * 0.01 + np.arange(75)[None, :, None] * 0.1
    truth = lm.copy()
    holed = lm.copy()
    holed[5:8, RIGHT_HAND] = np.nan  # 3 frames: filled
    holed[15:30, LEFT_HAND] = np.nan  # 15 frames > max_gap: kept
    holed[:2, POSE] = np.nan  # leading: kept
    holed[-3:, RIGHT_HAND] = np.nan  # trailing: kept
    out = fill_gaps(holed, max_gap=8)
    np.testing.assert_allclose(out[5:8, RIGHT_HAND], truth[5:8, RIGHT_HAND], rtol=1e-6, atol=1e-6)
    assert np.isnan(out[15:30, LEFT_HAND]).all()
    assert np.isnan(out[:2, POSE]).all()
    assert np.isnan(out[-3:, RIGHT_HAND]).all()
    present = ~np.isnan(holed)
    np.testing.assert_array_equal(out[present], holed[present])
    # a batch gives the same as clip by clip
    batch = np.stack([holed, truth])
    np.testing.assert_array_equal(fill_gaps(batch, 8)[0], out)


def test_smooth_keeps_nan_and_cubic_tracks() -> None:
    t = 25
    x = np.linspace(-1, 1, t, dtype=np.float32)
    lm = np.broadcast_to((0.3 * x**3 - x**2 + 0.5)[:, None, None], (t, 75, 3)).copy()
    lm[10:14, LEFT_HAND] = np.nan
    out = smooth(lm, window=11, order=3)
    np.testing.assert_array_equal(np.isnan(out), np.isnan(lm))
    ok = ~np.isnan(lm)
    np.testing.assert_allclose(out[:, POSE][ok[:, POSE]], lm[:, POSE][ok[:, POSE]], atol=1e-5)
    noisy = lm + np.random.default_rng(0).normal(0, 0.05, lm.shape).astype(np.float32)
    assert np.nanstd(smooth(noisy)[:, POSE] - lm[:, POSE]) < np.nanstd(noisy[:, POSE] - lm[:, POSE])
    short = make_clip(3)
    np.testing.assert_array_equal(smooth(short, window=11, order=3), short)  # no window > order fits


def test_body_frame_invariant_to_translation_and_scale() -> None:
    lm = make_clip()
    lm[4:9, LEFT_HAND] = np.nan
    ref = to_body_frame(lm)
    moved = lm * 3.7 + np.array([5.0, -2.0, 0.25], dtype=np.float32)
    np.testing.assert_allclose(to_body_frame(moved), ref, atol=1e-4)
    # shoulders land at x = +-0.5 around the origin
    np.testing.assert_allclose(ref[:, LEFT_SHOULDER], [[0.5, 0, 0]] * len(ref), atol=1e-5)
    np.testing.assert_allclose(ref[:, RIGHT_SHOULDER], [[-0.5, 0, 0]] * len(ref), atol=1e-5)


def test_body_frame_fallback_without_shoulders_is_invariant_and_uses_palm() -> None:
    lm = make_clip()
    lm[:, POSE] = np.nan
    ref = to_body_frame(lm)
    np.testing.assert_allclose(to_body_frame(lm * 0.2 + 9.0), ref, atol=1e-4)
    palms = [np.linalg.norm(ref[:, h.start + MIDDLE_MCP] - ref[:, h.start], axis=-1) for h in (LEFT_HAND, RIGHT_HAND)]
    assert np.median(np.concatenate(palms)) == pytest.approx(1 / SHOULDER_PER_PALM, rel=1e-4)  # median palm over both hands


def test_body_frame_empty_clip_raises() -> None:
    empty = np.full((5, 75, 3), np.nan, dtype=np.float32)
    with pytest.raises(ValueError, match="no landmarks detected in any frame"):
        to_body_frame(empty)
    with pytest.raises(ValueError, match=r"clips \[1\]"):
        to_body_frame(np.stack([make_clip(5), empty]))
    assert np.isnan(to_body_frame(empty, allow_empty=True)).all()


def test_hand_local_frame() -> None:
    lm = to_body_frame(make_clip())
    lm[3, RIGHT_HAND] = np.nan
    hands = hand_local_frame(lm)
    assert hands.shape == (30, 2, 21, 3)
    np.testing.assert_allclose(hands[:, 0, 0], 0.0, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(hands[:, 0, MIDDLE_MCP], axis=-1), 1.0, rtol=1e-5)
    assert np.isnan(hands[3, 1]).all() and not np.isnan(hands[4, 1]).any()


def test_resample_endpoints_linear_and_nan() -> None:
    t = 13
    lm = np.broadcast_to(np.arange(t, dtype=np.float32)[:, None, None], (t, 75, 3)).copy()
    out = resample(lm, 25)
    assert out.shape == (25, 75, 3)
    np.testing.assert_array_equal(out[0], lm[0])
    np.testing.assert_array_equal(out[-1], lm[-1])
    np.testing.assert_allclose(out[:, 0, 0], np.linspace(0, t - 1, 25), atol=1e-5)
    lm[6, LEFT_HAND] = np.nan
    out = resample(lm, 25)
    near = np.abs(np.linspace(0, t - 1, 25) - 6) < 1
    assert np.isnan(out[near][:, LEFT_HAND]).all()
    assert not np.isnan(out[~near]).any()
    one = make_clip(1)
    np.testing.assert_array_equal(resample(one, 4), np.repeat(one, 4, axis=0))
    with pytest.raises(ValueError, match="target_frames"):
        resample(lm, 0)


def test_normalize_clip_invariance_and_shapes() -> None:
    lm = make_clip(40)
    lm[10:13, RIGHT_HAND] = np.nan
    a = normalize_clip(lm, NormalizeConfig(target_frames=16))
    b = normalize_clip(lm * 0.5 - 1.0, NormalizeConfig(target_frames=16))
    assert a.shape == (16, 75, 3) and a.dtype == np.float32
    np.testing.assert_allclose(a, b, atol=1e-4)
    assert normalize_clip(lm, NormalizeConfig(target_frames=None)).shape == (40, 75, 3)
    with pytest.raises(ValueError, match="inf"):
        normalize_clip(np.where(np.isnan(lm), np.inf, lm))
    with pytest.raises(ValueError, match=r"\(T, 75, 3\)|75, 3"):
        normalize_clip(np.zeros((5, 74, 3)))


def test_normalize_clips_mixed_lengths_and_empty() -> None:
    clips = [make_clip(30, 0), make_clip(12, 1), np.full((7, 75, 3), np.nan, np.float32), make_clip(30, 2)]
    cfg = NormalizeConfig(target_frames=20)
    out = normalize_clips(clips, cfg)
    assert out.shape == (4, 20, 75, 3)
    np.testing.assert_allclose(out[1], normalize_clip(clips[1], cfg), atol=1e-6)
    np.testing.assert_allclose(out[3], normalize_clip(clips[3], cfg), atol=1e-6)
    assert np.isnan(out[2]).all()
    with pytest.raises(ValueError, match=r"clips \[2\].*no landmarks"):
        normalize_clips(clips, cfg, allow_empty=False)
    with pytest.raises(ValueError, match="target_frames"):
        normalize_clips(clips, NormalizeConfig(target_frames=None))
    with pytest.raises(ValueError, match="clip 1"):
        normalize_clips([make_clip(5), np.zeros((5, 10, 3))], cfg)
