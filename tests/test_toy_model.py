"""A model is one file plus one YAML section: a toy network defined in this test file alone is
registered, then trained, evaluated, exported to ONNX (parity-checked), explained and tuned through
the same commands and APIs as the built-in networks, with no edit under ``src/``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch import nn
from typer.testing import CliRunner

from signlang.cli import app
from signlang.datasets.loaders import save_npz
from signlang.datasets.synthetic import make_synthetic_dataset
from signlang.models.registry import MODELS, CamSpec, register_model

torch.set_num_threads(1)


class ToyNet(nn.Module):
    """Per-frame MLP, mean over the real frames, linear head: ``(B, T, F), (B, T) -> (B, C)``."""

    def __init__(self, n_features: int, n_classes: int, hidden: int = 32, dropout: float = 0.0) -> None:
        super().__init__()
        if hidden < 1:
            raise ValueError(f"toy: hidden must be >= 1, got {hidden}")
        self.config = dict(n_features=int(n_features), n_classes=int(n_classes), hidden=int(hidden), dropout=float(dropout))
        self.frame = nn.Sequential(nn.Linear(n_features, hidden), nn.GELU())
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, n_classes))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.frame(x)  # (B, T, H)
        w = mask.to(h.dtype)[..., None]
        return self.head((h * w).sum(1) / w.sum(1).clamp(min=1.0))


@pytest.fixture(scope="module")
def toy() -> str:
    register_model(
        "toy",
        space={"hidden": {"type": "categorical", "choices": [8, 16]}},
        cam=CamSpec(layer=lambda m: m.frame, read="output", weighting="channel"),
    )(ToyNet)
    yield "toy"
    MODELS.unregister("toy")


@pytest.fixture(scope="module")
def toy_data(tmp_path_factory: pytest.TempPathFactory, toy: str) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("toy")
    clips = make_synthetic_dataset(n_classes=3, n_signers=5, clips_per_signer=3, seed=2, frames=(12, 18))
    data = save_npz(clips, folder / "toy.npz")
    cfg = folder / "toy.yaml"
    cfg.write_text(yaml.safe_dump({
        "device": "cpu", "augment": [], "data": {"target_frames": 12},
        "optim": {"epochs": 3, "batch_size": 8, "lr": 3e-3, "warmup_frac": 0.0, "patience": 5},
        "toy": {"hidden": 16},  # the model's own YAML section: its constructor's keyword arguments
    }))
    return data, cfg


def _ok(res) -> None:
    assert res.exit_code == 0, res.output + (repr(res.exception) if res.exception else "")


def test_toy_model_trains_evaluates_exports_explains_and_tunes(toy: str, toy_data: tuple[Path, Path], tmp_path: Path) -> None:
    data, cfg = toy_data
    run = tmp_path / "run"
    # the YAML section is validated against the constructor: a typo names the key and the closest one
    res = CliRunner().invoke(app, ["train", "--data", str(data), "--out", str(run), "--config", str(cfg), "--model", toy,
                                   "--set", "toy.hiden=8", "--no-track", "--quiet"])
    assert res.exit_code == 2 and "toy.hiden" in res.output and "toy.hidden" in res.output.replace("toy.hiden", "")

    # train through the CLI (--model and --set read the registry)
    res = CliRunner().invoke(app, ["train", "--data", str(data), "--out", str(run), "--config", str(cfg), "--model", toy,
                                   "--split", "random:0.3", "--set", "toy.hidden=12", "--no-track", "--quiet"])
    _ok(res)
    manifest = json.loads((run / "manifest.json").read_text())
    entry = next(m for m in manifest["models"] if m.get("arch") == toy)
    assert entry["config"]["hidden"] == 12

    # evaluate on the held-out part
    from signlang.inference.evaluate import evaluate_bundle

    report = evaluate_bundle(run, data)
    assert report["split"]["n_test"] > 0 and 0.0 <= report["models"][toy]["accuracy"] <= 1.0

    # export to ONNX: the parity check against PyTorch passed (else no manifest is written)
    from signlang.inference.export import export_bundle

    onnx = export_bundle(run, tmp_path / "onnx")
    assert onnx["parity"]["max_abs_diff_all"] <= onnx["parity"]["tolerance"]

    # explain: Grad-CAM reads the layer the registration declared
    from signlang.explain.explainer import Explainer
    from signlang.inference.predictor import Predictor

    predictor = Predictor(run, backend="torch")
    clip = make_synthetic_dataset(n_classes=3, n_signers=5, clips_per_signer=3, seed=2, frames=(12, 18)).landmarks[0]
    exp = Explainer.from_predictor(predictor, ig_steps=4).explain(clip)
    assert exp.frame_importance.shape == (clip.shape[0],) and np.isfinite(exp.landmark_importance).all()
    assert exp.frame_importance.sum() == pytest.approx(1.0, abs=1e-5) and set(exp.weights) == {toy}

    # tune (2 trials): the space file names no toy.* key, so the registration's space is searched
    tune_dir = tmp_path / "tune"
    res = CliRunner().invoke(app, ["tune", "--data", str(data), "--out", str(tune_dir), "--config", str(cfg), "--model", toy,
                                   "--space", "cpu", "--trials", "2", "--split", "random:0.3", "--no-track", "--quiet"])
    _ok(res)
    tuned = json.loads((tune_dir / "tune_report.json").read_text())
    assert "toy.hidden" in tuned["best_params"] and sum(tuned["states"].values()) >= 2
    best = yaml.safe_load((tune_dir / "best.yaml").read_text())
    assert best["toy"]["hidden"] in (8, 16)


def test_unknown_model_names_the_closest(toy: str, toy_data: tuple[Path, Path], tmp_path: Path) -> None:
    data, cfg = toy_data
    res = CliRunner().invoke(app, ["train", "--data", str(data), "--out", str(tmp_path / "r"), "--model", "toyy", "--no-track"])
    assert res.exit_code == 2 and "did you mean 'toy'" in res.output
