"""The accuracy benchmark's new parts: combiners chosen on validation (a spy proves test is not read
before the choice), the cross-signer table, zero-shot transfer and the joint vocabulary."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from signlang.bench import accuracy as bench
from signlang.datasets.synthetic import make_synthetic_dataset
from signlang.training.config import config_from_dict

TINY = {
    "data": {"target_frames": 16, "smooth_window": 5, "smooth_order": 2, "canonical_hand": True, "level_shoulders": True},
    "xgboost": {"n_estimators": 6, "max_depth": 2, "learning_rate": 0.5, "early_stopping_rounds": None, "max_bin": 32},
    "bilstm": {"hidden": 8, "layers": 1},
    "optim": {"epochs": 2, "batch_size": 32},
    "ensemble": {"n_folds": 2, "models": ["xgboost", "bilstm"]},
    "device": "cpu",
}


class SpyList(list):
    """A list that records every index read, and what had been read when :func:`choose_combiner` ran."""

    def __init__(self, items) -> None:
        super().__init__(items)
        self.read: set[int] = set()

    def __getitem__(self, i):
        if isinstance(i, slice):
            self.read.update(range(*i.indices(len(self))))
        else:
            self.read.add(int(i))
        return super().__getitem__(i)

    def __iter__(self):
        self.read.update(range(len(self)))
        return super().__iter__()


def test_combiner_is_chosen_without_touching_test(monkeypatch: pytest.MonkeyPatch) -> None:
    from signlang.datasets.splits import split_indices

    clips = make_synthetic_dataset(n_classes=3, n_signers=3, clips_per_signer=4, seed=0, frames=(16, 24))
    cfg = config_from_dict(TINY)
    _, test_idx = split_indices(clips, "blocked:0.25", seed=cfg.seed)
    spy = SpyList(clips.landmarks)
    clips.landmarks = spy
    read_at_choice: list[set[int]] = []
    real_choose = bench.choose_combiner

    def spying_choose(validation):
        read_at_choice.append(set(spy.read))
        return real_choose(validation)

    monkeypatch.setattr(bench, "choose_combiner", spying_choose)
    result = bench.compare_combiners(clips, cfg, split="blocked:0.25")
    assert len(read_at_choice) == 1
    assert not read_at_choice[0] & set(test_idx.tolist()), "the combiner choice read test clips"
    assert set(test_idx.tolist()) <= spy.read  # and the test part was scored afterwards
    assert result["chosen"] in ("xgboost", "logistic", "mean")
    assert {"xgboost", "logistic", "mean"} <= set(result["validation"]) and set(result["validation"]) == set(result["test"])
    assert "validation" in bench.combiner_markdown(result)


def test_choose_combiner_prefers_accuracy_then_f1_then_the_simpler() -> None:
    v = {"xgboost": {"accuracy": 0.9, "macro_f1": 0.9}, "logistic": {"accuracy": 0.95, "macro_f1": 0.9},
         "mean": {"accuracy": 0.95, "macro_f1": 0.9}}
    assert bench.choose_combiner(v) == "mean"
    v["logistic"]["macro_f1"] = 0.91
    assert bench.choose_combiner(v) == "logistic"


def test_per_person_figures() -> None:
    y = np.array([0, 0, 1, 1, 0, 1])
    pred = np.array([0, 1, 1, 1, 0, 0])
    out = bench.per_person(y, pred, np.array(["a", "a", "b", "b", "c", "c"], dtype=object))
    assert out["by_person"] == {"a": 0.5, "b": 1.0, "c": 0.5}
    assert out["person_min"] == 0.5 and out["person_median"] == 0.5 and abs(out["accuracy"] - 4 / 6) < 1e-12


def test_cross_signer_keeps_signers_apart_and_lists_low_people() -> None:
    clips = make_synthetic_dataset(n_classes=3, n_signers=4, clips_per_signer=3, seed=1, frames=(16, 24))
    folds = bench.signer_folds(clips, 2)
    for s in set(clips.signers):
        assert len(set(folds[clips.signers == s])) == 1
    cfg = config_from_dict(TINY)
    result = bench.cross_signer(clips, cfg, k=2, baselines=("lr",), ablations={"no canonical hand": {"data.canonical_hand": False}})
    names = [r["model"] for r in result["rows"]]
    assert "pooled-stats LR (baseline)" in names and any(n.startswith("ensemble") for n in names)
    assert any("inside the ensemble" in n for n in names) and len(result["ablations"]) == 1
    for r in result["rows"]:
        assert 0 <= r["person_min"] <= r["person_p10"] <= r["person_median"] <= 1
    assert all(p["accuracy"] < bench.LOW_PERSON for p in result["low_people"])
    md = bench.cross_signer_markdown(result)
    assert "| model | accuracy" in md and "wrong answers flagged" in md
    assert 0 <= result["ensemble_ece_recalibrated"] <= 1
    rows = result["selective"]["recalibrated"]
    assert [r["threshold"] for r in rows] == [0.5, 0.7, 0.9]
    assert all(a["coverage"] >= b["coverage"] for a, b in zip(rows, rows[1:]))  # a higher bar answers fewer clips


def test_union_and_zero_shot(tmp_path: Path) -> None:
    from signlang.models.bundle import save_bundle
    from signlang.models.trees import PooledXGBoostClassifier
    from signlang.training.pipeline import normalize, preprocessing_of

    main = make_synthetic_dataset(n_classes=3, n_signers=2, clips_per_signer=3, seed=2, frames=(16, 24))
    crowd = bench.renamed(main, {main.classes[0]: "thanks", main.classes[1]: "iloveyou"})
    joint = bench.union(main, crowd, {"thanks": main.classes[0]})
    assert set(joint.classes) == set(main.classes) | {"iloveyou"} and len(joint) == 2 * len(main)
    assert joint.classes[joint.y[0]] == main.classes[main.y[0]]
    cfg = config_from_dict(TINY)
    pre = preprocessing_of(cfg)
    model = PooledXGBoostClassifier(n_estimators=6, max_depth=2, n_jobs=1).fit(normalize(main.landmarks, pre), main.y)
    save_bundle(tmp_path / "b", model, classes=main.classes, preprocessing=pre, report={}, name="xgboost")
    out = bench.zero_shot(tmp_path / "b", crowd, rename={"thanks": main.classes[0]})
    assert out["signs"] == [main.classes[0], main.classes[2]]  # iloveyou is unknown to the bundle
    assert out["n_clips"] == int(np.isin(main.y, [0, 2]).sum())
    assert 0 <= out["accuracy"] <= out["two_way_accuracy"] <= 1
    assert out["refused"] == 0 and sum(out["predicted"].values()) == out["n_clips"]


def test_joint_heldout_scores_only_what_each_fit_never_saw() -> None:
    """The joint model's held-out figures: every crowd clip is scored by the fit that left its signer
    out, the main set's test part by every fit; the numbers are proper fractions of the right counts."""
    main = make_synthetic_dataset(n_classes=4, n_signers=2, clips_per_signer=5, seed=5, frames=(16, 24))
    base = make_synthetic_dataset(n_classes=3, n_signers=6, clips_per_signer=2, seed=6, frames=(16, 24))
    crowd = bench.renamed(base, {base.classes[0]: "thanks", base.classes[1]: "hello", base.classes[2]: "iloveyou"})
    cfg = config_from_dict({**TINY, "ensemble": {"n_folds": 2, "models": ["xgboost"], "combiner": "mean"}})
    res = bench.joint_heldout(main, crowd, cfg, split="blocked:0.2", k=3, min_people=6)
    assert set(res["classes"]) == set(main.classes) | {"thank-you", "hello", "iloveyou"}
    assert len(res["main_test_by_fold"]) == 3 and res["n_crowd"] == len(crowd)
    assert res["n_train_main"] + res["n_test_main"] == len(main)
    for value in (res["main_test_accuracy"], res["crowd_accuracy_joint_vocabulary"], res["crowd_own_signs"]["accuracy"]):
        assert 0.0 <= value <= 1.0
    assert res["crowd_accuracy_joint_vocabulary"] <= res["crowd_own_signs"]["accuracy"]
    text = bench.joint_markdown(res)
    assert "main set" in text and "never seen" in text


