"""Faithfulness checks of the explanations on a small trained model with a planted signal.

Two classes of otherwise identical synthetic clips differ only in *which finger* of the right
hand taps in frames 7-12 (index or pinky). A small Transformer and a pooled XGBoost are trained
on them; the explainer (occlusion of frames and of landmark groups over the
whole model, the shipped defaults) must pass the model-randomisation check (landmark and frame maps of the trained
and of a re-initialised model are not rank-correlated) and the deletion check (hiding the 20 %
frames it ranks highest drops p(sign) at least twice as much as hiding 20 % random frames), and
it must point at the tapping finger.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from signlang.landmarks.layout import RIGHT_HAND

T_IN = 20
TAP = slice(7, 13)
FINGERS = {"index": RIGHT_HAND.start + np.arange(5, 9), "pinky": RIGHT_HAND.start + np.arange(17, 21)}
NORMALIZE = {"target_frames": 32, "smooth_window": 5, "smooth_order": 2, "max_gap": 8}


def planted_clips(n_per_class: int = 24, seed: int = 0, with_rest: bool = True) -> tuple[list[np.ndarray], np.ndarray, tuple[str, ...]]:
    """Raw clips ``(20, 75, 3)``: class k taps finger k of the right hand down and up in frames 7-12.

    With ``with_rest`` a third class ("rest") taps no finger, so neither tap class can be told
    by the *absence* of the other's tap (evidence occlusion cannot see).
    """
    from signlang.datasets.synthetic import make_synthetic_dataset

    base = make_synthetic_dataset(n_classes=1, n_signers=8, clips_per_signer=max(1, n_per_class // 8), seed=seed,
                                  frames=(T_IN, T_IN), missing_rate=0.0)
    bump = np.sin(np.linspace(0.0, np.pi, TAP.stop - TAP.start))[:, None]  # (6, 1)
    fingers = list(FINGERS.values()) + ([None] if with_rest else [])
    clips, labels = [], []
    for k, finger in enumerate(fingers):
        for lm in base.landmarks[:n_per_class]:
            clip = np.array(lm, dtype=np.float32, copy=True)
            if finger is not None:
                palm = np.linalg.norm(clip[:, RIGHT_HAND.start + 9] - clip[:, RIGHT_HAND.start], axis=-1).mean()
                clip[TAP, finger, 1] += 0.8 * palm * bump  # the finger bends down and comes back
            clips.append(clip)
            labels.append(k)
    return clips, np.array(labels), tuple(FINGERS) + (("rest",) if with_rest else ())


@pytest.fixture(scope="module")
def planted_explainer():
    """An Explainer over a trained small Transformer + pooled XGBoost (mean of both), and its clips."""
    from signlang.explain.explainer import Explainer
    from signlang.features.normalize import NormalizeConfig, normalize_clips
    from signlang.models.trees import PooledXGBoostClassifier
    from signlang.training.estimator import NeuralSequenceClassifier

    torch.set_num_threads(1)
    torch.manual_seed(0)
    clips, y, classes = planted_clips()
    cfg = NormalizeConfig.from_dict(NORMALIZE)
    X = normalize_clips(clips, cfg)
    net = NeuralSequenceClassifier(
        arch="transformer", arch_kwargs=dict(d_model=32, n_heads=2, n_layers=1, dim_feedforward=64, max_len=64, dropout=0.0),
        train_config={"optim": {"epochs": 25, "batch_size": 16, "lr": 3e-3}, "seed": 0}, val_fraction=0.0,
    ).fit(X, y)
    trees = PooledXGBoostClassifier(n_estimators=20, max_depth=3, learning_rate=0.3, n_jobs=1).fit(X, y)

    def normalize(clip: np.ndarray) -> np.ndarray:
        return normalize_clips([clip], cfg)[0]

    def predict(Xn: np.ndarray) -> np.ndarray:
        return 0.5 * net.predict_proba(Xn) + 0.5 * trees.predict_proba(Xn)

    explainer = Explainer([("transformer", net)], classes, normalize, predict,
                          normalize_batch=lambda batch: normalize_clips(list(batch), cfg))
    acc = float(np.mean(explainer.predict_clips(clips).argmax(1) == y))
    assert acc == 1.0, f"the planted task should be learnt perfectly, got {acc}"
    held_out, y_held, _ = planted_clips(n_per_class=3, seed=1, with_rest=False)
    return explainer, held_out, y_held


@pytest.fixture(scope="module")
def explained(planted_explainer):
    from signlang.explain.faithfulness import randomized_explainer

    explainer, clips, y = planted_explainer
    trained = [explainer.explain(c) for c in clips]
    random_model = randomized_explainer(explainer, seed=1)
    randomised = [random_model.explain(c, target=e.target) for c, e in zip(clips, trained)]
    return explainer, clips, y, trained, randomised


def test_maps_point_at_the_tapping_finger_and_frames(explained) -> None:
    _, clips, y, trained, _ = explained
    correct = [e.target == k for e, k in zip(trained, y)]
    assert np.mean(correct) >= 0.75, f"held-out accuracy {np.mean(correct)}"
    inside = np.zeros(T_IN, bool)
    inside[TAP] = True
    for e, k in ((e, k) for e, k, ok in zip(trained, y, correct) if ok):
        assert inside[e.top_frames(4)].mean() >= 0.75, f"top frames {sorted(e.top_frames(4))} not in 7..12"
        per_landmark = e.landmark_importance.sum(0)
        finger = list(FINGERS.values())[k]
        assert per_landmark[finger].mean() > 3 * np.delete(per_landmark, finger).mean()
        np.testing.assert_allclose(e.landmark_importance.sum(1), e.frame_importance, atol=1e-5)


def test_model_randomisation_check(explained) -> None:
    from signlang.bench.explain import randomisation_scores

    _, clips, _, trained, randomised = explained
    scores = randomisation_scores(trained, randomised, clips)
    assert float(np.nanmean(scores["landmarks"])) < 0.3, scores["landmarks"]
    assert float(np.nanmean(scores["landmarks_detected"])) < 0.3, scores["landmarks_detected"]
    assert float(np.nanmean(scores["frames"])) < 0.3, scores["frames"]
    # the check can fail: a map compared with itself correlates perfectly
    assert np.allclose(randomisation_scores(trained, trained, clips)["landmarks"], 1.0)


def test_deletion_check(explained) -> None:
    from signlang.explain.faithfulness import deletion_drops

    explainer, clips, _, trained, _ = explained
    res = deletion_drops(explainer, clips, trained, fraction=0.2, seed=0, random_draws=10)
    assert res.drop_top > 0 and res.drop_top >= 2.0 * max(res.drop_random, 0.0), (res.drop_top, res.drop_random)
    # the same check on frames ranked backwards (least important first) must not pass
    from dataclasses import replace

    reversed_maps = [replace(e, frame_importance=e.frame_importance.max() - e.frame_importance) for e in trained]
    worst = deletion_drops(explainer, clips, reversed_maps, fraction=0.2, seed=0, random_draws=10)
    assert worst.drop_top < res.drop_top


def test_occlusion_needs_no_network(planted_explainer) -> None:
    """Occlusion only calls the model: it explains a model with no gradients to read (e.g. XGBoost alone)."""
    from signlang.explain.explainer import Explainer

    explainer, clips, y = planted_explainer
    blind = Explainer([], explainer.classes, explainer.normalize, explainer.predict_proba, normalize_batch=explainer.normalize_batch)
    exp, ref = blind.explain(clips[0]), explainer.explain(clips[0])
    assert exp.weights == {} and exp.target == ref.target
    np.testing.assert_allclose(exp.frame_importance, ref.frame_importance, atol=1e-6)
    np.testing.assert_allclose(exp.landmark_importance, ref.landmark_importance, atol=1e-6)
    with pytest.raises(ValueError, match="need a neural network"):
        Explainer([], explainer.classes, explainer.normalize, explainer.predict_proba, frame_method="gradcam")


# --- the pieces --------------------------------------------------------------------------------
def test_hide_interpolates_from_kept_frames() -> None:
    from signlang.explain.occlusion import hide

    clip = np.arange(6 * 75 * 3, dtype=np.float32).reshape(6, 75, 3)
    clip[5, RIGHT_HAND] = np.nan  # the right hand is missing in the last frame
    out = hide(clip, np.array([0, 2, 3, 5]))
    np.testing.assert_allclose(out[0], clip[1])  # held at the start
    np.testing.assert_allclose(out[2], clip[1] + (clip[4] - clip[1]) / 3)
    np.testing.assert_allclose(out[5, :33], clip[4, :33])  # held at the end
    np.testing.assert_allclose(out[[1, 4]], clip[[1, 4]])
    only = hide(clip, np.array([2]), FINGERS["index"])
    np.testing.assert_allclose(only[2, FINGERS["index"]], 0.5 * (clip[1] + clip[3])[FINGERS["index"]])
    np.testing.assert_allclose(np.delete(only[2], FINGERS["index"], axis=0), np.delete(clip[2], FINGERS["index"], axis=0))
    gap = clip.copy()
    gap[3, RIGHT_HAND] = np.nan
    assert np.isnan(hide(gap, np.array([2]))[2, RIGHT_HAND]).all()  # not detected next to the gap: stays missing
    assert np.isnan(hide(clip, np.arange(6))).all()


def test_landmark_groups_partition_the_points() -> None:
    from signlang.explain.occlusion import LANDMARK_GROUPS, group_matrix, groups_to_landmarks

    m = group_matrix()
    assert m.shape == (len(LANDMARK_GROUPS), 75) and np.all(m.sum(0) == 1)
    np.testing.assert_array_equal(LANDMARK_GROUPS["right_hand.index"], FINGERS["index"])
    g = np.zeros((3, len(LANDMARK_GROUPS)), np.float32)
    g[1, list(LANDMARK_GROUPS).index("right_hand.pinky")] = 2.0
    lm = groups_to_landmarks(g)
    assert lm.shape == (3, 75) and np.all(lm[1, FINGERS["pinky"]] == 2.0) and lm.sum() == 8.0


# --- the benchmark command ---------------------------------------------------------------------
from bundle_fixtures import tiny_bundle, tiny_clips  # noqa: E402,F401  (fixture)


def test_pick_clips_is_seeded_and_sorted() -> None:
    from signlang.bench.explain import pick_clips

    cand = np.arange(100, 200)
    a, b = pick_clips(cand, 30, seed=0), pick_clips(cand, 30, seed=0)
    assert np.array_equal(a, b) and len(np.unique(a)) == 30 and np.all(np.diff(a) > 0) and np.isin(a, cand).all()
    assert not np.array_equal(a, pick_clips(cand, 30, seed=1))
    assert np.array_equal(pick_clips(cand[:5], 30, seed=0), cand[:5])


def test_benchmark_explain_command(tiny_bundle, tmp_path) -> None:  # noqa: F811
    import json

    from typer.testing import CliRunner

    from signlang.cli import app
    from signlang.datasets.loaders import save_npz

    data = save_npz(tiny_clips(), tmp_path / "tiny.npz")
    out = tmp_path / "bench" / "report"
    res = CliRunner().invoke(app, ["benchmark", "explain", "--model", str(tiny_bundle), "--data", str(data), "--split", "blocked:0.2",
                                   "--n-clips", "3", "--random-draws", "2", "--seed", "5", "--out", str(out)])
    assert res.exit_code == 0, res.output
    rec = json.loads(out.with_suffix(".json").read_text())
    assert rec["n_clips"] == 3 and rec["seed"] == 5 and len(rec["clip_indices"]) == 3 and len(rec["p_full"]) == 3
    assert rec["landmark_methods"] == ["occlusion", "ig"]
    for method in rec["landmark_methods"]:
        assert all(-1.0 <= v <= 1.0 for v in rec["spearman"][method]["landmarks"])
    md = out.with_suffix(".md").read_text()
    assert "seed 5" in md and "Spearman trained vs randomised, landmark maps, `occlusion`" in md and "Machine:" in md
    res = CliRunner().invoke(app, ["benchmark", "explain", "--model", str(tmp_path / "nope"), "--data", str(data), "--n-clips", "3"])
    assert res.exit_code != 0 and "nope" in res.output


def test_long_clips_are_predicted_in_bounded_chunks(monkeypatch) -> None:
    from signlang.explain import occlusion

    sizes: list[int] = []

    def predict(batch):
        sizes.append(sum(c.shape[0] for c in batch))
        return np.stack([[c[0, 0, 0], 1.0] for c in batch])

    monkeypatch.setattr(occlusion, "MAX_FRAMES_PER_BATCH", 100)
    clip = np.zeros((30, 75, 3), np.float32)
    out = occlusion.predict_in_chunks(predict, lambda j: clip + j, 7, 30)
    assert out.shape == (7, 2) and np.array_equal(out[:, 0], np.arange(7)) and max(sizes) <= 100 and len(sizes) == 3
