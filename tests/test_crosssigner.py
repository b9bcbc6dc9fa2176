"""Cross-signer invariances: handedness canonicalisation, shoulder levelling, scale and offset.

A mirrored camera image (or a left-handed signer) must give the same normalised clip, and so the
same prediction, as the original; moving, scaling or tilting the person in the image must not
change what the models see (within limits: the body frame absorbs offset and scale exactly, the
levelling absorbs camera roll up to +-90 degrees).
"""

from __future__ import annotations

import numpy as np
import pytest

from signlang.features.normalize import (
    NormalizeConfig,
    canonical_hand,
    left_dominant,
    level_shoulders,
    mirror,
    normalize_clip,
    to_body_frame,
)
from signlang.landmarks.layout import LEFT_HAND, MIRROR_PERMUTATION, RIGHT_HAND, WRIST

CROSS = NormalizeConfig(target_frames=24, smooth_window=5, smooth_order=2, canonical_hand=True, level_shoulders=True)


def image_mirror(lm: np.ndarray) -> np.ndarray:
    """What a mirroring webcam records: x -> 1 - x, and MediaPipe's left/right labels swapped."""
    out = np.array(lm[..., MIRROR_PERMUTATION, :], copy=True)
    out[..., 0] = 1.0 - out[..., 0]
    return out


def tilt(lm: np.ndarray, degrees: float, centre: tuple[float, float] = (0.5, 0.5)) -> np.ndarray:
    """The clip turned in the image plane about ``centre`` (camera roll)."""
    a = np.deg2rad(degrees)
    out = lm.copy()
    x, y = lm[..., 0] - centre[0], lm[..., 1] - centre[1]
    out[..., 0] = np.cos(a) * x - np.sin(a) * y + centre[0]
    out[..., 1] = np.sin(a) * x + np.cos(a) * y + centre[1]
    return out


