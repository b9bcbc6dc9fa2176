"""Synthetic signs: determinism, shapes, plausible geometry, signer variation and learnability."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from signlang.datasets.splits import split_indices
from signlang.datasets.synthetic import (
    N_COMBINATIONS,
    hand_points,
    make_signer,
    make_synthetic_clip,
    make_synthetic_dataset,
    synthetic_sign,
)
from signlang.landmarks.layout import (
    HAND_BONES,
    LEFT_HAND,
    LEFT_SHOULDER,
    LEFT_WRIST,
    MIRROR_PERMUTATION,
    RIGHT_HAND,
    RIGHT_SHOULDER,
    RIGHT_WRIST,
    part_present,
)


@pytest.fixture(scope="module")
def small():
    return make_synthetic_dataset(6, 4, 2, seed=5)


def test_dataset_is_deterministic_per_seed(small) -> None:
    again = make_synthetic_dataset(6, 4, 2, seed=5)
    other = make_synthetic_dataset(6, 4, 2, seed=6)
    assert list(again.clip_ids) == list(small.clip_ids)
    for a, b in zip(small.landmarks, again.landmarks):
        np.testing.assert_array_equal(a, b)
    assert any(a.shape != b.shape or not np.allclose(a, b, equal_nan=True) for a, b in zip(small.landmarks, other.landmarks))
    # a clip depends only on (seed, class, signer, repetition): more classes keep the first ones
    bigger = make_synthetic_dataset(8, 4, 2, seed=5)
    np.testing.assert_array_equal(bigger.landmarks[5], small.landmarks[5])


def test_dataset_shapes_names_and_columns(small) -> None:
    assert len(small) == 6 * 4 * 2
    assert len(set(small.classes)) == 6 and all(c.startswith("synthetic-") for c in small.classes)
    assert all(str(c).startswith("synthetic-") for c in small.clip_ids) and len(set(small.clip_ids)) == len(small)
    assert set(small.signers) == {f"synthetic-signer-{k}" for k in range(4)}
    np.testing.assert_array_equal(np.bincount(small.y), [8] * 6)
    # seq_ids number each class's clips 0..7
    for c in range(6):
        assert sorted(small.seq_ids[small.y == c].tolist()) == list(range(8))
    for lm in small.landmarks:
        assert lm.dtype == np.float32 and lm.ndim == 3 and lm.shape[1:] == (75, 3)
        assert 32 <= lm.shape[0] <= 64
        assert np.isfinite(lm[:, :33]).all()  # the pose is always detected
        upper = lm[:, :25, :2]  # face, arms, hips: inside the image
        assert upper.min() > 0.0 and upper.max() < 1.0
        assert lm[:, 11, 0].mean() > lm[:, 12, 0].mean()  # signer's left shoulder is on the image's right


def test_every_class_is_a_distinct_combination() -> None:
    combos = {synthetic_sign(i) for i in range(N_COMBINATIONS)}
    assert len(combos) == N_COMBINATIONS
    assert len({s.name for s in combos}) == N_COMBINATIONS
    first = [synthetic_sign(i) for i in range(10)]
    assert len({s.location for s in first}) >= 4 and len({s.movement for s in first}) >= 4
    with pytest.raises(ValueError, match="class_index"):
        synthetic_sign(N_COMBINATIONS)
    with pytest.raises(ValueError, match="n_classes"):
        make_synthetic_dataset(0)


def test_hand_is_articulated_and_rigid_within_a_clip() -> None:
    flat = hand_points(np.zeros(5), 0.3)
    fist = hand_points(np.ones(5), 0.3)
    tips = [8, 12, 16, 20]
    assert np.all(flat[tips, 1] < flat[[5, 9, 13, 17], 1])  # open fingers point up (y down)
    # curled fingertips end up much nearer the wrist
    assert np.all(np.linalg.norm(fist[tips], axis=1) < 0.7 * np.linalg.norm(flat[tips], axis=1))
    signer = dataclasses.replace(make_signer(0), missing_rate=0.0, tremor=0.0)
    clip = make_synthetic_clip(7, signer, np.random.default_rng(0))
    hand = clip.landmarks[:, RIGHT_HAND]
    ok = ~np.isnan(hand[:, 0, 0])
    bones = np.array([np.linalg.norm(hand[ok, a] - hand[ok, b], axis=-1) for a, b in HAND_BONES])  # (21, T)
    # the same bones keep their length while the hand moves and turns (up to landmark jitter)
    assert np.all(bones.std(axis=1) < 0.25 * bones.mean(axis=1))
    total = bones.sum(axis=0)
    assert total.std() < 0.03 * total.mean()
    travel = np.nansum(np.linalg.norm(np.diff(hand[ok, 0, :2], axis=0), axis=-1))
    assert travel > 10 * total.mean() * 0.03  # ... while the wrist really travels
    assert bones.mean() > 0.005


def test_left_handed_signer_mirrors_the_sign() -> None:
    right = dataclasses.replace(make_signer(2), missing_rate=0.0, left_handed=False, offset=(0.0, 0.0))
    left = dataclasses.replace(right, left_handed=True)
    a = make_synthetic_clip(3, right, np.random.default_rng(11)).landmarks
    b = make_synthetic_clip(3, left, np.random.default_rng(11)).landmarks
    mirrored = a[:, MIRROR_PERMUTATION].copy()
    mirrored[..., 0] = 1.0 - mirrored[..., 0]  # centre x = 0.5 without camera offset
    both = ~np.isnan(mirrored[..., 0]) & ~np.isnan(b[..., 0])
    assert both.mean() > 0.5
    np.testing.assert_allclose(b[..., :2][both], mirrored[..., :2][both], atol=0.03)
    # the dominant hand (the one that moves most) changes block
    def travel(lm: np.ndarray, block: slice) -> float:
        return float(np.nansum(np.abs(np.diff(lm[:, block.start, :2], axis=0))))
    assert travel(a, RIGHT_HAND) > 2 * travel(a, LEFT_HAND)
    assert travel(b, LEFT_HAND) > 2 * travel(b, RIGHT_HAND)


def test_signer_variation_speed_scale_and_missing_hands() -> None:
    base = make_signer(1)
    rng_seeds = range(12)
    slow = dataclasses.replace(base, slowness=1.0)
    fast = dataclasses.replace(base, slowness=0.0)
    t_slow = np.mean([make_synthetic_clip(0, slow, np.random.default_rng(s)).n_frames for s in rng_seeds])
    t_fast = np.mean([make_synthetic_clip(0, fast, np.random.default_rng(s)).n_frames for s in rng_seeds])
    assert t_slow > t_fast + 15
    near = dataclasses.replace(base, scale=1.2)
    far = dataclasses.replace(base, scale=0.85)
    width = lambda s: np.mean(  # noqa: E731
        np.abs(np.diff(make_synthetic_clip(0, s, np.random.default_rng(0)).landmarks[:, [RIGHT_SHOULDER, LEFT_SHOULDER], 0], axis=1))
    )
    assert width(near) > 1.3 * width(far)
    clean = dataclasses.replace(base, missing_rate=0.0)
    noisy = dataclasses.replace(base, missing_rate=0.3)
    miss = lambda s: np.mean([  # noqa: E731
        1.0 - part_present(make_synthetic_clip(2, s, np.random.default_rng(k)).landmarks)[:, 2].mean() for k in rng_seeds
    ])
    assert miss(clean) < 0.02 and miss(noisy) > 0.25
    signers = [make_signer(k) for k in range(40)]
    assert 0 < sum(s.left_handed for s in signers) < 40
    scales = np.array([s.scale for s in signers])
    assert scales.max() - scales.min() > 0.25 and len(set(signers)) == 40
    assert make_signer(3, seed=1) == make_signer(3, seed=1) != make_signer(3, seed=2)


def _pooled_wrist_features(lm: np.ndarray) -> np.ndarray:
    """Mean and std over time of both wrists relative to the shoulders, in shoulder widths."""
    mid = lm[:, [LEFT_SHOULDER, RIGHT_SHOULDER], :2].mean(axis=1)
    width = np.abs(lm[:, LEFT_SHOULDER, 0] - lm[:, RIGHT_SHOULDER, 0]).mean()
    w = ((lm[:, [LEFT_WRIST, RIGHT_WRIST], :2] - mid[:, None]) / width).reshape(len(lm), -1)
    return np.nan_to_num(np.concatenate([np.nanmean(w, 0), np.nanstd(w, 0)]), nan=0.0)


def test_classes_are_learnable_across_signers() -> None:
    clips = make_synthetic_dataset(10, 8, 4, seed=0)
    X = np.stack([_pooled_wrist_features(lm) for lm in clips.landmarks])
    tr, te = split_indices(clips, "signer:0.25", seed=0)
    assert not set(clips.signers[tr]) & set(clips.signers[te])
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(X[tr], clips.y[tr])
    accuracy = model.score(X[te], clips.y[te])
    assert accuracy > 0.5  # chance is 0.1