def test_handshape_check_flags_the_person_whose_labels_are_exchanged() -> None:
    from signlang.features.normalize import NormalizeConfig, normalize_clips

    clips = make_synthetic_dataset(n_classes=3, n_signers=6, clips_per_signer=4, seed=3, frames=(20, 24))
    clips = bench.renamed(clips, {clips.classes[2]: "iloveyou"})  # class 2: the 'index' handshape, the others not
    y = clips.y.copy()
    swapped = clips.signers == clips.signers[0]  # the first person's 'iloveyou' and class-0 clips filed under each other
    y[swapped & (clips.y == 2)], y[swapped & (clips.y == 0)] = 0, 2
    clips.y[:] = y
    X = normalize_clips(clips.landmarks, NormalizeConfig(target_frames=16, smooth_window=5, smooth_order=2, canonical_hand=True))
    folds = bench.signer_folds(clips, 3)
    check = bench.handshape_check(clips, X, folds)
    assert check is not None and check["flagged"] == [str(clips.signers[0])]
    first = check["people"][[p["signer"] for p in check["people"]].index(str(clips.signers[0]))]
    assert first["sign_shown"] < bench.HANDSHAPE_MISSED and first["others_shown_as_sign"] > bench.HANDSHAPE_STRAY
    assert bench.handshape_check(bench.renamed(clips, {"iloveyou": "other"}), X, folds) is None
    result = bench.cross_signer(clips, config_from_dict(TINY), k=3, baselines=("lr",), ours=False,
                                ablations={"shipped": {}})
    assert result["handshape_check"]["flagged"] == [str(clips.signers[0])]
    for r in result["rows"] + result["ablations"]:
        assert 0 <= r["consistent"]["person_min"] <= r["consistent"]["person_median"] <= 1
    assert "at odds with their labels" in bench.cross_signer_markdown(result)