def right_handed_clip(seed: int = 0, t: int = 30) -> np.ndarray:
    """A synthetic signer's clip whose right hand is the active one (left hand missing in most frames)."""
    from signlang.datasets.synthetic import make_synthetic_dataset

    clips = make_synthetic_dataset(n_classes=3, n_signers=1, clips_per_signer=1, seed=seed, frames=(t, t))
    lm = np.array(clips.landmarks[0], dtype=np.float64)
    lm[: 2 * t // 3, LEFT_HAND] = np.nan
    lm[:3, RIGHT_HAND] = np.nan
    return lm


def test_left_dominant_rule_and_mirror_symmetry() -> None:
    lm = to_body_frame(right_handed_clip())
    assert not left_dominant(lm)
    assert left_dominant(mirror(lm))
    both = lm.copy()
    both[..., LEFT_HAND, :] = both[..., RIGHT_HAND, :] + [0.0, 0.3, 0.0]  # both hands always there: higher one wins
    assert not left_dominant(both)  # the right hand is higher (smaller y)
    none = lm.copy()
    none[..., LEFT_HAND.start:RIGHT_HAND.stop, :] = np.nan
    assert not left_dominant(none)  # exact tie: right
    batch = np.stack([lm, mirror(lm)])
    np.testing.assert_array_equal(left_dominant(batch), [False, True])
    np.testing.assert_array_equal(canonical_hand(batch)[1], canonical_hand(batch)[0])


def test_mirrored_recording_normalises_to_the_same_clip() -> None:
    lm = right_handed_clip(seed=1)
    a = normalize_clip(lm, CROSS)
    b = normalize_clip(image_mirror(lm), CROSS)
    np.testing.assert_allclose(a, b, atol=1e-5)
    assert np.isnan(a[..., RIGHT_HAND.start + WRIST, 0]).sum() < np.isnan(a[..., LEFT_HAND.start + WRIST, 0]).sum()
    plain = NormalizeConfig(target_frames=24, smooth_window=5, smooth_order=2)
    assert not np.allclose(np.nan_to_num(normalize_clip(lm, plain)), np.nan_to_num(normalize_clip(image_mirror(lm), plain)), atol=1e-3)


@pytest.mark.parametrize("scale,offset", [(0.5, (0.1, -0.2)), (1.7, (-0.3, 0.05)), (1.0, (0.25, 0.25))])
def test_invariant_to_scale_and_offset(scale: float, offset: tuple[float, float]) -> None:
    lm = right_handed_clip(seed=2)
    moved = lm.copy()
    moved[..., 0] = lm[..., 0] * scale + offset[0]
    moved[..., 1] = lm[..., 1] * scale + offset[1]
    moved[..., 2] = lm[..., 2] * scale
    np.testing.assert_allclose(normalize_clip(lm, CROSS), normalize_clip(moved, CROSS), atol=1e-5)


@pytest.mark.parametrize("degrees", [-30.0, -8.0, 5.0, 25.0])
def test_invariant_to_camera_roll_within_limits(degrees: float) -> None:
    lm = right_handed_clip(seed=3)
    a = normalize_clip(lm, CROSS)
    b = normalize_clip(tilt(lm, degrees), CROSS)
    # the body-frame centre is a per-coordinate median, which turns with the image only approximately
    # (a constant shift of a few thousandths of a shoulder width on this jittery synthetic body)
    np.testing.assert_allclose(a, b, atol=5e-3)
    no_level = NormalizeConfig(target_frames=24, smooth_window=5, smooth_order=2, canonical_hand=True)
    assert np.nanmax(np.abs(normalize_clip(lm, no_level) - normalize_clip(tilt(lm, degrees), no_level))) > 1e-2


def test_level_shoulders_makes_the_shoulder_line_horizontal_and_commutes_with_mirror() -> None:
    from signlang.landmarks.layout import LEFT_SHOULDER, RIGHT_SHOULDER

    lm = to_body_frame(tilt(right_handed_clip(seed=4), 20.0))
    level = level_shoulders(lm)
    d = level[:, LEFT_SHOULDER, :2] - level[:, RIGHT_SHOULDER, :2]
    assert np.abs(np.median(d[:, 1])) < 1e-6
    np.testing.assert_allclose(level_shoulders(mirror(lm)), mirror(level_shoulders(lm)), atol=1e-9)


def test_old_preprocessing_without_the_new_keys_still_loads() -> None:
    cfg = NormalizeConfig.from_dict({"target_frames": 32, "smooth_window": 5, "smooth_order": 2, "max_gap": 8})
    assert cfg.canonical_hand is False and cfg.level_shoulders is False


def test_a_model_trained_with_canonical_hands_predicts_a_mirrored_clip_the_same(tmp_path) -> None:
    """Train a small pooled XGBoost bundle with the rule on, then ask the Predictor about a clip and its mirror."""
    from signlang.datasets.synthetic import make_synthetic_dataset
    from signlang.features.normalize import normalize_clips
    from signlang.inference.predictor import Predictor
    from signlang.models.bundle import save_bundle
    from signlang.models.trees import PooledXGBoostClassifier

    clips = make_synthetic_dataset(n_classes=3, n_signers=2, clips_per_signer=3, seed=0, frames=(24, 32))
    preprocessing = {"normalize": CROSS.to_dict(), "feature_blocks": None}
    X = normalize_clips(clips.landmarks, CROSS)
    model = PooledXGBoostClassifier(n_estimators=10, max_depth=3, learning_rate=0.3, n_jobs=1).fit(X, clips.y)
    save_bundle(tmp_path / "b", model, classes=clips.classes, preprocessing=preprocessing, report={}, name="xgboost")
    predictor = Predictor(tmp_path / "b")
    originals = [np.asarray(c, dtype=np.float32) for c in clips.landmarks[:4]]
    mirrored = [image_mirror(c).astype(np.float32) for c in originals]
    p = predictor.proba(originals)
    q = predictor.proba(mirrored)
    np.testing.assert_allclose(p, q, atol=1e-5)


def test_every_prediction_says_whether_the_model_is_unsure(tiny_bundle) -> None:
    from signlang.inference.predictor import MIN_CONFIDENCE, Predictor

    from bundle_fixtures import tiny_clips

    clips = tiny_clips()
    with Predictor(tiny_bundle) as predictor:
        preds, errors = predictor.predict_batch(clips.landmarks[:6])
        assert not errors
        for p in preds:
            assert p.low_confidence == (p.top_k[0][1] < MIN_CONFIDENCE)
            assert p.to_dict()["low_confidence"] == p.low_confidence
        predictor.min_confidence = 1.01  # nothing reaches it: every answer is flagged
        assert all(p.low_confidence for p in predictor.predict_batch(clips.landmarks[:3])[0])
