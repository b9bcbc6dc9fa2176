"""Training pipeline, metrics, baselines, the accuracy benchmark and the demo (tiny sizes)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from bundle_fixtures import TINY_TRAIN_OVERRIDES

from signlang.cli._common import parse_overrides
from signlang.cli.train import resolve_config
from signlang.datasets.clip import ClipSet
from signlang.datasets.splits import split_indices
from signlang.datasets.synthetic import make_synthetic_dataset
from signlang.models.registry import MODELS, register_model
from signlang.training import pipeline
from signlang.bench.baselines import MiniRocketBaseline, PooledLogisticBaseline, pooled_statistics, resample_flat
from signlang.training.config import load_config, merge_overrides, shipped_config_path
from signlang.inference.evaluate import evaluate_bundle, plot_confusion_matrix
from signlang.models.evaluation import (
    classification_report,
    confusion_matrix,
    labels_accuracy_f1,
    top_k_accuracy,
)

torch.set_num_threads(1)

TINY = TINY_TRAIN_OVERRIDES


@pytest.fixture(scope="module")
def tiny_cfg():
    return merge_overrides(load_config(shipped_config_path("cpu")), TINY)


@pytest.fixture(scope="module")
def tiny_clips() -> ClipSet:
    return make_synthetic_dataset(n_classes=3, n_signers=5, clips_per_signer=2, seed=2, frames=(12, 18))


# --- metrics ---------------------------------------------------------------------------------
def test_classification_report_by_hand() -> None:
    y = np.array([0, 0, 1, 2])
    proba = np.array([[0.8, 0.1, 0.1], [0.3, 0.6, 0.1], [0.2, 0.7, 0.1], [0.1, 0.2, 0.7]])  # predictions 0, 1, 1, 2
    r = classification_report(y, proba, ("a", "b", "c"), top_k=2)
    assert r["accuracy"] == pytest.approx(0.75)
    assert r["per_class"]["a"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "support": 2}
    assert r["per_class"]["b"]["precision"] == 0.5 and r["per_class"]["b"]["recall"] == 1.0
    assert r["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 1.0) / 3)
    assert r["top2_accuracy"] == 1.0
    assert r["confusion_matrix"] == [[1, 1, 0], [0, 1, 0], [0, 0, 1]]
    assert top_k_accuracy(y, proba, 1) == pytest.approx(0.75)
    assert labels_accuracy_f1(y, proba.argmax(1), 3) == {"accuracy": 0.75, "macro_f1": pytest.approx(r["macro_f1"])}


def test_metrics_reject_bad_input() -> None:
    with pytest.raises(ValueError, match="3 rows but y_true has 2"):
        classification_report(np.array([0, 1]), np.full((3, 2), 0.5), ("a", "b"))
    with pytest.raises(ValueError, match="labels must lie in 0..1"):
        classification_report(np.array([0, 5]), np.full((2, 2), 0.5), ("a", "b"))
    with pytest.raises(ValueError, match="NaN"):
        classification_report(np.array([0, 1]), np.array([[np.nan, 1.0], [0.5, 0.5]]), ("a", "b"))


def test_confusion_matrix_plot(tmp_path: Path) -> None:
    cm = confusion_matrix(np.array([0, 1, 1, 2]), np.array([0, 1, 2, 2]), 3)
    assert cm.tolist() == [[1, 0, 0], [0, 1, 1], [0, 0, 1]]
    plot_confusion_matrix(cm, ["one", "two", "a-rather-long-sign-name"], tmp_path / "cm.png")
    data = (tmp_path / "cm.png").read_bytes()
    assert data[:4] == b"\x89PNG" and len(data) > 3000
    with pytest.raises(ValueError, match="does not match 2 classes"):
        plot_confusion_matrix(cm, ["a", "b"], tmp_path / "x.png")


# --- baselines -------------------------------------------------------------------------------
def test_pooled_statistics_and_resampling() -> None:
    a = np.zeros((4, 75, 3), np.float32)
    a[:, 0, 0] = [1, 2, 3, 4]
    a[:, 33:54] = np.nan  # left hand missing -> 0 in the 258 layout
    b = np.ones((2, 75, 3), np.float32)
    feats = pooled_statistics([a, b])
    assert feats.shape == (2, 4 * 258) and np.isfinite(feats).all()
    assert feats[0, 0] == pytest.approx(2.5) and feats[0, 258 + 0] == pytest.approx(np.std([1, 2, 3, 4]))
    assert feats[0, 516] == 1 and feats[0, 774] == 4  # min and max of pose x of point 0
    assert feats[1, 0] == 1 and feats[1, 258] == 0  # the short clip is not diluted by padding
    r = resample_flat([a], 10)
    assert r.shape == (1, 258, 10) and r[0, 0, 0] == 1 and r[0, 0, -1] == pytest.approx(4)
    with pytest.raises(ValueError, match="at least 9"):
        resample_flat([a], 5)


def test_baselines_learn_synthetic_signs() -> None:
    clips = make_synthetic_dataset(n_classes=3, n_signers=4, clips_per_signer=3, seed=0, frames=(12, 16))
    train, test = split_indices(clips, "signer", seed=0)
    tr, te = [clips.landmarks[i] for i in train], [clips.landmarks[i] for i in test]
    lr = PooledLogisticBaseline().fit(tr, clips.y[train])
    assert labels_accuracy_f1(clips.y[test], lr.predict(te), 3)["accuracy"] >= 0.8
    mr = MiniRocketBaseline(n_kernels=84).fit(tr, clips.y[train])
    pred = mr.predict(te)
    assert pred.shape == (len(test),) and set(pred.tolist()) <= {0, 1, 2}


# --- the pipeline ----------------------------------------------------------------------------
def test_model_registry() -> None:
    assert {"transformer", "bilstm", "xgboost"} <= set(MODELS.names())
    with pytest.raises(ValueError, match="unknown model 'resnet'; known: bilstm, segmenter, transformer, xgboost"):
        pipeline.resolve_models("resnet", load_config(shipped_config_path("cpu")))
    with pytest.raises(ValueError, match="already registered"):
        register_model("xgboost")(type("Other", (), {"__init__": lambda self, seed=0: None}))


def test_train_never_sees_the_test_part(tiny_clips: ClipSet, tiny_cfg, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    real = pipeline.normalize

    def spy(clips, preprocessing):
        seen.extend(id(c) for c in clips)
        return real(clips, preprocessing)

    monkeypatch.setattr(pipeline, "normalize", spy)
    report = pipeline.train_bundle(tiny_clips, tmp_path / "b", tiny_cfg, split="signer", track=False, progress=False, seed=5)
    train_idx, test_idx = split_indices(tiny_clips, "signer", seed=5)
    test_ids = {id(tiny_clips.landmarks[i]) for i in test_idx}
    assert seen and not test_ids & set(seen)
    assert len(seen) == len(train_idx)  # fit + validation = the training part, each once
    sp = report["split"]
    assert sp["n_test_held_out"] == len(test_idx) and sp["spec"] == "signer" and sp["seed"] == 5
    assert set(report["validation_summary"]) == {"transformer", "bilstm", "xgboost", "ensemble"}


def test_evaluate_all_and_unknown_labels(tiny_clips: ClipSet, tiny_cfg, tmp_path: Path) -> None:
    pipeline.train_bundle(tiny_clips, tmp_path / "b", tiny_cfg, models="xgboost", split="random:0.3", track=False, progress=False)
    extra = ClipSet(landmarks=tiny_clips.landmarks[:4], y=np.array([0, 1, 2, 3]),
                    classes=(*tiny_clips.classes, "synthetic-never-seen"), clip_ids=[f"x{i}" for i in range(4)])
    rep = evaluate_bundle(tmp_path / "b", extra, "all", out_dir=tmp_path / "ev", allow_overlap=True)  # 2 trained clips
    assert rep["split"]["n_test"] == 3 and rep["primary"] == "xgboost"
    assert any("synthetic-never-seen" in n for n in rep["notes"])
    assert (tmp_path / "ev" / "confusion_matrix.png").stat().st_size > 0
    with pytest.raises(ValueError, match="no test clips"):
        evaluate_bundle(tmp_path / "b", extra.subset([3]), "all")


def test_config_resolution_and_overrides(tmp_path: Path) -> None:
    assert parse_overrides(["optim.lr=1e-4", "ensemble.models=[xgboost]", "xgboost.early_stopping_rounds=null"]) == {
        "optim.lr": 1e-4, "ensemble.models": ["xgboost"], "xgboost.early_stopping_rounds": None}
    cfg = resolve_config("cpu", ["optim.epochs=3"], seed=9)
    assert cfg.optim.epochs == 3 and cfg.seed == 9
    with pytest.raises(ValueError, match="no shipped config 'gpu'"):
        resolve_config("gpu", None, None)
    with pytest.raises(ValueError, match="did you mean 'optim.epochs'"):
        resolve_config("cpu", ["optim.epoch=3"], None)


# --- benchmark and demo ----------------------------------------------------------------------
def test_accuracy_benchmark_small(tiny_cfg, tmp_path: Path) -> None:
    from signlang.bench.accuracy import run_accuracy_benchmark, write_results

    clips = make_synthetic_dataset(n_classes=3, n_signers=3, clips_per_signer=4, seed=4, frames=(12, 16))
    result = run_accuracy_benchmark(clips, tiny_cfg, split="blocked:0.25", optimistic_split="random:0.25",
                                    baselines=("lr",), single_models=False, progress=False)
    models = [(r["model"], r["split"], bool(r.get("optimistic"))) for r in result["rows"]]
    assert models[0] == ("pooled-stats LR (baseline)", "blocked:0.25", False)
    assert ("ensemble (stacked)", "blocked:0.25", False) in models and ("ensemble (stacked)", "random:0.25", True) in models
    assert sum("inside the ensemble" in m for m, _, _ in models) == 3
    for r in result["rows"]:
        assert 0 <= r["accuracy"] <= 1 and r["infer_ms_per_clip"] > 0
    md, js = write_results(result, tmp_path / "acc.md")
    text = md.read_text()
    assert "| ensemble (stacked) | random:0.25 (optimistic) |" in text and json.loads(js.read_text())["setup"]["n_clips"] == 36


def test_demo_pieces_small(tmp_path: Path) -> None:
    from signlang.demo import DemoSize, run_demo

    size = DemoSize(n_classes=3, n_signers=5, clips_per_signer=2, frames=(12, 16))
    s = run_demo(tmp_path, size=size, overrides={k: v for k, v in TINY.items()}, progress=False)
    assert "SYNTHETIC" in s["data"] and s["split"]["spec"] == "signer"
    assert s["prediction"]["signer"] in s["test_signers"] and len(s["prediction"]["top_k"]) == 3
    assert set(s["test"]) == {"transformer", "bilstm", "xgboost", "ensemble"}
    for f in ("data", "report", "confusion_matrix"):
        assert Path(s["files"][f]).is_file()
    assert json.loads((tmp_path / "demo.json").read_text())["prediction"] == s["prediction"]


@pytest.mark.slow
def test_full_demo_under_three_minutes(tmp_path: Path) -> None:
    from signlang.demo import run_demo

    t0 = time.perf_counter()
    s = run_demo(tmp_path, progress=False)
    assert time.perf_counter() - t0 < 180
    assert s["test"]["ensemble"]["accuracy"] >= 0.8


def test_training_is_tracked_in_mlflow_with_per_epoch_curves(tiny_clips: ClipSet, tiny_cfg, tmp_path: Path) -> None:
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    cfg = merge_overrides(tiny_cfg, {"optim.epochs": 3, "optim.patience": 10})
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    report = pipeline.train_bundle(tiny_clips, tmp_path / "b", cfg, models="transformer", split="signer",
                                   tracking_uri=uri, progress=False)
    run = MlflowClient(tracking_uri=uri).get_run(report["tracking"]["run_id"])
    assert run.data.params["split"] == "signer"
    curve = MlflowClient(tracking_uri=uri).get_metric_history(run.info.run_id, "transformer_train_loss")
    assert [m.step for m in curve] == [1, 2, 3]
    assert len(report["history"]["transformer"]) == 3
