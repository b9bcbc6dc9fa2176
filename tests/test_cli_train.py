"""The train / evaluate / predict / demo commands on a tiny synthetic data set (seconds, tiny nets)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from signlang.cli import app
from signlang.datasets.formats import load_dataset
from signlang.datasets.loaders import save_npz
from signlang.datasets.synthetic import make_synthetic_dataset
from signlang.models.bundle import PICKLE_SUFFIXES

torch.set_num_threads(1)

TINY = [
    "augment=[]", "data.target_frames=12", "transformer.max_len=16", "transformer.d_model=8", "transformer.n_heads=2",
    "transformer.n_layers=1", "transformer.dim_ff=16", "bilstm.hidden=8", "bilstm.layers=1", "xgboost.n_estimators=4",
    "xgboost.max_depth=2", "optim.epochs=1", "optim.batch_size=16", "ensemble.n_folds=2",
]
"""--set overrides that make the whole ensemble train in a few seconds."""


def _sets(items: list[str]) -> list[str]:
    return [a for item in items for a in ("--set", item)]


@pytest.fixture(scope="module")
def tiny_npz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    clips = make_synthetic_dataset(n_classes=3, n_signers=4, clips_per_signer=3, seed=1, frames=(12, 18))
    return save_npz(clips, tmp_path_factory.mktemp("data") / "tiny.npz")


@pytest.fixture(scope="module")
def run_dir(tiny_npz: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "run"
    res = CliRunner().invoke(app, ["train", "--data", str(tiny_npz), "--out", str(out), "--config", "cpu", "--no-track",
                                   "--quiet", "--seed", "3", "--split", "blocked:0.2", *_sets(TINY)])
    assert res.exit_code == 0, res.output
    return out


def test_train_writes_a_complete_pickle_free_bundle(run_dir: Path) -> None:
    names = {p.name for p in run_dir.iterdir()}
    assert {"manifest.json", "report.json", "transformer.safetensors", "bilstm.safetensors", "xgboost.json", "meta.json"} <= names
    assert not [n for n in names if Path(n).suffix.lower() in PICKLE_SUFFIXES]
    for p in run_dir.rglob("*"):  # no pickle protocol header anywhere
        if p.is_file():
            assert not p.read_bytes()[:2] == b"\x80\x04", p
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["predictor"] == "stacking"
    assert len(manifest["classes"]) == 3 and all(c.startswith("synthetic-") for c in manifest["classes"])
    assert manifest["preprocessing"]["normalize"]["target_frames"] == 12
    assert {"torch", "xgboost", "numpy", "signlang"} <= set(manifest["versions"])
    assert manifest["extra"]["split"]["spec"] == "blocked:0.2" and manifest["extra"]["split"]["seed"] == 3
    for fname, digest in manifest["files"].items():
        assert hashlib.sha256((run_dir / fname).read_bytes()).hexdigest() == digest
    report = json.loads((run_dir / "report.json").read_text())
    assert set(report["validation"]) == {"transformer", "bilstm", "xgboost", "ensemble"}
    assert report["config"]["optim"]["epochs"] == 1
    sp = report["split"]
    assert sp["n_fit"] + sp["n_validation"] == sp["n_train"] and sp["n_test_held_out"] > 0


def test_evaluate_writes_report_and_confusion_matrix(run_dir: Path, tiny_npz: Path, tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["evaluate", "--model", str(run_dir), "--data", str(tiny_npz), "--out", str(tmp_path), "--quiet"])
    assert res.exit_code == 0, res.output
    assert "ensemble" in res.output and "macro-F1" in res.output
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["split"]["spec"] == "blocked:0.2" and report["split"]["from_bundle"]
    assert set(report["models"]) == {"transformer", "bilstm", "xgboost", "ensemble"}
    for res_m in report["models"].values():
        assert 0.0 <= res_m["accuracy"] <= 1.0 and 0.0 <= res_m["macro_f1"] <= 1.0
        assert res_m["top5_accuracy"] == 1.0  # 3 classes: the true one is always in the top 5
        assert set(res_m["per_class"]) == set(json.loads((run_dir / "manifest.json").read_text())["classes"])
        assert {"precision", "recall", "f1", "support"} == set(next(iter(res_m["per_class"].values())))
        assert np.asarray(res_m["confusion_matrix"]).sum() == report["split"]["n_test"]
    png = (tmp_path / "confusion_matrix.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_predict_json_lines_in_class_order_and_bad_items_reported(run_dir: Path, tiny_npz: Path, tmp_path: Path) -> None:
    clips = load_dataset(tiny_npz)
    good = tmp_path / "clip.npy"
    np.save(good, clips.landmarks[0])
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((4, 7), dtype=np.float32))
    res = CliRunner().invoke(app, ["predict", "--model", str(run_dir), str(good), str(bad), str(tiny_npz), "--json", "--top-k", "2"])
    assert res.exit_code == 1  # one bad item: reported, the rest still predicted
    lines = [json.loads(line) for line in res.stdout.strip().splitlines()]
    assert [r["index"] for r in lines] == list(range(2 + len(clips)))
    classes = json.loads((run_dir / "manifest.json").read_text())["classes"]
    assert "error" in lines[1] and "bad.npy" in lines[1]["error"] and "(4, 7)" in lines[1]["error"]
    for r in [lines[0], *lines[2:]]:
        probs = np.asarray(r["probs"])
        assert probs.shape == (len(classes),) and abs(probs.sum() - 1.0) < 1e-4
        assert len(r["top_k"]) == 2 and r["top_k"][0]["sign"] == classes[int(probs.argmax())]
        assert r["top_k"][0]["prob"] >= r["top_k"][1]["prob"]
    assert lines[0]["probs"] == lines[2]["probs"]  # the same clip alone and inside the data set


def test_mistyped_set_key_fails_naming_it(tiny_npz: Path, tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["train", "--data", str(tiny_npz), "--out", str(tmp_path / "r"), "--config", "cpu",
                                   "--no-track", "--set", "optim.lrr=0.1"])
    assert res.exit_code == 2
    assert "optim.lrr" in res.output and "optim.lr" in res.output.replace("optim.lrr", "")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--set", "optim.epochs"], "KEY=VALUE"),
        (["--set", "optim.epochs=two"], "optim.epochs"),
        (["--model", "resnet"], "resnet"),
        (["--split", "bogus:1"], "bogus"),
        (["--config", "nope.yaml"], "nope.yaml"),
    ],
)
def test_bad_train_arguments_give_clear_errors(tiny_npz: Path, tmp_path: Path, args: list[str], needle: str) -> None:
    res = CliRunner().invoke(app, ["train", "--data", str(tiny_npz), "--out", str(tmp_path / "r"), "--no-track", *args])
    assert res.exit_code == 2 and needle in res.output


def test_single_model_bundle_and_tracking(tiny_npz: Path, tmp_path: Path) -> None:
    out = tmp_path / "xgb"
    res = CliRunner().invoke(app, ["train", "--data", str(tiny_npz), "--out", str(out), "--config", "cpu", "--model", "xgboost",
                                   "--split", "signer", "--quiet", *_sets(TINY)])
    assert res.exit_code == 0, res.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["predictor"] == "single" and [m["name"] for m in manifest["models"]] == ["xgboost"]
    assert manifest["extra"]["split"]["spec"] == "signer"
    assert "mlflow: run" in res.output and (out / "mlflow" / "mlflow.db").is_file()
