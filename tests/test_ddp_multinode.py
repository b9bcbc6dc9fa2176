"""Training on several machines: two torchrun "nodes" on loopback (c10d rendezvous, gloo, one
process each) train to identical weights on both ranks and follow the single-process loss curve.

The single-process run uses the global batch of the two ranks (2 x the per-rank batch): the
``DistributedSampler`` gives rank r the samples ``r::2`` of the same seeded permutation, so the
two ranks' batches together are the single process's batch and DDP's averaged gradient is its
gradient; only float summation order differs.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
import yaml

from signlang.datasets.loaders import save_npz
from signlang.datasets.synthetic import make_synthetic_dataset

pytestmark = pytest.mark.slow

PER_RANK_BATCH = 8
CONFIG = {
    "seed": 0,
    "device": "cpu",
    "data": {"target_frames": 12, "smooth_window": 5, "smooth_order": 2, "max_gap": 4},
    "augment": [],
    "transformer": {"d_model": 16, "n_heads": 2, "n_layers": 1, "dim_ff": 32, "dropout": 0.0, "max_len": 16},
    "optim": {"epochs": 4, "batch_size": PER_RANK_BATCH, "lr": 3e-3, "warmup_frac": 0.0, "label_smoothing": 0.0,
              "patience": 10},
    "tracking": {"enabled": False},
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1",
            "GLOO_SOCKET_IFNAME": "lo"}


def _train_args(data: Path, out: Path, cfg: Path) -> list[str]:
    return ["-m", "signlang", "train", "--data", str(data), "--out", str(out), "--config", str(cfg),
            "--model", "transformer", "--no-track", "--quiet"]


@pytest.fixture()
def setup(tmp_path: Path) -> tuple[Path, Path, Path]:
    clips = make_synthetic_dataset(n_classes=3, n_signers=4, clips_per_signer=4, seed=0, frames=(12, 16))
    assert len(clips) % (2 * PER_RANK_BATCH) == 0  # whole global batches: no padding by the sampler
    data = save_npz(clips, tmp_path / "tiny.npz")
    cfg = tmp_path / "ddp.yaml"
    cfg.write_text(yaml.safe_dump(CONFIG))
    single_cfg = tmp_path / "single.yaml"
    single_cfg.write_text(yaml.safe_dump({**CONFIG, "optim": {**CONFIG["optim"], "batch_size": 2 * PER_RANK_BATCH}}))
    return data, cfg, single_cfg


def test_two_nodes_on_loopback_match_each_other_and_the_single_process_curve(setup, tmp_path: Path) -> None:
    data, cfg, single_cfg = setup
    port = _free_port()
    run_id = uuid.uuid4().hex[:8]
    nodes = []
    for name in ("node_a", "node_b"):  # two "machines": each its own run folder
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
               "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", run_id,
               "--local-addr", "127.0.0.1", *_train_args(data, tmp_path / name, cfg)]
        nodes.append(subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    try:
        outputs = [p.communicate(timeout=300)[0] for p in nodes]
    finally:
        for p in nodes:
            if p.poll() is None:
                p.kill()
    for p, out in zip(nodes, outputs):
        assert p.returncode == 0, out[-4000:]

    reports = [json.loads(f.read_text()) for name in ("node_a", "node_b") for f in (tmp_path / name).glob("report.json")]
    assert len(reports) == 1  # only rank 0 writes the run (its bundle, in its node's folder)
    multi = reports[0]
    hashes = multi["distributed"]["weights_sha256"]["transformer"]
    assert multi["distributed"]["world_size"] == 2 and len(hashes) == 2
    assert hashes[0] == hashes[1] and len(hashes[0]) == 64  # identical weights on both ranks (one on each node)

    single_out = tmp_path / "single"
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1",
                           "--nproc-per-node", "1", *_train_args(data, single_out, single_cfg)],
                          env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    single = json.loads((single_out / "report.json").read_text())
    assert single["distributed"]["world_size"] == 1

    multi_loss = np.array([h["train_loss"] for h in multi["history"]["transformer"]])
    single_loss = np.array([h["train_loss"] for h in single["history"]["transformer"]])
    assert len(multi_loss) == len(single_loss) == CONFIG["optim"]["epochs"]
    print(f"train loss per epoch: 2 nodes {multi_loss.round(6).tolist()}, 1 process {single_loss.round(6).tolist()}")
    assert multi_loss[-1] < multi_loss[0]  # it learns
    np.testing.assert_allclose(multi_loss, single_loss, rtol=1e-3, atol=1e-4)
