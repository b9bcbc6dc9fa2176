"""Processes of a distributed run: joining torchrun's process group, and launching one.

``signlang train --nproc N`` resolves the config like every command, then :func:`launch` starts
torchrun on ``python -m signlang train`` with that config; for several nodes, start
``torchrun --nnodes ... -m signlang train ...`` on each. Every process runs the one training
path, :func:`signlang.training.pipeline.train_bundle`, inside :func:`process_group`, which reads
torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``)
and joins a process group (NCCL on GPU, gloo on CPU); without torchrun it is one process. Inside
it the networks train under DDP (the trainer wraps them and shards the batches with a
``DistributedSampler``), the other model kinds fit on rank 0, and only rank 0 writes.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

WAIT = datetime.timedelta(hours=6)
"""How long a rank waits at a collective (for rank 0's own work: trees, combiner, validation, writing)."""


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
    if not 0 <= rank < max(world, 1):
        raise ValueError(f"environment: RANK={rank} must be in [0, WORLD_SIZE={world}) (set by torchrun)")
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
        # the other ranks wait at their next collective while rank 0 alone fits the trees, the combiner
        # and validates: far longer than the default 30 minutes on real data
        dist.init_process_group(backend=backend, rank=rank, world_size=world, timeout=WAIT)
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


@contextlib.contextmanager
def process_group(device: str = "auto") -> Iterator[DistContext]:
    """This process's place in the run: torchrun's group joined (:func:`init_distributed`) and left at
    the end (:func:`cleanup_distributed`), unless the caller had joined one already (then it stays)."""
    import torch.distributed as dist

    joined_before = dist.is_available() and dist.is_initialized()
    ctx = init_distributed(device)
    try:
        yield ctx
    finally:
        if not joined_before:
            cleanup_distributed()


def gather(value: Any) -> list[Any]:
    """``value`` of every rank, in rank order (``[value]`` outside a process group); every rank must call it."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [value]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, value)
    return out


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
