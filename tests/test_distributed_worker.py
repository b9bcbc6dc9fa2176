"""The DDP worker of ``signlang train --nproc N`` in this process (world size 1, no torchrun), a gloo
process group of one rank on a free loopback port, torchrun's failure report, and the helpers. The
two-rank runs are in test_ddp.py (subprocesses)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import torch

from signlang.training import distributed as ddp

TORCHRUN_ENV = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID")


@pytest.fixture()
def single_process(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in TORCHRUN_ENV:
        monkeypatch.delenv(name, raising=False)


def test_init_distributed_without_torchrun_is_one_cpu_process(single_process: None) -> None:
    ctx = ddp.init_distributed("cpu")
    assert ctx == ddp.DistContext(rank=0, world_size=1, local_rank=0, device="cpu", backend=None) and ctx.is_main
    assert not ddp.in_torchrun()
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            ddp.init_distributed("cuda")


def test_in_torchrun_reads_the_environment(single_process: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert ddp.in_torchrun()
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "x")
    assert ddp.in_torchrun()


def test_cleanup_leaves_a_gloo_group(single_process: None) -> None:
    import torch.distributed as dist

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    assert dist.is_initialized()
    ddp.cleanup_distributed()
    assert not dist.is_initialized()
    ddp.cleanup_distributed()  # a no-op without a group


def test_state_hash_tells_weights_apart() -> None:
    torch.manual_seed(0)
    a = torch.nn.Linear(3, 2)
    b = torch.nn.Linear(3, 2)
    b.load_state_dict(a.state_dict())
    assert ddp.state_hash(a) == ddp.state_hash(b) and len(ddp.state_hash(a)) == 64
    with torch.no_grad():
        b.bias[0] += 1e-6
    assert ddp.state_hash(a) != ddp.state_hash(b)


def test_check_network_names_the_model() -> None:
    ddp.check_network("transformer")
    with pytest.raises(ValueError, match="--model 'xgboost': distributed training trains one network"):
        ddp.check_network("xgboost")
    with pytest.raises(ValueError, match="'nope'"):
        ddp.check_network("nope")


TINY = {
    "seed": 0,
    "device": "cpu",
    "data": {"target_frames": 12, "smooth_window": 5, "smooth_order": 2, "max_gap": 4},
    "augment": [],
    "transformer": {"d_model": 16, "n_heads": 2, "n_layers": 1, "dim_ff": 32, "dropout": 0.0, "max_len": 16},
    "bilstm": {"hidden": 8},
    "optim": {"epochs": 2, "batch_size": 8, "lr": 3e-3, "warmup_frac": 0.0, "patience": 10},
}


@pytest.fixture()
def tiny_npz(tmp_path: Path) -> Path:
    from signlang.datasets.loaders import save_npz
    from signlang.datasets.synthetic import make_synthetic_dataset

    clips = make_synthetic_dataset(n_classes=3, n_signers=4, clips_per_signer=2, seed=0, frames=(12, 16))
    return save_npz(clips, tmp_path / "tiny.npz")


def test_run_worker_single_process_writes_the_run(single_process: None, tiny_npz: Path, tmp_path: Path) -> None:
    from signlang.models.bundle import load_bundle
    from signlang.training.config import config_from_dict

    torch.set_num_threads(1)
    out = tmp_path / "run"
    summary = ddp.run_worker(tiny_npz, out, config_from_dict(TINY), split="random:0.25", model="transformer", max_steps=3,
                             rank_hashes=True)
    assert summary["world_size"] == 1 and summary["rank"] == 0 and summary["model"] == "transformer"
    assert summary["optimizer_steps"] == 3 and summary["stop_reason"] == "max_steps"
    assert summary["n_fit"] + summary["n_val"] + summary["n_test"] == 24 and summary["n_test"] > 0 and summary["n_val"] > 0
    assert 0.0 <= summary["test_accuracy"] <= 1.0
    assert json.loads((out / "summary.json").read_text())["weights_sha256"] == summary["weights_sha256"]
    assert (out / "rank0.sha256").read_text().strip() == summary["weights_sha256"]
    assert (out / "config.yaml").is_file() and (out / "checkpoints" / "last.safetensors").is_file()
    assert len(load_bundle(out / "bundle").classes) == 3


def test_run_worker_without_a_split_trains_on_every_clip(single_process: None, tiny_npz: Path, tmp_path: Path) -> None:
    from signlang.training.config import config_from_dict

    torch.set_num_threads(1)
    summary = ddp.run_worker(tiny_npz, tmp_path / "all", config_from_dict(TINY), split=None, model="bilstm", max_steps=2)
    assert summary["n_test"] == 0 and summary["n_fit"] + summary["n_val"] == 24 and "test_accuracy" not in summary
    assert summary["optimizer_steps"] == 2 and not (tmp_path / "all" / "rank0.sha256").exists()


def test_run_worker_refuses_a_non_network_before_writing(single_process: None, tiny_npz: Path, tmp_path: Path) -> None:
    from signlang.training.config import config_from_dict

    with pytest.raises(ValueError, match="one network"):
        ddp.run_worker(tiny_npz, tmp_path / "x", config_from_dict(TINY), split=None, model="xgboost")
    assert not (tmp_path / "x").exists()


def test_launch_reports_a_failed_rank(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    with pytest.raises(RuntimeError, match="distributed training failed"):
        ddp.launch(1, ["no-such-command"])
