"""The rank-aware training path in this process (world size 1, no torchrun), a gloo process group of
one rank on a free loopback port, torchrun's failure report, and the helpers. The two-rank runs are
in test_ddp.py (subprocesses)."""

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


TINY = {
    "seed": 0,
    "device": "cpu",
    "data": {"target_frames": 12, "smooth_window": 5, "smooth_order": 2, "max_gap": 4},
    "augment": [],
    "transformer": {"d_model": 16, "n_heads": 2, "n_layers": 1, "dim_ff": 32, "dropout": 0.0, "max_len": 16},
    "optim": {"epochs": 2, "batch_size": 8, "lr": 3e-3, "warmup_frac": 0.0, "patience": 10},
}


@pytest.fixture()
def tiny_npz(tmp_path: Path) -> Path:
    from signlang.datasets.loaders import save_npz
    from signlang.datasets.synthetic import make_synthetic_dataset

    clips = make_synthetic_dataset(n_classes=3, n_signers=4, clips_per_signer=2, seed=0, frames=(12, 16))
    return save_npz(clips, tmp_path / "tiny.npz")


def _gloo_group_of_one() -> None:
    import torch.distributed as dist

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)


def test_process_group_without_torchrun_is_one_process(single_process: None) -> None:
    import torch.distributed as dist

    with ddp.process_group("cpu") as ctx:
        assert ctx.world_size == 1 and ctx.is_main and not dist.is_initialized()
        assert ddp.gather({"a": 1}) == [{"a": 1}]
    # a group the caller joined stays joined
    _gloo_group_of_one()
    try:
        with ddp.process_group("cpu"):
            assert ddp.gather(3) == [3]
        assert dist.is_initialized()
    finally:
        ddp.cleanup_distributed()


def test_init_distributed_names_a_bad_rank(single_process: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(ValueError, match=r"RANK=2 must be in \[0, WORLD_SIZE=2\)"):
        ddp.init_distributed("cpu")


def test_train_bundle_in_one_process_records_its_rank_and_weights(single_process: None, tiny_npz: Path, tmp_path: Path) -> None:
    from signlang.models.bundle import load_bundle
    from signlang.training.config import config_from_dict
    from signlang.training.pipeline import train_bundle

    torch.set_num_threads(1)
    out = tmp_path / "run"
    report = train_bundle(tiny_npz, out, config_from_dict(TINY), split="random:0.25", models="transformer", track=False,
                          progress=False)
    dist = report["distributed"]
    assert dist["world_size"] == 1 and dist["backend"] is None
    bundle = load_bundle(out)
    assert dist["weights_sha256"] == {"transformer": [ddp.state_hash(bundle.model.module_)]}
    assert json.loads((out / "report.json").read_text())["distributed"] == dist
    assert len(report["history"]["transformer"]) == 2 and len(bundle.classes) == 3


def test_a_rank_skips_the_models_another_rank_fits() -> None:
    """``StackingEnsemble.fit(fit_here=...)``: what a rank > 0 does with the models rank 0 alone fits."""
    import numpy as np
    from sklearn.utils.validation import check_is_fitted

    from signlang.models.ensemble import StackingEnsemble
    from signlang.models.trees import XGBoostClassifier

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 5)).astype(np.float32), np.repeat([0, 1], 20)
    here, away = XGBoostClassifier(n_estimators=3, n_jobs=1), XGBoostClassifier(n_estimators=3, n_jobs=1)
    ens = StackingEnsemble([("here", here), ("away", away)], meta_estimator=XGBoostClassifier(n_estimators=3, n_jobs=1), n_folds=2)
    ens.fit(X, y, fit_here=lambda est: est is here)
    assert ens.partial_ and not hasattr(ens, "meta_")
    assert np.isnan(ens.oof_proba_[:, 2:]).all() and np.isfinite(ens.oof_proba_[:, :2]).all()
    fitted = dict(ens.estimators_)
    check_is_fitted(fitted["here"], "booster_")
    assert not hasattr(fitted["away"], "booster_")
    full = StackingEnsemble([("here", here), ("away", away)], meta_estimator=XGBoostClassifier(n_estimators=3, n_jobs=1), n_folds=2)
    assert not full.fit(X, y).partial_ and full.predict_proba(X).shape == (40, 2)


def test_launch_reports_a_failed_rank(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    with pytest.raises(RuntimeError, match="distributed training failed"):
        ddp.launch(1, ["no-such-command"])
