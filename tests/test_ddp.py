"""DDP from the main CLI (``signlang train --nproc 2`` launches torchrun): two gloo ranks end with
identical weights and the loss goes down; the ``-m signlang.train`` shim still works."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from signlang.datasets.loaders import save_npz
from signlang.datasets.synthetic import make_synthetic_dataset

TINY = {
    "seed": 0,
    "device": "cpu",
    "data": {"target_frames": 12, "smooth_window": 5, "smooth_order": 2, "max_gap": 4},
    "augment": [],
    "transformer": {"d_model": 16, "n_heads": 2, "n_layers": 1, "dim_ff": 32, "dropout": 0.0, "max_len": 16},
    "optim": {"epochs": 4, "batch_size": 8, "lr": 3e-3, "warmup_frac": 0.0, "label_smoothing": 0.0, "patience": 10},
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


def test_torchrun_two_ranks_identical_weights(tiny_data: tuple[Path, Path], tmp_path: Path) -> None:
    data, cfg = tiny_data
    out = tmp_path / "run"
    cmd = [
        sys.executable, "-m", "signlang", "train", "--nproc", "2", "--data", str(data), "--out", str(out), "--config", str(cfg),
        "--split", "random:0.2", "--model", "transformer", "--max-steps", "6", "--rank-hashes", "--no-track",
    ]
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    h0 = (out / "rank0.sha256").read_text().strip()
    h1 = (out / "rank1.sha256").read_text().strip()
    assert len(h0) == 64 and h0 == h1  # DDP kept both replicas identical
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["optimizer_steps"] == 6 and summary["stop_reason"] == "max_steps"
    losses = [h["train_loss"] for h in summary["history"]]
    assert len(losses) >= 2 and losses[-1] < losses[0]
    assert (out / "checkpoints" / "last.safetensors").exists() and (out / "bundle" / "manifest.json").exists()
    assert not list(out.glob("rank*.json"))  # only rank 0 wrote the run's files


def test_single_process_entry_point(tiny_data: tuple[Path, Path], tmp_path: Path) -> None:
    data, cfg = tiny_data
    out = tmp_path / "single"
    proc = subprocess.run(
        [sys.executable, "-m", "signlang.train", "--data", str(data), "--out", str(out), "--config", str(cfg),
         "--model", "bilstm", "--split", "random:0.2", "--set", "optim.epochs=2", "--set", "bilstm.hidden=8"],
        env=_env(), capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 1 and len(summary["history"]) == 2 and 0.0 <= summary["test_accuracy"] <= 1.0
    assert yaml.safe_load((out / "config.yaml").read_text())["bilstm"]["hidden"] == 8


def test_bad_ddp_arguments_are_named(tiny_data: tuple[Path, Path], tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from signlang.cli import app

    data, cfg = tiny_data
    base = ["train", "--data", str(data), "--out", str(tmp_path / "x"), "--config", str(cfg), "--nproc", "2"]
    res = CliRunner().invoke(app, [*base, "--set", "optim.lrr=1"])
    assert res.exit_code == 2 and "optim.lrr" in res.output and "optim.lr" in res.output.replace("optim.lrr", "")
    res = CliRunner().invoke(app, [*base, "--model", "xgboost"])
    assert res.exit_code == 2 and "one network" in res.output
    assert not (tmp_path / "x").exists()
