"""Open-set recognition: each knownness score on crafted inputs, fitting a threshold for a false-rejection
target, the ``ensemble.open_set`` config key, ``signlang train`` writing ``meta.open_set``, ``signlang
calibrate`` refitting it, and ``signlang benchmark openset`` on tiny synthetic data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from bundle_fixtures import TINY_TRAIN_OVERRIDES
from typer.testing import CliRunner

from signlang.cli import app
from signlang.datasets.clip import ClipSet
from signlang.datasets.loaders import save_npz
from signlang.datasets.synthetic import make_synthetic_dataset
from signlang.models.bundle import BundleError, load_bundle
from signlang.models.openset import (
    OPEN_SET_SCORES,
    OpenSetRule,
    auroc,
    energy_score,
    entropy_score,
    fit_open_set,
    margin_score,
    max_prob_score,
    unknown_class_score,
)
from signlang.training import pipeline
from signlang.training.config import config_from_dict, load_config, merge_overrides, shipped_config_path

torch.set_num_threads(1)

PROBA_METHODS = ("max_prob", "margin", "entropy", "energy", "mahalanobis")


# --- the scores ---------------------------------------------------------------------------------
def test_probability_scores_on_crafted_rows() -> None:
    p = np.array([[0.7, 0.2, 0.1], [1 / 3, 1 / 3, 1 / 3], [1.0, 0.0, 0.0]])
    np.testing.assert_allclose(max_prob_score(p, {}), [0.7, 1 / 3, 1.0])
    np.testing.assert_allclose(margin_score(p, {}), [0.5, 0.0, 1.0], atol=1e-12)
    np.testing.assert_allclose(entropy_score(p, {})[1], -np.log(3))
    assert entropy_score(p, {})[2] == pytest.approx(0.0, abs=1e-4)  # one-hot: no uncertainty
    # energy = T log sum p^(1/T): the uniform row gives (T - 1) log C; tends to log p_max as T -> 0
    for t in (0.2, 0.5):
        assert energy_score(p, {"T": t})[1] == pytest.approx((t - 1) * np.log(3))
    assert energy_score(p, {"T": 0.01})[0] == pytest.approx(np.log(0.7), abs=0.01)
    for fn in (max_prob_score, margin_score, entropy_score, lambda q, _: energy_score(q, {"T": 0.3})):
        s = fn(p, {})
        assert s[2] > s[0] > s[1]  # confident > peaked > flat
    with pytest.raises(ValueError, match="params.T must be in"):
        energy_score(p, {"T": 1.0})


def test_mahalanobis_to_class_prototypes_in_log_probability_space() -> None:
    rng = np.random.default_rng(0)
    centres = np.array([[0.9, 0.05, 0.05], [0.05, 0.9, 0.05]])
    known = np.concatenate([rng.dirichlet(c * 60, size=100) for c in centres])
    y = np.repeat([0, 1], 100)
    rule = fit_open_set(known, "mahalanobis", 0.05, y_known_valid=y)
    assert np.asarray(rule.params["means"]).shape == (2, 3) and np.asarray(rule.params["precision"]).shape == (3, 3)
    s = rule.score(np.array([[0.9, 0.05, 0.05], [0.05, 0.05, 0.9], [0.4, 0.3, 0.3]]))
    assert s[0] > s[1] and s[0] > s[2]  # a prototype scores above a row far from both
    assert rule.unknown(np.array([[0.05, 0.05, 0.9]]))[0]
    with pytest.raises(ValueError, match="params need 'means' and 'precision'"):
        OPEN_SET_SCORES.get("mahalanobis")(known, {})


def test_unknown_class_score_and_auroc() -> None:
    p = np.array([[0.1, 0.9], [0.8, 0.2]])
    np.testing.assert_allclose(unknown_class_score(p, {"index": 1}), [0.1, 0.8])
    with pytest.raises(ValueError, match="params.index"):
        unknown_class_score(p, {"index": 2})
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(1)
    k, u = rng.integers(0, 5, 50).astype(float), rng.integers(0, 4, 30).astype(float)  # many ties
    assert auroc(k, u) == pytest.approx(roc_auc_score(np.r_[np.ones(50), np.zeros(30)], np.r_[k, u]))


# --- fitting ------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", PROBA_METHODS)
def test_fitting_hits_the_false_rejection_target_on_held_out_samples(method: str) -> None:
    rng = np.random.default_rng(3)
    n, c = 4000, 6
    y = rng.integers(0, c, n)
    known = np.stack([rng.dirichlet(np.where(np.arange(c) == k, 12.0, 1.0)) for k in y])
    unknown = rng.dirichlet(np.full(c, 2.0), size=500)
    fit, held = slice(0, n // 2), slice(n // 2, n)
    rule = fit_open_set(known[fit], method, 0.05, unknown, y_known_valid=y[fit])
    assert rule.record["false_rejection"] <= 0.05 and rule.record["n_known"] == n // 2
    assert rule.unknown(known[held]).mean() == pytest.approx(0.05, abs=0.02)
    assert rule.record["unknown_declined"] > 0.2 and 0.5 < rule.record["auroc"] <= 1.0
    again = OpenSetRule.from_json(json.loads(json.dumps(rule.to_json())))
    np.testing.assert_array_equal(again.unknown(known[held]), rule.unknown(known[held]))


def test_fit_open_set_refuses_bad_arguments() -> None:
    p = np.full((10, 3), 1 / 3)
    with pytest.raises(ValueError, match="open-set score"):
        fit_open_set(p, "nope")
    with pytest.raises(ValueError, match="target_false_rejection"):
        fit_open_set(p, "max_prob", 0.7)
    with pytest.raises(ValueError, match="no held-out known clips"):
        fit_open_set(np.zeros((0, 3)), "max_prob")
    with pytest.raises(ValueError, match="options=\\{'index': i\\}"):
        fit_open_set(p, "unknown_class")


# --- the config key -----------------------------------------------------------------------------
def test_config_key_is_validated_strictly() -> None:
    cfg = config_from_dict({"ensemble": {"open_set": {"method": "energy", "target_false_rejection": 0.1}}})
    assert cfg.ensemble.open_set.method == "energy" and cfg.ensemble.open_set.target_false_rejection == 0.1
    assert config_from_dict({}).ensemble.open_set is None
    for bad, msg in [({"method": "maxprob"}, "ensemble.open_set.method' must be one of max_prob"),
                     ({"method": "unknown_class"}, "ensemble.open_set.method' must be one of"),
                     ({"target_false_rejection": 0.6}, "target_false_rejection' must be in \\(0, 0.5\\)"),
                     ({"methd": "energy"}, "did you mean 'ensemble.open_set.method'"),
                     ("energy", "expected a mapping")]:
        with pytest.raises(ValueError, match=msg):
            config_from_dict({"ensemble": {"open_set": bad}})
    for name in ("cpu", "train"):  # the shipped configs set it
        assert load_config(shipped_config_path(name)).ensemble.open_set is not None


# --- train and calibrate ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def clips() -> ClipSet:
    return make_synthetic_dataset(n_classes=3, n_signers=5, clips_per_signer=2, seed=2, frames=(12, 18))


@pytest.fixture(scope="module")
def cfg():
    return merge_overrides(load_config(shipped_config_path("cpu")), {**TINY_TRAIN_OVERRIDES, "ensemble.models": ["xgboost"]})


def test_train_writes_meta_open_set_only_when_configured(clips: ClipSet, cfg, tmp_path: Path) -> None:
    on = merge_overrides(cfg, {"ensemble.open_set": {"method": "energy", "target_false_rejection": 0.1}})
    report = pipeline.train_bundle(clips, tmp_path / "on", on, split="signer", track=False, progress=False)
    meta = load_bundle(tmp_path / "on").manifest["meta"]
    rule = OpenSetRule.from_json(meta["open_set"])
    assert rule.method == "energy" and report["open_set"]["fitted_on"] == "the validation part"
    assert report["open_set"]["n_known"] == report["split"]["n_validation"] > 0
    assert report["open_set"]["false_rejection"] <= 0.1
    off = pipeline.train_bundle(clips, tmp_path / "off", merge_overrides(cfg, {"ensemble.open_set": None}), split="signer",
                                track=False, progress=False)
    assert "open_set" not in load_bundle(tmp_path / "off").manifest["meta"] and off["open_set"]["method"] == "none"
    # a malformed rule in a manifest is refused on load, naming the field
    manifest = json.loads((tmp_path / "on" / "manifest.json").read_text())
    manifest["meta"]["open_set"] = {"method": "nope", "threshold": 0.1}
    (tmp_path / "on" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="meta.open_set"):
        load_bundle(tmp_path / "on")


def test_calibrate_fits_and_refits_the_open_set_rule(clips: ClipSet, cfg, tmp_path: Path) -> None:
    people = sorted(set(clips.signers.tolist()))
    mine = np.isin(clips.signers, people[:3])
    train, others = clips.subset(np.flatnonzero(mine)), clips.subset(np.flatnonzero(~mine))
    report = pipeline.train_bundle(train, tmp_path / "run", merge_overrides(cfg, {"ensemble.open_set": {"method": "max_prob"}}),
                                   track=False, progress=False)
    assert report["open_set"]["method"] == "none" and "signlang calibrate" in report["open_set"]["why"]
    held = tmp_path / "held.npz"
    save_npz(others, held)
    res = CliRunner().invoke(app, ["calibrate", "--model", str(tmp_path / "run"), "--data", str(held), "--open-set", "entropy",
                                   "--false-rejection", "0.2"])
    assert res.exit_code == 0, res.output
    assert "open set: entropy threshold" in res.output
    b = load_bundle(tmp_path / "run")
    rule = OpenSetRule.from_json(b.manifest["meta"]["open_set"])
    assert rule.method == "entropy" and rule.record["n_known"] == len(others) and rule.record["target_false_rejection"] == 0.2
    assert rule.record["false_rejection"] <= 0.2 and b.manifest["extra"]["open_set"]["method"] == "entropy"
    # without --open-set the bundle's own rule is refitted (same method and target); 'none' removes it
    res = CliRunner().invoke(app, ["calibrate", "--model", str(tmp_path / "run"), "--data", str(held)])
    assert res.exit_code == 0 and "open set: entropy" in res.output and "target 20.0 %" in res.output, res.output
    res = CliRunner().invoke(app, ["calibrate", "--model", str(tmp_path / "run"), "--data", str(held), "--open-set", "none"])
    assert res.exit_code == 0 and "rule removed" in res.output
    assert "open_set" not in load_bundle(tmp_path / "run").manifest["meta"]
    res = CliRunner().invoke(app, ["calibrate", "--model", str(tmp_path / "run"), "--data", str(held), "--open-set", "energi"])
    assert res.exit_code != 0 and "energy" in res.output


# --- the benchmark ------------------------------------------------------------------------------
def test_audit_keeps_only_vetted_cells(tmp_path: Path) -> None:
    from signlang.bench.openset import audit_counts
    from signlang.datasets.heldout import load_data

    c = make_synthetic_dataset(n_classes=2, n_signers=2, clips_per_signer=2, seed=0, frames=(8, 10))
    c = ClipSet(c.landmarks, c.y, ("hello", "thanks"), c.clip_ids, signers=c.signers)
    s0, s1 = sorted(set(c.signers.tolist()))
    (tmp_path / "a.csv").write_text(f"signer,label,keep\n{s0},hello,1\n{s0},thanks,0\n{s1},hello,1\n{s1},thanks,0\n")
    kept, source = load_data(c, tmp_path / "a.csv")
    counts = audit_counts(source)
    assert counts == {"kept": int((c.labels == "hello").sum()), "dropped": int((c.labels == "thanks").sum())}
    assert set(kept.labels.tolist()) == {"hello"}
    (tmp_path / "b.csv").write_text("signer,label,keep\nx,hello,yes\n")
    with pytest.raises(ValueError, match="b.csv: line 2"):
        load_data(c, tmp_path / "b.csv")


def test_benchmark_openset_command_on_tiny_synthetic_data(tmp_path: Path) -> None:
    main = make_synthetic_dataset(n_classes=8, n_signers=3, clips_per_signer=3, seed=0, frames=(12, 16))
    save_npz(main, tmp_path / "main.npz")
    eight = make_synthetic_dataset(n_classes=8, n_signers=8, clips_per_signer=2, seed=1, frames=(12, 16))
    names = ("hello", "iloveyou", "thanks", "no", "yes", "please", "help", "sorry")
    save_npz(ClipSet(eight.landmarks, eight.y, names, eight.clip_ids, signers=eight.signers, seq_ids=eight.seq_ids), tmp_path / "crowd.npz")
    res = CliRunner().invoke(app, ["benchmark", "openset", "--data", str(tmp_path / "main.npz"), "--crowd-data", str(tmp_path / "crowd.npz"),
                                   "--config", "cpu", "--set", "ensemble.models=[xgboost]", "--set", "xgboost.n_estimators=3",
                                   "--set", "data.target_frames=8", "--set", "ensemble.n_folds=2", "--folds", "2", "--out", str(tmp_path / "os.md"), "--quiet"])
    assert res.exit_code == 0, res.output
    md = (tmp_path / "os.md").read_text()
    assert "Protocol A: leave signs out" in md and "Protocol B: people never seen" in md and "(baseline)" in md
    data = json.loads((tmp_path / "os.json").read_text())
    assert data["chosen"] in OPEN_SET_SCORES and data["chosen"] != "unknown_class"
    for key in ("A", "B"):
        summary = data[key]["summary"]
        assert set(summary) == {*PROBA_METHODS, "pooled_mahalanobis", "unknown_class"}
        for s in summary.values():
            assert 0.0 <= s["test"]["known_declined"] <= 1.0 and (s["test"]["auroc"] is None or 0.0 <= s["test"]["auroc"] <= 1.0)
    res = CliRunner().invoke(app, ["benchmark", "openset", "--protocols", "C"])
    assert res.exit_code != 0 and "--protocols" in res.output


def test_shipped_model_check_fits_rules_on_held_out_people(tiny_bundle: Path) -> None:
    from signlang.bench.openset import PROBA_METHODS as METHODS
    from signlang.bench.openset import shipped_markdown, shipped_model_check

    crowd = make_synthetic_dataset(n_classes=6, n_signers=4, clips_per_signer=2, seed=7, frames=(24, 30))  # classes 4, 5: unknown
    trained = crowd.subset(np.flatnonzero(crowd.signers == crowd.signers[0]))  # one person's cells count as trained
    r = shipped_model_check(tiny_bundle, crowd, None, trained=trained)
    first = crowd.signers == crowd.signers[0]
    assert r["n_left_out_trained"] == int(first.sum())
    # signs outside the vocabulary are unknown whoever signs them; known clips only of cells never trained on
    assert r["n_unknown"] == int((crowd.y >= 4).sum()) and r["n_known"] == int(((crowd.y < 4) & ~first).sum())
    assert set(r["methods"]) == set(METHODS) and r["videos"] == {}
    for row in r["methods"].values():
        assert 0.0 <= row["held_out_half"]["auroc"] <= 1.0 and row["rule"]["record"]["false_rejection"] <= 0.05
    assert "| max_prob |" in shipped_markdown(r)
