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
        predictor.min_confidence = 1.0  # only a certain answer reaches it: every other answer is flagged
        assert all(p.low_confidence for p in predictor.predict_batch(clips.landmarks[:3])[0] if p.top_k[0][1] < 1.0)
        with pytest.raises(ValueError, match=r"min_confidence must be in \[0, 1\]"):
            predictor.min_confidence = 1.01


# --------------------------------------------------------------------------------------------
# the optional feature blocks about the dominant hand: face_relative, finger_straightness
# --------------------------------------------------------------------------------------------
OPTIONAL = ["face_relative", "finger_straightness"]


def _optional_features(lm: np.ndarray) -> np.ndarray:
    from signlang.features.engineering import frame_features

    return frame_features(normalize_clip(lm, CROSS), OPTIONAL)


def test_optional_blocks_are_documented_and_not_in_the_default_table() -> None:
    from signlang.features.engineering import FEATURE_BLOCKS, OPTIONAL_BLOCKS, block_slices, feature_dim, frame_features

    assert OPTIONAL_BLOCKS == {"face_relative": 14, "finger_straightness": 10}
    assert not set(OPTIONAL_BLOCKS) & set(FEATURE_BLOCKS)
    assert feature_dim() == sum(FEATURE_BLOCKS.values())  # old bundles (feature_blocks: null) see the same table
    norm = normalize_clip(right_handed_clip(seed=5), CROSS)
    both = frame_features(norm, [*FEATURE_BLOCKS, *OPTIONAL])
    assert both.shape == (24, feature_dim() + 24) and np.isfinite(both).all()
    sl = block_slices([*FEATURE_BLOCKS, *OPTIONAL])
    np.testing.assert_allclose(both[:, sl["finger_straightness"]], frame_features(norm, ["finger_straightness"]), atol=1e-6)
    assert np.abs(both[:, sl["face_relative"]]).max() > 0.1  # a hand that is present is measured


@pytest.mark.parametrize("scale,offset", [(0.5, (0.1, -0.2)), (1.7, (-0.3, 0.05))])
def test_optional_blocks_are_invariant_to_scale_offset_and_mirroring(scale: float, offset: tuple[float, float]) -> None:
    lm = right_handed_clip(seed=6)
    ref = _optional_features(lm)
    moved = lm.copy()
    moved[..., 0] = lm[..., 0] * scale + offset[0]
    moved[..., 1] = lm[..., 1] * scale + offset[1]
    moved[..., 2] = lm[..., 2] * scale
    np.testing.assert_allclose(_optional_features(moved), ref, atol=1e-5)
    np.testing.assert_allclose(_optional_features(image_mirror(lm)), ref, atol=1e-5)
    np.testing.assert_allclose(_optional_features(image_mirror(moved)), ref, atol=1e-5)


def test_finger_straightness_is_invariant_to_turning_and_sizing_the_hand_and_reads_folded_fingers() -> None:
    from signlang.features.engineering import FINGER_CHAINS, frame_features

    norm = normalize_clip(right_handed_clip(seed=7), CROSS)
    hand = norm[:, RIGHT_HAND, :].copy()
    # a straight index finger along +y, the others folded back onto the palm
    hand[:] = np.nan
    chains = np.asarray(FINGER_CHAINS)
    for k, chain in enumerate(chains):
        x = 0.05 * (k - 2)
        hand[:, chain[0]] = [0.0, 0.0, 0.0]
        hand[:, chain[1]] = [x, -0.10, 0.0]
        if k == 1:  # extended
            for j, p in enumerate(chain[2:], 2):
                hand[:, p] = [x, -0.10 - 0.05 * (j - 1), 0.0]
        else:  # folded: up, then back down towards the wrist
            hand[:, chain[2]] = [x, -0.15, 0.0]
            hand[:, chain[3]] = [x + 0.01, -0.11, 0.0]
            hand[:, chain[4]] = [x + 0.01, -0.07, 0.0]
    clip = norm.copy()
    clip[:, RIGHT_HAND, :] = hand + [0.3, -0.5, 0.0]
    st = frame_features(clip, ["finger_straightness"])
    assert (st[:, 1] > 0.95).all()  # index, wrist -> tip (the MCP sits a little to the side)
    np.testing.assert_allclose(st[:, 6], 1.0, atol=1e-6)  # index, MCP -> tip
    assert (st[:, [2, 3, 4]] < 0.6).all() and (st[:, [7, 8, 9]] < 0.3).all()
    a = np.deg2rad(35.0)
    rot = np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]])
    turned = clip.copy()
    turned[:, RIGHT_HAND, :] = (hand * 1.8) @ rot.T + [-0.2, -0.4, 0.0]
    np.testing.assert_allclose(frame_features(turned, ["finger_straightness"]), st, atol=1e-5)


