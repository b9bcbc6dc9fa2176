"""Landmark estimators and the model bundle: round trip, tamper detection, no pickle."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from signlang.models.base import NeuralSequenceModel
from signlang.models.bundle import BundleError, load_bundle, save_bundle
from signlang.models.ensemble import StackingEnsemble
from signlang.models.featurize import frame_table
from signlang.models.registry import build_model
from signlang.models.trees import PooledXGBoostClassifier, XGBoostClassifier

torch.set_num_threads(1)
CLASSES = ("hello", "thanks", "yes")


def _landmarks(n_per_class: int = 6, t: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Normalised-looking landmarks (N, T, 75, 3) with class-dependent motion, a missing hand, padding."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(len(CLASSES)), n_per_class)
    base = rng.normal(scale=0.3, size=(1, 1, 75, 3))
    phase = np.linspace(0, 2 * np.pi, t)[None, :, None, None]
    X = base + 0.2 * np.sin(phase * (1 + y[:, None, None, None])) + 0.05 * rng.normal(size=(len(y), t, 75, 3))
    X = X.astype(np.float32)
    X[::2, :, 33:54] = np.nan  # left hand never detected in every other clip
    X[1, t - 3:] = np.nan  # a shorter clip padded with missing frames
    return X, y


def _networks(n_features: int) -> list[tuple[str, NeuralSequenceModel]]:
    torch.manual_seed(0)
    nets = []
    for arch, kw in (("transformer", dict(d_model=16, n_heads=2, n_layers=1, dim_feedforward=32)), ("bilstm", dict(hidden=8))):
        module = build_model(arch, n_features=n_features, n_classes=len(CLASSES), **kw)
        nets.append((arch, NeuralSequenceModel.from_module(module, arch, kw, np.arange(len(CLASSES)), batch_size=4)))
    return nets


@pytest.fixture(scope="module")
def fitted() -> tuple[StackingEnsemble, np.ndarray, np.ndarray]:
    X, y = _landmarks()
    feats, _ = frame_table(X[:1])
    bases = _networks(feats.shape[-1])
    bases.append(("xgb", PooledXGBoostClassifier(n_estimators=10, learning_rate=0.3, n_jobs=1).fit(X, y)))
    meta_in = np.concatenate([est.predict_proba(X) for _, est in bases], axis=1)
    meta = XGBoostClassifier(n_estimators=10, learning_rate=0.3, n_jobs=1).fit(meta_in, y)
    names = [f"{n}:{c}" for n, _ in bases for c in range(len(CLASSES))]
    return StackingEnsemble.from_fitted(bases, meta, np.arange(len(CLASSES)), meta_feature_names=names), X, y


# --- estimators over landmarks ------------------------------------------------------------------
def test_neural_model_batches_match_the_module(fitted) -> None:
    ens, X, _ = fitted
    est = dict(ens.estimators_)["bilstm"]
    feats, mask = est.featurize(X)
    assert feats.dtype == torch.float32 and mask.dtype == torch.bool and feats.shape[:2] == mask.shape == X.shape[:2]
    assert torch.isfinite(feats).all() and not mask[1, -3:].any()
    with torch.no_grad():
        direct = torch.softmax(est.module_(feats, mask), -1).numpy()
    proba = est.predict_proba(X)  # batch_size 4 over 18 clips
    np.testing.assert_allclose(proba, direct, atol=1e-6)
    np.testing.assert_array_equal(est.predict(X), proba.argmax(1))
    with pytest.raises(ValueError, match=r"NeuralSequenceModel: X: expected normalised landmarks"):
        est.predict_proba(X[..., :2])


def test_pooled_xgboost_fits_landmarks() -> None:
    X, y = _landmarks(n_per_class=8, seed=1)
    clf = PooledXGBoostClassifier(n_estimators=40, learning_rate=0.3, n_jobs=1, classes=[0, 1, 2, 3]).fit(X, y)
    proba = clf.predict_proba(X)
    assert proba.shape == (len(y), 4)
    assert (clf.predict(X) == y).mean() == 1.0


# --- bundle -------------------------------------------------------------------------------------
def test_stacking_bundle_round_trip_is_exact(fitted, tmp_path: Path) -> None:
    ens, X, _ = fitted
    out = save_bundle(tmp_path / "b", ens, classes=CLASSES, preprocessing={"normalize": {"T": 12}, "feature_blocks": None},
                      report={"top1": 0.5}, extra={"run": "test"})
    names = sorted(p.name for p in out.iterdir())
    assert names == ["bilstm.safetensors", "manifest.json", "meta.json", "report.json", "transformer.safetensors", "xgb.json"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format"] == "signlang-bundle" and manifest["format_version"] == 1
    assert set(manifest["files"]) == set(names) - {"manifest.json"}
    assert manifest["meta"]["inputs"][:3] == ["transformer:0", "transformer:1", "transformer:2"]
    assert {"numpy", "torch", "xgboost", "signlang"} <= set(manifest["versions"])
    bundle = load_bundle(out)
    assert bundle.classes == CLASSES and bundle.report == {"top1": 0.5}
    assert bundle.preprocessing["normalize"] == {"T": 12}
    np.testing.assert_array_equal(bundle.predict_proba(X), ens.predict_proba(X))
    by_model = bundle.ensemble.predict_proba_by_model(X)
    for name, proba in ens.predict_proba_by_model(X).items():
        np.testing.assert_array_equal(by_model[name], proba)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        save_bundle(out, ens, classes=CLASSES, preprocessing={})
    save_bundle(out, ens, classes=CLASSES, preprocessing={"v": 2}, overwrite=True)
    assert load_bundle(out).preprocessing == {"v": 2} and not (out / "report.json").exists()


def test_the_same_model_saves_to_the_same_bytes(fitted, tmp_path: Path) -> None:
    """A rebuild can be checked byte for byte: every file but the manifest (its creation time) repeats."""
    ens, _, _ = fitted
    digests = set()
    for i in range(8):  # safetensors orders a metadata map at random: 8 saves would show it
        out = save_bundle(tmp_path / f"b{i}", ens, classes=CLASSES, preprocessing={}, report={"r": 1})
        digests.add(tuple((p.name, p.read_bytes()) for p in sorted(out.iterdir()) if p.name != "manifest.json"))
    assert len(digests) == 1


def test_fitted_stacking_with_pooled_passthrough_round_trips(tmp_path: Path) -> None:
    X, y = _landmarks(n_per_class=6, seed=2)
    base = PooledXGBoostClassifier(n_estimators=8, learning_rate=0.3, n_jobs=1)
    ens = StackingEnsemble([("xgb", base)], meta_estimator=XGBoostClassifier(n_estimators=8, n_jobs=1), n_folds=3,
                           passthrough_pooled=True).fit(X, y)
    assert ens.meta_.n_features_in_ == len(ens.meta_feature_names_) > 3
    bundle = load_bundle(save_bundle(tmp_path / "p", ens, classes=CLASSES, preprocessing={}))
    np.testing.assert_array_equal(bundle.predict_proba(X), ens.predict_proba(X))


def test_single_model_bundle(fitted, tmp_path: Path) -> None:
    ens, X, _ = fitted
    net = dict(ens.estimators_)["transformer"]
    out = save_bundle(tmp_path / "single", net, classes=CLASSES, preprocessing={})
    bundle = load_bundle(out)
    assert bundle.ensemble is None and bundle.manifest["predictor"] == "single"
    assert isinstance(bundle.model, NeuralSequenceModel) and bundle.model.arch_kwargs["d_model"] == 16
    np.testing.assert_array_equal(bundle.predict_proba(X), net.predict_proba(X))


@pytest.mark.parametrize("victim", ["transformer.safetensors", "meta.json", "xgb.json", "report.json"])
def test_changed_byte_is_refused_naming_the_file(fitted, tmp_path: Path, victim: str) -> None:
    ens, _, _ = fitted
    out = save_bundle(tmp_path / "b", ens, classes=CLASSES, preprocessing={}, report={"ok": True})
    raw = bytearray((out / victim).read_bytes())
    raw[len(raw) // 2] ^= 0x01
    (out / victim).write_bytes(bytes(raw))
    with pytest.raises(BundleError, match=rf"{victim}: sha256 does not match"):
        load_bundle(out)


def test_pickle_and_malformed_bundles_are_refused(fitted, tmp_path: Path) -> None:
    ens, _, _ = fitted
    out = save_bundle(tmp_path / "b", ens, classes=CLASSES, preprocessing={})
    manifest_path = out / "manifest.json"
    good = manifest_path.read_text()

    (out / "evil.pkl").write_bytes(b"\x80\x04K\x01.")
    manifest = json.loads(good)
    import hashlib

    manifest["files"]["evil.pkl"] = hashlib.sha256(b"\x80\x04K\x01.").hexdigest()
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=r"pickle-like.*evil\.pkl"):
        load_bundle(out)
    (out / "evil.pkl").unlink()
    with pytest.raises(BundleError, match=r"evil\.pkl"):  # still listed in the manifest
        load_bundle(out)

    for change, pattern in (
        ({"format": "other"}, "unknown format 'other'"),
        ({"format_version": 2}, "unsupported format_version 2"),
    ):
        manifest_path.write_text(json.dumps({**json.loads(good), **change}))
        with pytest.raises(BundleError, match=pattern):
            load_bundle(out)
    manifest = json.loads(good)
    manifest["files"]["../outside.json"] = "0" * 64
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="invalid file name"):
        load_bundle(out)
    manifest_path.write_text(good)
    (out / "xgb.json").unlink()
    with pytest.raises(BundleError, match=r"xgb\.json: listed in the manifest but missing"):
        load_bundle(out)
    manifest_path.unlink()
    with pytest.raises(BundleError, match="manifest.json: missing"):
        load_bundle(out)
