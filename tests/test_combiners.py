"""The combiner as a config choice: xgboost | logistic | mean through the ensemble, bundle, ONNX export and explainer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from signlang.models.combiners import COMBINERS, LinearCombiner, make_combiner


def test_mean_combiner_is_the_average_of_the_bases() -> None:
    rng = np.random.default_rng(0)
    p1, p2 = rng.dirichlet(np.ones(4), 10), rng.dirichlet(np.ones(4), 10)
    comb = LinearCombiner("mean", classes=np.arange(4)).fit(np.zeros((3, 8)), np.array([0, 1, 2]))
    np.testing.assert_allclose(comb.predict_proba(np.hstack([p1, p2])), (p1 + p2) / 2, atol=1e-6)
    assert comb.needs_oof is False
    assert comb.base_shares(["a:0", "a:1", "a:2", "a:3", "b:0", "b:1", "b:2", "b:3"], ["a", "b"]) == {"a": 0.5, "b": 0.5}


def test_logistic_combiner_learns_to_trust_the_good_base_and_round_trips() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 300)
    good = np.eye(3)[y] * 0.8 + 0.2 / 3
    noise = rng.dirichlet(np.ones(3), 300)
    Z = np.hstack([noise, good])
    comb = LinearCombiner("logistic", classes=np.arange(3)).fit(Z, y)
    assert (comb.predict(Z) == y).mean() > 0.95
    names = [f"{b}:{c}" for b in ("noise", "good") for c in range(3)]
    shares = comb.base_shares(names, ["noise", "good"])
    assert shares["good"] > shares["noise"]
    again = LinearCombiner.from_json_bytes(comb.to_json_bytes())
    np.testing.assert_allclose(again.predict_proba(Z), comb.predict_proba(Z), atol=1e-7)
    two = LinearCombiner("logistic", classes=np.arange(2)).fit(Z[:, :2], (y > 0).astype(int))
    assert two.predict_proba(Z[:, :2]).shape == (300, 2)
    with pytest.raises(ValueError, match="unknown combiner"):
        make_combiner("median", np.arange(3))
    with pytest.raises(ValueError, match="not a valid linear combiner"):
        LinearCombiner.from_json_bytes(b"{}", source="x.json")


def test_config_accepts_the_combiners_and_refuses_others() -> None:
    from signlang.training.config import config_from_dict

    for name in COMBINERS:
        assert config_from_dict({"ensemble": {"combiner": name}}).ensemble.combiner == name
    with pytest.raises(ValueError, match="ensemble.combiner"):
        config_from_dict({"ensemble": {"combiner": "median"}})
    with pytest.raises(ValueError, match="passthrough_pooled"):
        config_from_dict({"ensemble": {"combiner": "mean", "passthrough_pooled": True}})


def test_mean_combiner_skips_the_out_of_fold_fits() -> None:
    from signlang.models.ensemble import StackingEnsemble
    from signlang.models.trees import PooledXGBoostClassifier

    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 6, 75, 3)).astype(np.float32)
    y = np.repeat(np.arange(3), 10)
    fits: list[str] = []
    base = PooledXGBoostClassifier(n_estimators=3, max_depth=2, n_jobs=1)
    ens = StackingEnsemble([("a", base)], meta_estimator=LinearCombiner("mean"), n_folds=3)
    ens.fit(X, y, on_fit=fits.append)
    assert fits == ["meta-learner", "all data: a"] and ens.oof_proba_ is None
    with pytest.raises(ValueError, match="no out-of-fold"):
        ens.with_combiner(LinearCombiner("logistic"))


@pytest.fixture(scope="module")
def fitted_stack():
    from bundle_fixtures import tiny_clips, train_tiny_ensemble

    clips = tiny_clips()
    return clips, train_tiny_ensemble(clips)


@pytest.mark.parametrize("combiner", ["logistic", "mean"])
def test_linear_combiners_through_bundle_onnx_and_explainer(fitted_stack, combiner: str, tmp_path: Path) -> None:
    from bundle_fixtures import TINY_PREPROCESSING

    from signlang.explain.explainer import meta_shares
    from signlang.inference.export import export_bundle
    from signlang.inference.predictor import Predictor
    from signlang.models.bundle import load_bundle, save_bundle

    clips, stack = fitted_stack
    ens = stack.with_combiner(make_combiner(combiner, stack.classes_))
    assert type(ens.meta_) is LinearCombiner and ens.meta_.method == combiner
    save_bundle(tmp_path / "b", ens, classes=clips.classes, preprocessing=TINY_PREPROCESSING, report={})
    bundle = load_bundle(tmp_path / "b")
    assert bundle.manifest["meta"]["kind"] == "linear_combiner"
    from signlang.features.normalize import NormalizeConfig, normalize_clips

    X = normalize_clips(clips.landmarks[:6], NormalizeConfig.from_dict(TINY_PREPROCESSING["normalize"]))
    np.testing.assert_allclose(bundle.predict_proba(X), ens.predict_proba(X), atol=1e-6)
    if combiner == "mean":
        by = ens.predict_proba_by_model(X)
        np.testing.assert_allclose(ens.predict_proba(X), sum(by.values()) / len(by), atol=1e-6)
    manifest = export_bundle(tmp_path / "b", tmp_path / "onnx")  # parity-checked against PyTorch inside
    assert manifest["models"]["meta"]["kind"] == "linear_meta"
    assert manifest["parity"]["max_abs_diff_all"] <= 1e-4
    raw = [np.asarray(c, np.float32) for c in clips.landmarks[:4]]
    with Predictor(tmp_path / "b") as torch_p, Predictor(tmp_path / "b", backend="onnx", onnx_dir=tmp_path / "onnx") as onnx_p:
        np.testing.assert_allclose(torch_p.proba(raw), onnx_p.proba(raw), atol=1e-4)
    shares = meta_shares(bundle.ensemble, ["transformer", "bilstm"])
    assert set(shares) == {"transformer", "bilstm"} and abs(sum(shares.values()) - 1) < 1e-9
