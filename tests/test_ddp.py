"""One training path for 1 or N processes: ``signlang train --nproc 2`` (torchrun, gloo) writes the
bundle ``signlang train`` writes (every configured model, report.json, the same files), the networks'
weights identical on both ranks, and ``predict`` loads it; ``torchrun -m signlang train`` is the
entry point of every rank."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from signlang.cli import app
from signlang.datasets.loaders import save_npz
from signlang.datasets.synthetic import make_synthetic_dataset

TINY = {
    "seed": 0,
    "device": "cpu",
    "data": {"target_frames": 12, "smooth_window": 5, "smooth_order": 2, "max_gap": 4},
    "augment": [],
    "transformer": {"d_model": 16, "n_heads": 2, "n_layers": 1, "dim_ff": 32, "dropout": 0.0, "max_len": 16},
    "bilstm": {"hidden": 8, "layers": 1},
    "xgboost": {"n_estimators": 4, "max_depth": 2, "learning_rate": 0.5, "max_bin": 16, "early_stopping_rounds": None},
    "ensemble": {"models": ["transformer", "xgboost"], "n_folds": 2, "combiner": "logistic"},
    "optim": {"epochs": 3, "batch_size": 8, "lr": 3e-3, "warmup_frac": 0.0, "label_smoothing": 0.0, "patience": 10},
    "tracking": {"enabled": False},
}


@pytest.fixture()
def tiny_data(tmp_path: Path) -> tuple[Path, Path]:
    clips = make_synthetic_dataset(n_classes=3, n_signers=4, clips_per_signer=4, seed=0, frames=(12, 16))
    data = save_npz(clips, tmp_path / "tiny.npz")
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(TINY))
    return data, cfg


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return env


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.slow
def test_nproc_2_writes_the_bundle_train_writes(tiny_data: tuple[Path, Path], tmp_path: Path) -> None:
    data, cfg = tiny_data
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "signlang", "train", "--nproc", "2", "--data", str(data), "--out", str(out), "--config", str(cfg),
           "--split", "random:0.2", "--no-track", "--quiet"]
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "2 processes (gloo)" in proc.stdout and proc.stdout.count("bundle: ") == 1  # rank 0 alone reports

    report = json.loads((out / "report.json").read_text())
    assert report["models"] == ["transformer", "xgboost"] and report["stacked"]
    dist = report["distributed"]
    assert dist["world_size"] == 2 and dist["backend"] == "gloo"
    hashes = dist["weights_sha256"]["transformer"]
    assert len(hashes) == 2 and hashes[0] == hashes[1] and len(hashes[0]) == 64  # DDP kept both replicas identical
    losses = [h["train_loss"] for h in report["history"]["transformer"]]
    assert len(losses) == 3 and losses[-1] < losses[0]
    assert set(report["validation"]) == {"transformer", "xgboost", "ensemble"}

    # the same folder as one process writes
    single = tmp_path / "single"
    res = CliRunner().invoke(app, ["train", "--data", str(data), "--out", str(single), "--config", str(cfg), "--split", "random:0.2",
                                   "--no-track", "--quiet"])
    assert res.exit_code == 0, res.output
    assert _files(out) == _files(single) and not list(tmp_path.glob(".signlang-launch-*"))
    assert json.loads((single / "report.json").read_text())["distributed"]["world_size"] == 1
    manifest = json.loads((out / "manifest.json").read_text())
    assert [m["name"] for m in manifest["models"]] == ["transformer", "xgboost"] and manifest["meta"]["kind"] == "linear_combiner"

    # predict loads it
    res = CliRunner().invoke(app, ["predict", str(data), "--model", str(out), "--json", "--backend", "torch"])
    assert res.exit_code == 0, res.output
    lines = [json.loads(x) for x in res.stdout.splitlines() if x.startswith("{")]
    assert len(lines) == 48 and all("error" not in x for x in lines)


def test_torchrun_runs_the_train_command(tiny_data: tuple[Path, Path], tmp_path: Path) -> None:
    """``torchrun ... -m signlang train`` (what --nproc starts, and what each node of a multi-node run starts)."""
    data, cfg = tiny_data
    out = tmp_path / "one"
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "1", "-m", "signlang", "train",
         "--data", str(data), "--out", str(out), "--config", str(cfg), "--model", "bilstm", "--split", "random:0.2",
         "--set", "optim.epochs=2", "--no-track", "--quiet"],
        env=_env(), capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert report["distributed"]["world_size"] == 1 and len(report["history"]["bilstm"]) == 2
    assert report["config"]["optim"]["epochs"] == 2 and (out / "bilstm.safetensors").is_file()


def test_bad_nproc_arguments_are_named_before_any_process_starts(tiny_data: tuple[Path, Path], tmp_path: Path) -> None:
    data, cfg = tiny_data
    base = ["train", "--data", str(data), "--out", str(tmp_path / "x"), "--config", str(cfg), "--nproc", "2"]
    res = CliRunner().invoke(app, [*base, "--set", "optim.lrr=1"])
    assert res.exit_code == 2 and "optim.lrr" in res.output and "optim.lr" in res.output.replace("optim.lrr", "")
    res = CliRunner().invoke(app, [*base, "--model", "xgbost"])
    assert res.exit_code == 2 and "did you mean 'xgboost'" in res.output
    assert not (tmp_path / "x").exists()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("x")
    res = CliRunner().invoke(app, ["train", "--data", str(data), "--out", str(tmp_path / "full"), "--config", str(cfg), "--nproc", "2"])
    assert res.exit_code == 2 and "not empty" in res.output and "--overwrite" in res.output
    res = CliRunner().invoke(app, [*base, "--nproc", "0"])
    assert res.exit_code == 2 and "--nproc must be >= 1" in res.output