def test_joint_crowd_keeps_signs_with_enough_people_or_a_main_class_and_scores_the_rest_as_unknown(tmp_path: Path) -> None:
    """The pretrained recipe's vocabulary rule: a crowd sign joins with >= min_people people or when the main set has
    it (``thanks`` -> ``thank-you``); the others stay out, and the joint benchmark scores their clips as unknown signs,
    each by the fit that never saw its person."""
    main = make_synthetic_dataset(n_classes=3, n_signers=2, clips_per_signer=4, seed=5, frames=(16, 24))
    main = bench.renamed(main, {main.classes[0]: "thank-you"})
    base = make_synthetic_dataset(n_classes=3, n_signers=6, clips_per_signer=2, seed=6, frames=(16, 24))
    crowd = bench.renamed(base, {base.classes[0]: "thanks", base.classes[1]: "hello", base.classes[2]: "yes"})
    few = np.flatnonzero((crowd.y != 2) | np.isin(crowd.signers, ["synthetic-signer-0", "synthetic-signer-1"]))
    crowd = crowd.subset(few)  # yes: 2 people; thanks, hello: 6
    joined, info = bench.joint_crowd(crowd, main.classes, min_people=3)
    assert joined.classes == ("thanks", "hello") and info["left_out"] == {"yes": {"people": 2, "clips": 4}}
    assert len(joined) == 24 and set(np.asarray(joined.classes)[joined.y]) == {"thanks", "hello"}
    joined, info = bench.joint_crowd(crowd, main.classes, min_people=7)  # thanks stays (a main class), hello goes
    assert joined.classes == ("thanks",) and set(info["left_out"]) == {"hello", "yes"}

    cfg = config_from_dict({**TINY, "ensemble": {"n_folds": 2, "models": ["xgboost"], "combiner": "mean"}})
    res = bench.joint_heldout(main, crowd, cfg, split="blocked:0.2", k=2, min_people=3, save_proba=tmp_path / "p.npz")
    assert "yes" not in res["classes"] and res["n_unknown"] == 4 and res["n_crowd"] == 24
    with np.load(tmp_path / "p.npz") as z:
        assert z["unknown_proba"].shape == (4, len(res["classes"])) and set(z["unknown_sign"]) == {"yes"}
        assert np.allclose(z["unknown_proba"].sum(1), 1.0, atol=1e-4)
        fold_of = dict(zip(z["crowd_signer"], z["crowd_fold"]))
        assert all(fold_of[s] == f for s, f in zip(z["unknown_signer"], z["unknown_fold"]))
    assert "left out of the vocabulary" in bench.joint_markdown(res) and "yes (2 people, 4 clips)" in bench.joint_markdown(res)
