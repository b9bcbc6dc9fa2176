"""A model kind is one declaration: a nearest-centroid classifier on pooled features (not a network)
defined in this test file alone is registered as a model (its YAML section) and as a model kind (bundle
save/load, runner, ONNX exporter, inputs), then trained in a stacking ensemble through ``signlang
train``, evaluated, predicted, exported to ONNX (parity with its Python path), explained and tuned,
with no edit under ``src/``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from sklearn.base import BaseEstimator, ClassifierMixin
from typer.testing import CliRunner

from signlang.cli import app
from signlang.datasets.loaders import save_npz
from signlang.datasets.synthetic import make_synthetic_dataset
from signlang.models.featurize import pooled_features
from signlang.models.registry import MODEL_KINDS, MODELS, POOLED, ModelKind, register_kind, register_model


class NearestCentroid(BaseEstimator, ClassifierMixin):
    """Nearest class centroid of the standardised pooled features ``(N, P)``; probabilities
    ``softmax(sharpness / P * (z @ c - |c|^2 / 2))`` (the squared distance, less the term common to
    every class), which folds into one affine map ``table @ weights_ + bias_``."""

    def __init__(self, sharpness: float = 20.0, feature_blocks: tuple[str, ...] | None = None) -> None:
        self.sharpness = sharpness
        self.feature_blocks = feature_blocks

    def fit(self, X: Any, y: Any) -> "NearestCentroid":
        if not self.sharpness > 0:
            raise ValueError(f"centroid: sharpness must be > 0, got {self.sharpness!r}")
        table = pooled_features(X, self.feature_blocks, name="NearestCentroid: X").astype(np.float64)
        y = np.asarray(y)
        self.classes_ = np.unique(y)
        mu, sd = table.mean(0), table.std(0) + 1e-3
        cents = np.stack([((table[y == c] - mu) / sd).mean(0) for c in self.classes_])  # (C, P)
        scale = self.sharpness / table.shape[1]
        self.weights_ = (cents.T / sd[:, None] * scale).astype(np.float32)  # (P, C)
        self.bias_ = ((-0.5 * (cents ** 2).sum(1) - (mu / sd) @ cents.T) * scale).astype(np.float32)  # (C,)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """The Python path: landmarks ``(N, T, 75, 3)`` -> ``(N, C)`` probabilities."""
        return run_centroid(self, pooled_features(X, self.feature_blocks, name="NearestCentroid: X"))


def run_centroid(est: NearestCentroid, table: np.ndarray) -> np.ndarray:
    """Pooled table ``(N, P)`` -> probabilities ``(N, C)`` float32."""
    z = np.asarray(table, dtype=np.float32) @ est.weights_ + est.bias_
    e = np.exp(z - z.max(1, keepdims=True))
    return (e / e.sum(1, keepdims=True)).astype(np.float32)


def save_centroid(est: NearestCentroid, name: str) -> tuple[dict[str, Any], dict[str, bytes]]:
    fname = f"{name}.json"
    raw = json.dumps({"params": {"sharpness": est.sharpness, "feature_blocks": est.feature_blocks},
                      "classes": est.classes_.tolist(), "weights": est.weights_.tolist(), "bias": est.bias_.tolist()})
    return {"name": name, "kind": "centroid", "file": fname, "classes": est.classes_.tolist()}, {fname: raw.encode()}


def load_centroid(entry: dict[str, Any], files: dict[str, bytes], where: str) -> NearestCentroid:
    try:
        d = json.loads(files[entry["file"]])
        blocks = d["params"]["feature_blocks"]
        est = NearestCentroid(float(d["params"]["sharpness"]), None if blocks is None else tuple(blocks))
        est.classes_ = np.asarray(d["classes"])
        est.weights_, est.bias_ = np.asarray(d["weights"], np.float32), np.asarray(d["bias"], np.float32)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{where}/{entry['file']}: not a centroid model ({exc})") from None
    return est


def centroid_to_onnx(est: NearestCentroid, n_features: int) -> bytes:
    """``input (N, P)`` -> ``probabilities = Softmax(input @ W + b)``."""
    from onnx import TensorProto, checker, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["input", "W"], ["s"]), helper.make_node("Add", ["s", "b"], ["z"]),
         helper.make_node("Softmax", ["z"], ["probabilities"], axis=1)],
        "centroid", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, n_features])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, len(est.classes_)])],
        initializer=[numpy_helper.from_array(est.weights_, "W"), numpy_helper.from_array(est.bias_, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    checker.check_model(model)
    return model.SerializeToString()


@pytest.fixture(scope="module")
def centroid() -> str:
    register_model("centroid", supplied=("feature_blocks",),
                   space={"sharpness": {"type": "float", "low": 5.0, "high": 80.0, "log": True}})(NearestCentroid)
    register_kind(ModelKind("centroid", NearestCentroid, POOLED, save=save_centroid, load=load_centroid,
                            run=run_centroid, to_onnx=centroid_to_onnx))
    yield "centroid"
    MODELS.unregister("centroid")
    MODEL_KINDS.unregister("centroid")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory, centroid: str) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("centroid")
    path = save_npz(make_synthetic_dataset(n_classes=3, n_signers=5, clips_per_signer=4, seed=3, frames=(12, 18)), folder / "d.npz")
    cfg = folder / "c.yaml"
    cfg.write_text(yaml.safe_dump({
        "device": "cpu", "augment": [], "data": {"target_frames": 12},
        "ensemble": {"models": [centroid, "xgboost"], "n_folds": 2, "combiner": "logistic", "calibration": "none"},
        "xgboost": {"n_estimators": 6, "max_depth": 2, "learning_rate": 0.5, "max_bin": 32, "early_stopping_rounds": None},
        "centroid": {"sharpness": 20.0},  # the kind's own YAML section: its constructor's keyword arguments
    }))
    return path, cfg


def _ok(res: Any) -> None:
    assert res.exit_code == 0, res.output + (repr(res.exception) if res.exception else "")


def test_a_new_kind_trains_evaluates_exports_explains_and_tunes(centroid: str, data: tuple[Path, Path], tmp_path: Path) -> None:
    path, cfg = data
    run = tmp_path / "run"
    _ok(CliRunner().invoke(app, ["train", "--data", str(path), "--out", str(run), "--config", str(cfg),
                                 "--split", "random:0.3", "--set", "centroid.sharpness=30", "--no-track", "--quiet"]))
    manifest = json.loads((run / "manifest.json").read_text())
    entry = next(m for m in manifest["models"] if m["name"] == centroid)
    assert entry["kind"] == "centroid" and entry["file"] in manifest["files"]
    assert json.loads((run / entry["file"]).read_text())["params"]["sharpness"] == 30.0

    # the bundle loads the kind back by the manifest's kind, and the ensemble stacks it
    from signlang.models.bundle import load_bundle

    bundle = load_bundle(run)
    assert isinstance(bundle.models[centroid], NearestCentroid) and bundle.ensemble is not None

    # evaluate on the held-out part, through the predictor (the kind's runner): nearest centroid beats chance
    from signlang.inference.evaluate import evaluate_bundle

    report = evaluate_bundle(run, path)
    assert report["split"]["n_test"] > 0
    assert report["models"][centroid]["accuracy"] > 1 / 3 + 0.2, report["models"][centroid]

    # predict through the CLI: every clip answered, probabilities over the bundle's classes
    res = CliRunner().invoke(app, ["predict", str(path), "--model", str(run), "--json", "--backend", "torch"])
    _ok(res)
    lines = [json.loads(x) for x in res.stdout.splitlines() if x.startswith("{")]
    assert lines and all("error" not in x and abs(sum(x["probs"]) - 1) < 1e-3 for x in lines)

    # export to ONNX: parity against the torch backend passed (else no manifest), and the kind's graph
    # gives the numbers of its Python path (predict_proba on landmarks)
    from signlang.inference.export import export_bundle, random_landmarks
    from signlang.inference.onnx_backend import OnnxBackend
    from signlang.inference.plan import compute_features
    from signlang.training.pipeline import normalize

    onnx = export_bundle(run, tmp_path / "onnx")
    assert onnx["parity"]["max_abs_diff_all"] <= onnx["parity"]["tolerance"]
    assert onnx["models"][centroid]["kind"] == "centroid"
    assert onnx["models"][centroid]["inputs"][0]["source"] == "pooled_features"
    backend = OnnxBackend(tmp_path / "onnx")
    est = bundle.models[centroid]
    for X in (normalize(list(load_clips(path)[:6]), bundle.preprocessing), random_landmarks(4, 17, np.random.default_rng(0))):
        via_onnx = backend.run_base(centroid, compute_features(X, backend.plan))
        assert np.abs(via_onnx - est.predict_proba(X)).max() <= 1e-4

    # explain: occlusion runs the whole model (the kind included), on both backends; gradients need a network
    from signlang.explain.explainer import Explainer, GradientsUnavailable
    from signlang.inference.predictor import Predictor

    clip = load_clips(path)[0]
    for name in ("torch", "onnx"):
        predictor = Predictor(run, backend="torch") if name == "torch" else Predictor(tmp_path / "onnx", backend="onnx")
        exp = Explainer.from_predictor(predictor).explain(clip)
        assert exp.frame_importance.shape == (clip.shape[0],) and np.isfinite(exp.landmark_importance).all()
        assert exp.frame_importance.sum() == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(GradientsUnavailable, match="has none"):
        Explainer.from_predictor(Predictor(run, backend="torch"), frame_method="gradcam")

    # tune (2 trials): the registration's space is searched, the kind's fit signature used
    tune_dir = tmp_path / "tune"
    _ok(CliRunner().invoke(app, ["tune", "--data", str(path), "--out", str(tune_dir), "--config", str(cfg), "--model", centroid,
                                 "--space", "cpu", "--trials", "2", "--split", "random:0.3", "--no-track", "--quiet"]))
    tuned = json.loads((tune_dir / "tune_report.json").read_text())
    assert "centroid.sharpness" in tuned["best_params"] and tuned["states"].get("COMPLETE") == 2
    assert 5.0 <= yaml.safe_load((tune_dir / "best.yaml").read_text())["centroid"]["sharpness"] <= 80.0


def load_clips(path: Path) -> list[np.ndarray]:
    from signlang.datasets.loaders import load_dataset

    return list(load_dataset(path).landmarks)


def test_a_kind_that_is_not_registered_is_named(centroid: str) -> None:
    """An estimator of no registered kind cannot be saved; the error names it and the known kinds."""
    from signlang.models.bundle import save_bundle

    class Unknown(NearestCentroid):
        pass

    class Stranger(BaseEstimator):
        classes_ = np.arange(2)

    with pytest.raises(TypeError, match=r"Stranger is no registered model kind.*centroid \(NearestCentroid\)"):
        save_bundle(Path("/nonexistent/never-written"), Stranger(), classes=["a", "b"], preprocessing={})
    # a subclass runs as its parent's kind (looked up along the class hierarchy)
    from signlang.models.registry import kind_for

    assert kind_for(Unknown()).name == "centroid"
    with pytest.raises(ValueError, match="already is model kind 'centroid'"):
        register_kind(ModelKind("centroid2", NearestCentroid, POOLED, save=save_centroid, load=load_centroid,
                                run=run_centroid, to_onnx=centroid_to_onnx))
