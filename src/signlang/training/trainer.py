"""The training loop for the sequence networks.

:func:`train_network` fits any ``nn.Module`` with ``forward(x (B, T, F), mask (B, T)) -> logits
(B, C)`` on normalised landmarks ``X (N, T, 75, 3)``: each batch is augmented per clip (on the
raw landmarks) and then featurised by the caller's ``featurize``, so augmentation always acts on
geometry, never on derived features. It uses AdamW with a linear warm-up and cosine decay
(stepped per optimizer step), label smoothing, gradient clipping, mixed precision (bf16 autocast
on CPU; bf16 or fp16 + GradScaler on CUDA), gradient accumulation and early stopping on the
validation macro-F1 (the best weights are restored at the end).

Checkpoints are safetensors only (no pickle): ``best.safetensors`` (weights of the best epoch)
and ``last.safetensors`` (weights, optimizer moments and RNG state; the trainer state is JSON in
its metadata and mirrored to ``trainer_state.json`` for people), each written atomically, so
``resume=True`` continues exactly where the last finished epoch left off.

Under ``torch.distributed`` (see :mod:`signlang.training.distributed`) the module is wrapped in
DDP, each rank reads its shard through a ``DistributedSampler``, and only rank 0 writes files,
logs, shows progress and calls the tracker and callbacks.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from signlang._io import atomic_write, write_json
from signlang.features.normalize import resample
from signlang.training.config import OptimConfig, TrainConfig, resolve_device

log = logging.getLogger(__name__)

Featurizer = Callable[[np.ndarray], tuple[Any, Any]]
"""``featurize(landmarks (B, T, 75, 3)) -> (features (B, T, F), mask (B, T))`` (numpy or torch)."""
Augmenter = Callable[[np.ndarray, np.random.Generator], np.ndarray]
"""``augment(landmarks (T, 75, 3), rng) -> landmarks (T', 75, 3)`` for one clip."""

BEST_NAME = "best.safetensors"
LAST_NAME = "last.safetensors"
STATE_NAME = "trainer_state.json"
CHECKPOINT_FORMAT = 1


class EpochCallback(Protocol):
    """Anything with ``on_epoch_end(epoch, metrics)``; returning True stops training."""

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> bool | None: ...


CallbackLike = EpochCallback | Callable[[int, dict[str, float]], "bool | None"]


class MetricsTracker(Protocol):
    """The part of :mod:`signlang.training.tracking`'s tracker the trainer uses."""

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None: ...


@dataclass
class TrainResult:
    """What a training run did: per-epoch metrics and where the best epoch was."""

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_score: float = float("-inf")
    epochs_run: int = 0
    optimizer_steps: int = 0
    stop_reason: str = "completed"  # completed | early_stopping | callback | max_steps

    @property
    def stopped_early(self) -> bool:
        return self.stop_reason != "completed"


# ----------------------------------------------------------------------------------------------
# distributed helpers (rank 0 alone writes)


def dist_info() -> tuple[int, int]:
    """``(rank, world_size)``; ``(0, 1)`` outside an initialised process group."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _all_reduce_sum(values: Sequence[float], device: torch.device) -> list[float]:
    import torch.distributed as dist

    t = torch.tensor(list(values), dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def _broadcast_flag(flag: bool, device: torch.device) -> bool:
    import torch.distributed as dist

    t = torch.tensor([1 if flag else 0], dtype=torch.int64, device=device)
    dist.broadcast(t, src=0)
    return bool(t.item())


# ----------------------------------------------------------------------------------------------
# small pieces


@contextlib.contextmanager
def deterministic_mode() -> Iterator[None]:
    """Deterministic algorithms (warn only where none exists) for the duration of training."""
    prev = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    prev_bench = torch.backends.cudnn.benchmark
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(prev[0], warn_only=prev[1])
        torch.backends.cudnn.benchmark = prev_bench


def warmup_cosine(total_steps: int, warmup_frac: float, floor: float = 0.01) -> Callable[[int], float]:
    """LR multiplier per optimizer step: linear warm-up to 1, then cosine down to ``floor``."""
    warmup = int(round(warmup_frac * total_steps))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def amp_dtype(device: torch.device, enabled: bool) -> torch.dtype | None:
    """The autocast dtype: bf16 on CPU and on CUDA with bf16 support, else fp16; None when off."""
    if not enabled:
        return None
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16


def _optim_and_seed(cfg: TrainConfig | OptimConfig, seed: int | None) -> tuple[OptimConfig, int, str]:
    if isinstance(cfg, TrainConfig):
        return cfg.optim, cfg.seed if seed is None else seed, cfg.device
    if isinstance(cfg, OptimConfig):
        return cfg, 0 if seed is None else seed, "auto"
    raise TypeError(f"train_network: cfg must be a TrainConfig or OptimConfig, got {type(cfg).__name__}")


def _param_groups(module: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on matrices only (not on biases, norms, embeddings' 1-D params)."""
    decay, no_decay = [], []
    for p in module.parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def _to_tensor(a: Any, dtype: torch.dtype) -> torch.Tensor:
    t = a if isinstance(a, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(a))
    return t.to(dtype)


def featurize_all(featurize: Featurizer, X: np.ndarray, chunk: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Featurise ``X (N, T, 75, 3)`` in chunks -> ``(features (N, T, F) float32, mask (N, T) bool)``."""
    feats, masks = [], []
    for s in range(0, len(X), chunk):
        f, m = featurize(X[s : s + chunk])
        feats.append(_to_tensor(f, torch.float32))
        masks.append(_to_tensor(m, torch.bool))
    return torch.cat(feats), torch.cat(masks)


class _IndexDataset(torch.utils.data.Dataset):
    """Items are just clip indices; :class:`_Collate` builds the batch from them."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i


def augment_clips(augment: Augmenter, X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each clip of ``X (N, T, 75, 3)`` augmented once -> ``(N, T, 75, 3)``. Time transforms
    (time_warp, frame_drop) change T; resampling back to T keeps the fixed-length contract, as
    normalisation did for the original clip."""
    t = X.shape[1]
    return np.stack([resample(np.asarray(augment(clip, rng), dtype=np.float32), t) for clip in X])


def featurize_augmented_copies(featurize: Featurizer, X: np.ndarray, augment: Augmenter, copies: int,
                               seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The training set featurised as itself plus ``copies`` augmented copies, once:
    ``(features (copies + 1, N, T, F), mask (copies + 1, N, T))``; copy 0 is the original."""
    feats, masks = [], []
    for c in range(copies + 1):
        Xc = X if c == 0 else augment_clips(augment, X, np.random.default_rng([seed, 7919, c]))
        f, m = featurize_all(featurize, Xc)
        feats.append(f)
        masks.append(m)
    return torch.stack(feats), torch.stack(masks)


def mask_frames(mask: torch.Tensor, fraction: float, generator: torch.Generator) -> torch.Tensor:
    """``mask (B, T)`` with about ``fraction`` of each row's frames set to missing (False); a row
    keeps at least one of its detected frames (the first), so no clip becomes empty."""
    if fraction <= 0:
        return mask
    hidden = torch.rand(mask.shape, generator=generator) < fraction
    out = mask & ~hidden
    first = mask.float().argmax(dim=1)
    rows = torch.arange(mask.shape[0])
    out[rows, first] = mask[rows, first]
    return out


class _Collate:
    """Indices -> ``(x (B, T, F), mask (B, T), y (B,))`` from one of three sources: the cached
    features (no augmentation), a pool of featurised augmented copies (each clip drawn from one of
    them per epoch), or augmentation and featurisation per batch. ``frame_mask`` then hides that
    fraction of each clip's frames.

    The RNG is seeded from (seed, epoch, the batch's indices), so a batch looks the same whichever
    worker or rank builds it and after a resume.
    """

    def __init__(
        self,
        X: np.ndarray,
        y: torch.Tensor,
        featurize: Featurizer,
        augment: Augmenter | None,
        seed: int,
        cached: tuple[torch.Tensor, torch.Tensor] | None,
        frame_mask: float = 0.0,
    ) -> None:
        self.X, self.y, self.featurize, self.augment, self.seed, self.cached = X, y, featurize, augment, seed, cached
        self.frame_mask = float(frame_mask)
        self.epoch = 0

    def __call__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        idx = np.asarray(indices, dtype=np.int64)
        rng = np.random.default_rng([self.seed, self.epoch, *idx.tolist()])
        if self.cached is not None and self.cached[0].ndim == 4:  # a pool of augmented copies
            which = torch.from_numpy(rng.integers(0, self.cached[0].shape[0], size=len(idx)))
            ti = torch.from_numpy(idx)
            f, m = self.cached[0][which, ti], self.cached[1][which, ti]
        elif self.cached is not None:
            f, m = self.cached[0][idx], self.cached[1][idx]
        else:
            batch = self.X[idx] if self.augment is None else augment_clips(self.augment, self.X[idx], rng)
            f, m = self.featurize(batch)
            f, m = _to_tensor(f, torch.float32), _to_tensor(m, torch.bool)
        if self.frame_mask > 0:
            m = mask_frames(m, self.frame_mask, torch.Generator().manual_seed(int(rng.integers(2**62))))
        return f, m, self.y[idx]


# ----------------------------------------------------------------------------------------------
# checkpoints (safetensors only)


def _cpu_state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in module.state_dict().items()}


def save_weights(path: str | Path, state: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Write a tensor dict as safetensors, atomically."""
    from safetensors.torch import save

    data = save({k: v.detach().cpu().contiguous() for k, v in state.items()}, metadata=metadata)
    with atomic_write(path, "wb") as fh:
        fh.write(data)


def load_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read a safetensors file -> ``(tensors, metadata)``; a clear error names a bad file."""
    from safetensors import safe_open

    p = Path(path)
    try:
        with safe_open(str(p), framework="pt") as fh:
            meta = dict(fh.metadata() or {})
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except Exception as exc:  # safetensors raises its own error types
        raise ValueError(f"{p}: not a readable safetensors checkpoint ({exc})") from exc
    return tensors, meta


def _optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"optim.{pid}.{k}"] = v
            else:
                scalars.setdefault(str(pid), {})[k] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _restore_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    state: dict[int, dict[str, Any]] = {}
    for key, v in tensors.items():
        if key.startswith("optim."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = v
    for pid, extra in meta.get("scalars", {}).items():
        state.setdefault(int(pid), {}).update(extra)
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


# ----------------------------------------------------------------------------------------------
# evaluation


@torch.no_grad()
def _evaluate(
    module: nn.Module, x: torch.Tensor, mask: torch.Tensor, y: torch.Tensor, batch_size: int,
    device: torch.device, dtype: torch.dtype | None,
) -> tuple[float, float, float]:
    """``(loss, accuracy, macro-F1)`` of ``module`` on cached features."""
    from sklearn.metrics import f1_score

    was_training = module.training
    module.eval()
    loss_sum, preds = 0.0, []
    for s in range(0, len(x), batch_size):
        xb, mb, yb = x[s : s + batch_size].to(device), mask[s : s + batch_size].to(device), y[s : s + batch_size].to(device)
        with torch.autocast(device_type=device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            logits = module(xb, mb)
        logits = logits.float()
        if s == 0 and int(y.max()) >= logits.shape[1]:
            raise ValueError(f"y_val: label {int(y.max())} is out of range for a model with {logits.shape[1]} classes")
        loss_sum += float(F.cross_entropy(logits, yb, reduction="sum"))
        preds.append(logits.argmax(dim=1).cpu())
    module.train(was_training)
    pred = torch.cat(preds).numpy()
    true = y.numpy()
    acc = float((pred == true).mean())
    f1 = float(f1_score(true, pred, average="macro", zero_division=0))
    return loss_sum / len(x), acc, f1


def _check_xy(X: Any, y: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    X = np.asarray(X, dtype=np.float32)
    y = np.asarray(y)
    if X.ndim < 2:
        raise ValueError(f"{name}: expected landmarks of shape (N, T, 75, 3), got {X.shape}")
    if y.ndim != 1 or len(y) != len(X):
        raise ValueError(f"{name}: y must be 1-D with one label per clip ({len(X)}), got shape {y.shape}")
    if len(X) == 0:
        raise ValueError(f"{name}: no clips")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{name}: labels must be integer class indices, got dtype {y.dtype}")
    if y.min() < 0:
        raise ValueError(f"{name}: labels must be >= 0, got {int(y.min())}")
    return X, y.astype(np.int64)


def _call_callbacks(callbacks: Sequence[CallbackLike], epoch: int, metrics: dict[str, float]) -> bool:
    stop = False
    for cb in callbacks:
        fn = getattr(cb, "on_epoch_end", cb)
        if fn(epoch, dict(metrics)):
            stop = True
    return stop


# ----------------------------------------------------------------------------------------------
# the loop


def train_network(
    module: nn.Module,
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_val: np.ndarray | None,
    y_val: np.ndarray | None,
    cfg: TrainConfig | OptimConfig,
    *,
    featurize: Featurizer,
    augment: Augmenter | None = None,
    callbacks: Sequence[CallbackLike] | None = None,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    tracker: MetricsTracker | None = None,
    max_steps: int | None = None,
    seed: int | None = None,
    device: str | torch.device | None = None,
    quiet: bool = False,
) -> TrainResult:
    """Train ``module`` in place and return the per-epoch history.

    ``X_*``: normalised landmarks ``(N, T, 75, 3)`` float32 (NaN = missing), ``y_*`` int class
    indices. ``featurize`` turns a landmark batch into ``(features (B, T, F), mask (B, T))``;
    ``augment`` (training batches only) transforms one clip with a numpy Generator. Without a
    validation set there is no early stopping and the last epoch counts as best. ``max_steps``
    stops after that many optimizer steps. ``cfg.seed`` (or ``seed``) seeds the sampler, the
    augmentation and torch's RNG (dropout); model initialisation is the caller's.
    Each epoch's metrics: ``epoch, train_loss, val_loss, val_accuracy, val_macro_f1, lr,
    epoch_seconds`` (plus ``optimizer_steps``). Callbacks run on rank 0 after the epoch's
    checkpoint is written; one returning True stops training, one raising propagates.
    """
    ocfg, seed_, device_spec = _optim_and_seed(cfg, seed)
    X_train, y_train = _check_xy(X_train, y_train, "X_train")
    has_val = X_val is not None and y_val is not None and len(X_val) > 0
    if has_val:
        X_val, y_val = _check_xy(X_val, y_val, "X_val")
    rank, world = dist_info()
    is_main = rank == 0
    if device is None:
        dev_name = resolve_device(device_spec)
        device = torch.device(f"cuda:{torch.cuda.current_device()}" if dev_name == "cuda" else "cpu")
    device = torch.device(device)
    ckpt = Path(checkpoint_dir) if checkpoint_dir is not None else None
    callbacks = list(callbacks or [])
    dtype = amp_dtype(device, ocfg.amp)
    show = not quiet and is_main and sys.stderr.isatty()

    with deterministic_mode():
        if not (resume and ckpt is not None and (ckpt / LAST_NAME).exists()):
            torch.manual_seed(seed_)
        module.to(device)
        model: nn.Module = module
        if world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            model = DDP(module, device_ids=[device.index] if device.type == "cuda" else None)

        y_t = torch.from_numpy(y_train)
        if augment is None:
            cached = featurize_all(featurize, X_train)
        elif ocfg.augment_copies > 0:
            cached = featurize_augmented_copies(featurize, X_train, augment, ocfg.augment_copies, seed_)
        else:
            cached = None
        collate = _Collate(X_train, y_t, featurize, augment, seed_, cached, ocfg.frame_mask)
        sampler = torch.utils.data.DistributedSampler(
            _IndexDataset(len(X_train)), num_replicas=world, rank=rank, shuffle=True, seed=seed_, drop_last=False,
        )
        loader = torch.utils.data.DataLoader(
            _IndexDataset(len(X_train)), batch_size=ocfg.batch_size, sampler=sampler, collate_fn=collate,
            num_workers=ocfg.num_workers if cached is None else 0, drop_last=False,
        )
        if has_val:
            xv, mv = featurize_all(featurize, X_val)
            yv = torch.from_numpy(y_val)

        accum = ocfg.accumulation_steps
        n_batches = len(loader)
        steps_per_epoch = math.ceil(n_batches / accum)
        total_steps = ocfg.epochs * steps_per_epoch
        if max_steps is not None:
            total_steps = min(total_steps, max_steps)
        optimizer = torch.optim.AdamW(_param_groups(module, ocfg.weight_decay), lr=ocfg.lr)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(total_steps, ocfg.warmup_frac))
        scaler = torch.amp.GradScaler(device.type) if dtype == torch.float16 else None

        result = TrainResult()
        best_state: dict[str, torch.Tensor] | None = None
        bad_epochs = 0
        start_epoch = 0
        if resume and ckpt is not None and (ckpt / LAST_NAME).exists():
            tensors, meta = load_weights(ckpt / LAST_NAME)
            state = json.loads(meta["trainer_state"])
            module.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
            _restore_optimizer(optimizer, tensors, state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            if scaler is not None and state.get("scaler"):
                scaler.load_state_dict(state["scaler"])
            if "rng.torch" in tensors:
                torch.set_rng_state(tensors["rng.torch"])
            start_epoch = int(state["epoch"])
            bad_epochs = int(state["bad_epochs"])
            result.history = list(state["history"])
            result.best_epoch, result.best_score = int(state["best_epoch"]), float(state["best_score"])
            result.optimizer_steps = int(state["optimizer_step"])
            result.epochs_run = start_epoch
            if (ckpt / BEST_NAME).exists():
                best_state = load_weights(ckpt / BEST_NAME)[0]
            if is_main:
                log.info("resumed from %s at epoch %d (step %d)", ckpt / LAST_NAME, start_epoch, result.optimizer_steps)

        step = result.optimizer_steps
        stop_reason = "completed"
        for epoch in range(start_epoch, ocfg.epochs):
            if max_steps is not None and step >= max_steps:
                stop_reason = "max_steps"
                break
            t0 = time.perf_counter()
            sampler.set_epoch(epoch)
            collate.epoch = epoch
            model.train()
            optimizer.zero_grad(set_to_none=True)
            loss_sum, n_seen = 0.0, 0
            bar = None
            if show:
                from tqdm.auto import tqdm

                bar = tqdm(total=n_batches, desc=f"epoch {epoch + 1}/{ocfg.epochs}", leave=False)
            for i, (xb, mb, yb) in enumerate(loader):
                xb, mb, yb = xb.to(device), mb.to(device), yb.to(device)
                group_start = (i // accum) * accum
                group_size = min(accum, n_batches - group_start)
                last_in_group = i - group_start == group_size - 1
                sync = contextlib.nullcontext() if (world == 1 or last_in_group) else model.no_sync()
                with sync:
                    with torch.autocast(device_type=device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                        logits = model(xb, mb)
                    if i == 0 and int(y_train.max()) >= logits.shape[1]:
                        raise ValueError(f"y_train: label {int(y_train.max())} is out of range for a model with {logits.shape[1]} classes")
                    loss = F.cross_entropy(logits.float(), yb, label_smoothing=ocfg.label_smoothing)
                    scaled = loss / group_size
                    (scaler.scale(scaled) if scaler is not None else scaled).backward()
                loss_sum += float(loss.detach()) * len(yb)
                n_seen += len(yb)
                if last_in_group:
                    if scaler is not None:
                        scaler.unscale_(optimizer)
                    if ocfg.grad_clip is not None:
                        torch.nn.utils.clip_grad_norm_(module.parameters(), ocfg.grad_clip)
                    if scaler is not None:
                        scaler.step(optimizer)
                        scaler.update()
                    else:
                        optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
                    step += 1
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss_sum / n_seen:.4f}")
                if max_steps is not None and step >= max_steps and last_in_group:
                    stop_reason = "max_steps"
                    break
            if bar is not None:
                bar.close()
            if world > 1:
                loss_sum, n_seen = _all_reduce_sum([loss_sum, n_seen], device)
            train_loss = loss_sum / max(n_seen, 1)
            if not math.isfinite(train_loss):
                raise FloatingPointError(f"training loss is {train_loss} at epoch {epoch + 1}; lower optim.lr or check the features")

            if has_val:
                val_loss, val_acc, val_f1 = _evaluate(module, xv, mv, yv, 2 * ocfg.batch_size, device, dtype)
            else:
                val_loss = val_acc = val_f1 = float("nan")
            metrics = {
                "epoch": float(epoch + 1),
                "train_loss": train_loss,
                "val_loss": val_loss,
                "val_accuracy": val_acc,
                "val_macro_f1": val_f1,
                "lr": float(optimizer.param_groups[0]["lr"]),
                "epoch_seconds": time.perf_counter() - t0,
                "optimizer_steps": float(step),
            }
            result.history.append(metrics)
            result.epochs_run = epoch + 1
            result.optimizer_steps = step
            score = val_f1 if has_val else -train_loss
            improved = score > result.best_score
            if improved:
                result.best_score, result.best_epoch = float(score), epoch + 1
                best_state = _cpu_state(module)
                bad_epochs = 0
            else:
                bad_epochs += 1

            if is_main:
                log.info(
                    "epoch %d/%d train_loss %.4f val_loss %.4f val_acc %.4f val_f1 %.4f (%.1fs)",
                    epoch + 1, ocfg.epochs, train_loss, val_loss, val_acc, val_f1, metrics["epoch_seconds"],
                )
                if ckpt is not None:
                    if improved and best_state is not None:
                        save_weights(ckpt / BEST_NAME, best_state, {"epoch": str(epoch + 1), "val_macro_f1": repr(float(score))})
                    _save_last(ckpt, module, optimizer, scheduler, scaler, result, bad_epochs)
                if tracker is not None:
                    tracker.log_metrics({k: v for k, v in metrics.items() if k != "epoch" and math.isfinite(v)}, step=epoch + 1)

            stop = False
            if stop_reason == "max_steps":
                stop = True
            elif is_main and _call_callbacks(callbacks, epoch + 1, metrics):
                stop_reason, stop = "callback", True
            elif has_val and bad_epochs >= ocfg.patience:
                stop_reason, stop = "early_stopping", True
            if world > 1:
                stop = _broadcast_flag(stop, device)
                if stop and stop_reason == "completed":
                    stop_reason = "callback"
            if stop:
                break

        result.stop_reason = stop_reason
        if best_state is not None:
            module.load_state_dict(best_state)
        module.eval()
    return result


def _save_last(
    ckpt: Path, module: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any, scaler: Any,
    result: TrainResult, bad_epochs: int,
) -> None:
    """``last.safetensors`` (weights + optimizer moments + torch RNG, state JSON in metadata)."""
    opt_tensors, opt_meta = _optimizer_tensors(optimizer)
    tensors = {f"model.{k}": v for k, v in _cpu_state(module).items()}
    tensors.update(opt_tensors)
    tensors["rng.torch"] = torch.get_rng_state()
    sched = scheduler.state_dict()  # plain numbers; lr_lambdas is [None, ...] for our function
    state = {
        "format": CHECKPOINT_FORMAT,
        "epoch": result.epochs_run,
        "optimizer_step": result.optimizer_steps,
        "best_epoch": result.best_epoch,
        "best_score": result.best_score,
        "bad_epochs": bad_epochs,
        "history": result.history,
        "optimizer": opt_meta,
        "scheduler": sched,
        "scaler": scaler.state_dict() if scaler is not None else None,
    }
    save_weights(ckpt / LAST_NAME, tensors, {"trainer_state": json.dumps(state)})
    write_json(ckpt / STATE_NAME, {k: v for k, v in state.items() if k not in ("optimizer", "scheduler")})
