"""Distributed data-parallel training of the neural models via ``torchrun``.

``torchrun --nproc_per_node=N -m signlang.train --data DATA --out DIR ...`` starts N processes;
each calls :func:`init_distributed`, which reads torchrun's environment (``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``) and joins a process group
(NCCL on GPU, gloo on CPU). :func:`run` then loads and splits the data identically on every rank
and fits a :class:`~signlang.training.estimator.NeuralSequenceClassifier`: the trainer wraps the
network in DDP and shards the batches with a ``DistributedSampler``. Only rank 0 logs and writes
(checkpoints, history, the model bundle, tracking). Without torchrun's variables everything runs
in a single process.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from signlang._io import atomic_write, write_json
from signlang.training.config import (
    TrainConfig,
    config_to_dict,
    default_config,
    flatten_config,
    load_config,
    merge_overrides,
    normalize_config,
    save_config,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistContext:
    """Where this process sits: ``rank`` of ``world_size``, its ``local_rank`` and device."""

    rank: int
    world_size: int
    local_rank: int
    device: str  # "cpu" or "cuda:<local_rank>"
    backend: str | None  # "gloo" / "nccl"; None when not distributed

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str = "auto") -> DistContext:
    """Join torchrun's process group from the environment (a no-op single process without it).

    ``device``: ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``; the backend follows it.
    """
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if device == "auto" else device == "cuda"
    if use_cuda and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but CUDA is not available")
    if use_cuda:
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
    dev = f"cuda:{torch.cuda.current_device()}" if use_cuda else "cpu"
    if world <= 1:
        return DistContext(0, 1, 0, dev, None)
    backend = "nccl" if use_cuda else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return DistContext(dist.get_rank(), dist.get_world_size(), local_rank, dev, backend)


def cleanup_distributed() -> None:
    """Leave the process group (after a barrier so no rank exits while others still talk)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def state_hash(module: torch.nn.Module) -> str:
    """sha256 over the state dict's names and bytes (to check that ranks hold identical weights)."""
    h = hashlib.sha256()
    for k, v in sorted(module.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _parse_value(text: str) -> Any:
    import yaml

    return yaml.safe_load(text)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m signlang.train", description="Train one neural model (DDP under torchrun).")
    p.add_argument("--data", required=True, help="dataset: .npz file, landmark store folder or .pose file")
    p.add_argument("--out", required=True, help="output folder (rank 0 writes here)")
    p.add_argument("--config", default=None, help="YAML config (default: configs/train.yaml on CUDA, else configs/cpu.yaml)")
    p.add_argument("--split", default="random:0.2", help="split spec of datasets.splits, e.g. blocked:0.2 (default random:0.2)")
    p.add_argument("--model", default="transformer", help="network registry name (transformer, bilstm, ...)")
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many optimizer steps")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override, e.g. --set optim.lr=3e-4")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/last.safetensors")
    p.add_argument("--rank-hashes", action="store_true", help="every rank writes OUT/rank<r>.sha256 of its final weights (for tests)")
    return p.parse_args(argv)


def _config(args: argparse.Namespace) -> TrainConfig:
    cfg = load_config(args.config) if args.config else default_config()
    overrides: dict[str, Any] = {}
    for item in args.set:
        if "=" not in item:
            raise ValueError(f"--set {item!r}: expected KEY=VALUE")
        k, v = item.split("=", 1)
        overrides[k.strip()] = _parse_value(v)
    return merge_overrides(cfg, overrides) if overrides else cfg


def run(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """The ``python -m signlang.train`` program; returns rank 0's summary (others: their own)."""
    from signlang.datasets.loaders import load_dataset
    from signlang.datasets.splits import split_indices, validation_indices
    from signlang.features.normalize import normalize_clips
    from signlang.training.estimator import NeuralSequenceClassifier
    from signlang.training.tracking import NullTracker, make_tracker

    args = parse_args(argv)
    cfg = _config(args)
    ctx = init_distributed(cfg.device)
    out = Path(args.out)
    try:
        if ctx.is_main:
            logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
            out.mkdir(parents=True, exist_ok=True)
            save_config(cfg, out / "config.yaml")
        clips = load_dataset(args.data)
        train_idx, test_idx = split_indices(clips, args.split, seed=cfg.seed)
        fit_idx, val_idx = validation_indices(clips, train_idx, args.split, seed=cfg.seed)
        norm = normalize_config(cfg)
        X_fit = normalize_clips([clips.landmarks[i] for i in fit_idx], norm)
        X_val = normalize_clips([clips.landmarks[i] for i in val_idx], norm)
        est = NeuralSequenceClassifier.from_config(
            cfg, args.model, device=ctx.device, checkpoint_dir=str(out / "checkpoints"), quiet=not ctx.is_main,
        )
        tracker = make_tracker(cfg.tracking, out_dir=out) if ctx.is_main else NullTracker()
        with tracker:
            tracker.log_params({**flatten_config(cfg), "model": args.model, "split": args.split, "world_size": ctx.world_size})
            est.fit(X_fit, clips.y[fit_idx], X_val, clips.y[val_idx], tracker=tracker, max_steps=args.max_steps, resume=args.resume)
            summary: dict[str, Any] = {
                "model": args.model, "world_size": ctx.world_size, "rank": ctx.rank,
                "n_fit": int(len(fit_idx)), "n_val": int(len(val_idx)), "n_test": int(len(test_idx)),
                "best_epoch": est.best_epoch_, "stop_reason": est.train_result_.stop_reason,
                "optimizer_steps": est.train_result_.optimizer_steps, "history": est.history_,
                "weights_sha256": state_hash(est.module_),
            }
            if args.rank_hashes:
                with atomic_write(out / f"rank{ctx.rank}.sha256", "w") as fh:
                    fh.write(summary["weights_sha256"] + "\n")
            if ctx.is_main:
                if len(test_idx):
                    X_test = normalize_clips([clips.landmarks[i] for i in test_idx], norm)
                    pred = est.predict(X_test)
                    summary["test_accuracy"] = float(np.mean(pred == clips.y[test_idx]))
                    tracker.log_metrics({"test_accuracy": summary["test_accuracy"]})
                write_json(out / "summary.json", summary)
                _save_model_bundle(est, clips.classes, cfg, out / "bundle")
                tracker.log_artifact(out / "summary.json")
        return summary
    finally:
        cleanup_distributed()


def _save_model_bundle(est: Any, classes: Sequence[str], cfg: TrainConfig, folder: Path) -> None:
    from signlang.models.bundle import save_bundle

    preprocessing = {"normalize": normalize_config(cfg).to_dict(), "feature_blocks": cfg.data.feature_blocks}
    save_bundle(folder, est, classes=classes, preprocessing=preprocessing, extra={"config": config_to_dict(cfg)},
                name=est.arch, overwrite=True)