def test_face_relative_measures_the_hand_in_face_sizes() -> None:
    from signlang.features.engineering import frame_features
    from signlang.landmarks.layout import LEFT_EYE, MOUTH_LEFT, MOUTH_RIGHT, NOSE, RIGHT_EYE

    norm = normalize_clip(right_handed_clip(seed=8), CROSS)
    clip = norm.copy()
    clip[:, NOSE] = [0.0, -1.0, 0.0]
    clip[:, [LEFT_EYE, RIGHT_EYE]] = [[0.1, -1.1, 0.0], [-0.1, -1.1, 0.0]]
    clip[:, [MOUTH_LEFT, MOUTH_RIGHT]] = [[0.05, -0.9, 0.0], [-0.05, -0.9, 0.0]]  # face size 0.2
    mouth = np.array([0.0, -0.9, 0.0])
    hand = clip[:, RIGHT_HAND, :]
    clip[:, RIGHT_HAND, :] = hand - np.nanmean(hand, axis=1, keepdims=True) + mouth  # hand centred on the mouth
    present = ~np.isnan(clip[:, RIGHT_HAND.start + WRIST, 0])
    assert present.sum() > 15
    f = frame_features(clip, ["face_relative"])
    np.testing.assert_allclose(f[~present, :4], 0.0)  # a missing hand: zeros (its presence flag says so)
    f = f[present]
    np.testing.assert_allclose(f[:, 0:2], [[0.0, 0.5]] * len(f), atol=1e-5)  # centre - nose = (0, 0.1) = 0.5 face sizes
    np.testing.assert_allclose(f[:, 6], 0.0, atol=1e-5)  # centre -> mouth
    np.testing.assert_allclose(f[:, 8], 2.0, atol=1e-5)  # centre -> forehead (eyes + one face size up) = 0.4 / 0.2
    bigger = clip.copy()  # the same scene with a face twice as large about the nose: hand distances halve
    face = [NOSE, LEFT_EYE, RIGHT_EYE, MOUTH_LEFT, MOUTH_RIGHT]
    bigger[:, face] = clip[:, NOSE:NOSE + 1] + 2 * (clip[:, face] - clip[:, NOSE:NOSE + 1])
    g = frame_features(bigger, ["face_relative"])[present]
    np.testing.assert_allclose(g[:, 0:2], f[:, 0:2] / 2, atol=1e-5)


def test_a_bundle_with_the_optional_blocks_predicts_a_mirrored_clip_the_same(tmp_path) -> None:
    """The optional blocks travel in the bundle's preprocessing and reach the Predictor's path."""
    from signlang.datasets.synthetic import make_synthetic_dataset
    from signlang.features.engineering import FEATURE_BLOCKS, feature_dim, pooled_dim
    from signlang.features.normalize import normalize_clips
    from signlang.inference.predictor import Predictor
    from signlang.models.bundle import save_bundle
    from signlang.models.trees import PooledXGBoostClassifier

    blocks = (*FEATURE_BLOCKS, *OPTIONAL)
    clips = make_synthetic_dataset(n_classes=3, n_signers=2, clips_per_signer=3, seed=0, frames=(24, 32))
    X = normalize_clips(clips.landmarks, CROSS)
    model = PooledXGBoostClassifier(n_estimators=10, max_depth=3, learning_rate=0.3, n_jobs=1, feature_blocks=blocks).fit(X, clips.y)
    assert model.booster_.num_features() == pooled_dim(feature_dim(blocks))
    save_bundle(tmp_path / "b", model, classes=clips.classes, report={}, name="xgboost",
                preprocessing={"normalize": CROSS.to_dict(), "feature_blocks": list(blocks)})
    predictor = Predictor(tmp_path / "b")
    originals = [np.asarray(c, dtype=np.float32) for c in clips.landmarks[:4]]
    mirrored = [image_mirror(c).astype(np.float32) for c in originals]
    # what the model sees is the same to float precision (a tree split may still fall between two
    # values 1e-6 apart, so the probabilities are compared through the answer, not to 1e-5)
    from signlang.models.featurize import pooled_features

    np.testing.assert_allclose(pooled_features(normalize_clips(mirrored, CROSS), blocks),
                               pooled_features(normalize_clips(originals, CROSS), blocks), atol=1e-5)
    p, q = predictor.proba(originals), predictor.proba(mirrored)
    np.testing.assert_array_equal(p.argmax(1), q.argmax(1))
    np.testing.assert_allclose(p, q, atol=0.05)


def test_min_confidence_is_a_choice_of_the_user(tiny_bundle, tmp_path) -> None:
    """`signlang predict --min-confidence` (and ``Predictor(min_confidence=)``) moves the low-confidence flag."""
    import json

    from typer.testing import CliRunner

    from bundle_fixtures import tiny_clips
    from signlang.cli import app
    from signlang.datasets.loaders import save_npz
    from signlang.inference.predictor import Predictor

    clips = tiny_clips().subset(np.arange(4))
    with Predictor(tiny_bundle, min_confidence=0.0) as never, Predictor(tiny_bundle, min_confidence=1.0) as always:
        assert not any(p.low_confidence for p in never.predict_batch(clips.landmarks)[0])
        assert all(p.low_confidence for p in always.predict_batch(clips.landmarks)[0] if p.top_k[0][1] < 1.0)
    with pytest.raises(ValueError, match=r"min_confidence must be in \[0, 1\]"):
        Predictor(tiny_bundle, min_confidence=1.5)
    npz = save_npz(clips, tmp_path / "clips.npz")
    flags = {}
    for bar in ("0", "1"):
        res = CliRunner().invoke(app, ["predict", "--model", str(tiny_bundle), str(npz), "--json", "--min-confidence", bar])
        assert res.exit_code == 0, res.output
        flags[bar] = [json.loads(line)["low_confidence"] for line in res.output.splitlines() if line.startswith("{")]
    assert len(flags["0"]) == 4 and not any(flags["0"]) and any(flags["1"])
    res = CliRunner().invoke(app, ["predict", "--model", str(tiny_bundle), str(npz), "--min-confidence", "2"])
    assert res.exit_code != 0
