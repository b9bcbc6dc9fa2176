"""Distributed data-parallel training of the neural models via ``torchrun``.

``signlang train --nproc N --model transformer ...`` resolves the config like every command, then
:func:`launch` starts torchrun on ``python -m signlang train`` (the worker entry point is the same
command: under torchrun it runs :func:`run_worker`). For several nodes, start
``torchrun --nnodes ... -m signlang train ...`` on each. Each worker calls
:func:`init_distributed`, which reads torchrun's environment (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``) and joins a process group (NCCL on GPU, gloo on
CPU); :func:`run_worker` loads and splits the data identically on every rank and fits a
:class:`~signlang.training.estimator.NeuralSequenceClassifier`: the trainer wraps the network in
DDP and shards the batches with a ``DistributedSampler``. Only rank 0 logs and writes
(checkpoints, history, the model bundle, tracking).
"""

from __future__ import annotations

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
from signlang.training.config import TrainConfig, config_to_dict, flatten_config, save_config

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


def check_network(model: str) -> None:
    """``ValueError`` unless ``model`` is a registered network (DDP trains one network)."""
    from signlang.models.registry import MODELS, list_models

    if model not in MODELS or not MODELS.get(model).is_network:
        raise ValueError(f"--model {model!r}: distributed training trains one network; pass --model {' | '.join(list_models())}")


def run_worker(
    data: str | os.PathLike[str],
    out: str | os.PathLike[str],
    cfg: TrainConfig,
    *,
    split: str | None,
    model: str,
    max_steps: int | None = None,
    resume: bool = False,
    rank_hashes: bool = False,
    cells: str | os.PathLike[str] | None = "auto",
) -> dict[str, Any]:
    """One rank of ``signlang train --nproc N`` (or of any torchrun launch of ``signlang train``).

    Every rank loads and splits the data identically (``split=None``: every clip trains, the
    estimator holds out its own validation part) and fits one network; rank 0 writes
    ``OUT/config.yaml``, ``OUT/summary.json``, ``OUT/checkpoints/`` and the bundle ``OUT/bundle``.
    ``rank_hashes``: every rank writes ``OUT/rank<r>.sha256`` of its final weights (for tests).
    ``cells``: the label audit (:func:`signlang.training.pipeline.load_data`). Returns this rank's summary.
    """
    from signlang.datasets.splits import split_indices, validation_indices
    from signlang.training.estimator import NeuralSequenceClassifier
    from signlang.training.pipeline import load_data, normalize, preprocessing_of
    from signlang.training.tracking import NullTracker, make_tracker

    check_network(model)
    ctx = init_distributed(cfg.device)
    out = Path(out)
    try:
        if ctx.is_main:
            logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
            out.mkdir(parents=True, exist_ok=True)
            save_config(cfg, out / "config.yaml")
        clips, source = load_data(data, cells)
        if split is None:
            fit_idx = np.arange(len(clips), dtype=np.int64)
            val_idx = test_idx = np.zeros(0, dtype=np.int64)
        else:
            train_idx, test_idx = split_indices(clips, split, seed=cfg.seed)
            fit_idx, val_idx = validation_indices(clips, train_idx, split, seed=cfg.seed)
        preprocessing = preprocessing_of(cfg)
        X_fit = normalize([clips.landmarks[i] for i in fit_idx], preprocessing)
        X_val = normalize([clips.landmarks[i] for i in val_idx], preprocessing) if len(val_idx) else None
        est = NeuralSequenceClassifier.from_config(
            cfg, model, device=ctx.device, checkpoint_dir=str(out / "checkpoints"), quiet=not ctx.is_main,
        )
        tracker = make_tracker(cfg.tracking, out_dir=out) if ctx.is_main else NullTracker()
        with tracker:
            tracker.log_params({**flatten_config(cfg), "model": model, "split": split, "world_size": ctx.world_size})
            y_val = clips.y[val_idx] if X_val is not None else None
            est.fit(X_fit, clips.y[fit_idx], X_val, y_val, tracker=tracker, max_steps=max_steps, resume=resume)
            summary: dict[str, Any] = {
                "model": model, "world_size": ctx.world_size, "rank": ctx.rank, "split": split,
                "n_fit": int(len(fit_idx)), "n_val": int(len(val_idx)), "n_test": int(len(test_idx)),
                "best_epoch": est.best_epoch_, "stop_reason": est.train_result_.stop_reason,
                "optimizer_steps": est.train_result_.optimizer_steps, "history": est.history_,
                "weights_sha256": state_hash(est.module_), "audit": source.get("audit"),
            }
            if rank_hashes:
                with atomic_write(out / f"rank{ctx.rank}.sha256", "w") as fh:
                    fh.write(summary["weights_sha256"] + "\n")
            if ctx.is_main:
                if len(test_idx):
                    X_test = normalize([clips.landmarks[i] for i in test_idx], preprocessing)
                    pred = est.predict(X_test)
                    summary["test_accuracy"] = float(np.mean(pred == clips.y[test_idx]))
                    tracker.log_metrics({"test_accuracy": summary["test_accuracy"]})
                write_json(out / "summary.json", summary)
                _save_model_bundle(est, clips.classes, cfg, preprocessing, out / "bundle")
                tracker.log_artifact(out / "summary.json")
        return summary
    finally:
        cleanup_distributed()


def in_torchrun() -> bool:
    """Whether this process is a worker that torchrun (torch.distributed.run) started."""
    return "TORCHELASTIC_RUN_ID" in os.environ or int(os.environ.get("WORLD_SIZE", "1")) > 1


def launch(nproc: int, argv: Sequence[str]) -> None:
    """Run ``python -m signlang <argv>`` on ``nproc`` local processes under torchrun (standalone
    rendezvous), as Lightning Fabric's CLI does; raises ``RuntimeError`` when a rank fails."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    args = get_args_parser().parse_args(["--standalone", f"--nproc_per_node={int(nproc)}", "-m", "signlang", *argv])
    try:
        run(args)
    except ChildFailedError as exc:
        raise RuntimeError(f"distributed training failed: {exc}") from None


def _save_model_bundle(est: Any, classes: Sequence[str], cfg: TrainConfig, preprocessing: dict[str, Any], folder: Path) -> None:
    from signlang.models.bundle import save_bundle

    save_bundle(folder, est, classes=classes, preprocessing=preprocessing, extra={"config": config_to_dict(cfg)},
                name=est.arch, overwrite=True)
