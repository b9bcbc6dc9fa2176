"""Attribution maths: which frames and which landmarks decided a network's prediction.

Everything here works on one registered network (``forward(x (B, T, F), mask (B, T)) -> logits
(B, C)``, see :mod:`signlang.models.registry`) and plain arrays; loading bundles, clips and
videos happens in :mod:`signlang.explain.explainer` and at the edges.

Three attributions, all vectorised over frames (and over the integration steps):

* **Grad-CAM over time** (:func:`gradcam`). A hook records the activations ``A (B, T, D)`` of
  the network's *CAM layer* and a tensor hook their gradients ``G`` w.r.t. the target logit; the
  layer is the one the model declares in its registration (``register_model(..., cam=CamSpec(...))``).
  Transformer (CLS pooling): the tokens entering the last encoder layer's self-attention
  (after its pre-norm), CLS token dropped, map ``relu(sum_d G[t, d] A[t, d])`` per frame (classic channel-averaged weights
  would be blind here: only the CLS token of the last layer's *output* receives a gradient).
  BiLSTM (attention pooling): the last LSTM layer's output sequence as the pool receives it,
  classic Grad-CAM ``relu(sum_d alpha_d A[t, d])`` with ``alpha_d = mean_t G[t, d]`` over the
  real frames, multiplied by the pool's attention weights (a frame matters when its
  gradient-weighted state points at the class *and* the pooling reads it). Masked frames get 0.
* **Integrated gradients on the features** (:func:`integrated_gradients`): a Riemann (midpoint)
  sum of the gradients along the straight path from a baseline (the all-zero feature frame, which
  after normalisation means "body at rest at the origin") to the input, times ``x - baseline``;
  all ``steps`` points of the path go through the network as one batch.
* **Feature -> landmark assignment** (:func:`feature_landmark_matrix`). The feature table is
  numpy code (:mod:`signlang.features.engineering`), so gradients cannot reach the landmarks
  directly. Instead we *measure* which landmarks each feature column depends on: every landmark
  of a few random normalised clips is moved in turn (one vectorised batch of perturbed clips)
  and a column that changes belongs to that landmark. Row-normalised, this gives ``M (F, 75)``
  whose rows sum to 1 (a column that depends on k landmarks gives each 1/k), and
  ``landmark_map = |IG| (T, F) @ M`` spreads each feature's attribution over its landmarks.
  Columns with no landmark (constant features) are dropped. The blocks of
  ``FEATURE_BLOCKS`` are only a layout; the probe is the ground truth, so a new feature block is
  assigned correctly without edits here.

Maps come out on the network's time axis (the resampled ``T``); :func:`resample_time` maps them
back to the input's own frames (:mod:`signlang.explain.maps`) by linear interpolation (``np.interp`` over relative positions,
the same convention as a linear resampler with both ends fixed).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from signlang.explain.maps import normalise_map, resample_time  # noqa: F401 - kept importable from here
from signlang.models.layers import AttentionPool
from signlang.models.registry import MODELS, CamSpec

N_POINTS = 75

# Grad-CAM layers: declared by each model's registration (``register_model(..., cam=CamSpec(...))``)
# --------------------------------------------------------------------------------------------


def _has(module: nn.Module, kind: type[nn.Module]) -> bool:
    return any(isinstance(m, kind) for m in module.modules())


def cam_spec_for(module: nn.Module) -> CamSpec:
    """The :class:`CamSpec` declared by ``module``'s registration, else one chosen by its layers
    (a module that wraps a transformer encoder or an attention pool reads like those networks)."""
    name = getattr(module, "registry_name", None)
    if name in MODELS and MODELS.get(name).cam is not None:
        return MODELS.get(name).cam
    for fallback, layer in (("transformer", nn.TransformerEncoderLayer), ("bilstm", AttentionPool)):
        if _has(module, layer):
            return MODELS.get(fallback).cam
    with_cam = sorted(n for n, s in MODELS.items() if s.cam is not None)
    raise ValueError(
        f"no Grad-CAM layer known for {type(module).__name__} (registry name {name!r}); "
        f"declare one with register_model(..., cam=CamSpec(...)) (models with one: {with_cam})"
    )


# --------------------------------------------------------------------------------------------
# Grad-CAM
# --------------------------------------------------------------------------------------------


def _first_tensor(out: object) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    raise TypeError(f"Grad-CAM hook: cannot read a (B, T, D) tensor from {type(out).__name__}")


def _target_tensor(target: int | np.ndarray | torch.Tensor, b: int) -> torch.Tensor:
    tgt = torch.as_tensor(np.asarray(target), dtype=torch.long).reshape(-1)
    if tgt.numel() == 1:
        tgt = tgt.expand(b)
    if tgt.numel() != b:
        raise ValueError(f"target: expected 1 or {b} class indices, got {tgt.numel()}")
    return tgt


def gradcam(
    module: nn.Module,
    x: torch.Tensor,
    mask: torch.Tensor,
    target: int | np.ndarray | torch.Tensor,
    spec: CamSpec | None = None,
) -> np.ndarray:
    """Grad-CAM importance per frame: ``x (B, T, F)``, ``mask (B, T)`` -> ``(B, T)`` >= 0.

    Zero on masked frames. Runs the network in eval mode; see :class:`CamSpec` for the layer
    and weighting per architecture.
    """
    spec = spec or cam_spec_for(module)
    b, t = x.shape[:2]
    mask = mask.to(torch.bool)
    tgt = _target_tensor(target, b)
    store: dict[str, torch.Tensor] = {}

    def keep(act: torch.Tensor) -> None:
        if not act.requires_grad:  # another caller's no-grad forward pass: not ours
            return
        act.register_hook(lambda g: store.__setitem__("grad", g))
        store["act"] = act

    layer = spec.layer(module)
    if spec.read == "input":
        handle = layer.register_forward_pre_hook(lambda _m, args: keep(_first_tensor(args)))
    else:
        handle = layer.register_forward_hook(lambda _m, _i, out: keep(_first_tensor(out)))
    was_training = module.training
    module.eval()
    try:
        with torch.enable_grad():
            xin = x.detach().clone().requires_grad_(True)  # every activation downstream needs grad
            logits = module(xin, mask)
            logits.gather(1, tgt[:, None]).sum().backward()
    finally:
        handle.remove()
        module.train(was_training)
    if "grad" not in store:
        raise RuntimeError(f"Grad-CAM: the CAM layer of {type(module).__name__} received no gradient")
    act, grad = store["act"].detach(), store["grad"].detach()
    if act.dim() != 3 or act.shape[0] != b or act.shape[1] < t:
        raise RuntimeError(f"Grad-CAM: expected a (B={b}, T>={t}, D) activation, got {tuple(act.shape)}")
    extra = act.shape[1] - t  # leading special tokens (CLS)
    act, grad = act[:, extra:], grad[:, extra:]
    m = mask.to(act.dtype)[..., None]
    if spec.weighting == "channel":
        alpha = (grad * m).sum(1, keepdim=True) / m.sum(1, keepdim=True).clamp_min(1.0)  # (B, 1, D)
        cam = (act * alpha).sum(-1)
    else:
        cam = (act * grad).sum(-1)
    cam = torch.relu(cam) * m[..., 0]
    if spec.attention is not None:
        with torch.no_grad():
            cam = cam * spec.attention(module, act, mask).clamp_min(0)
    return cam.cpu().numpy().astype(np.float32)


# --------------------------------------------------------------------------------------------
# Integrated gradients
# --------------------------------------------------------------------------------------------


def integrated_gradients(
    module: nn.Module,
    x: torch.Tensor,
    mask: torch.Tensor,
    target: int | np.ndarray | torch.Tensor,
    baseline: torch.Tensor | None = None,
    steps: int = 32,
) -> np.ndarray:
    """Integrated gradients of the target logit w.r.t. the features: ``(B, T, F)`` signed.

    Midpoint Riemann sum with ``steps`` points, all points in one batch (``B * steps`` rows).
    ``baseline`` defaults to zeros. Padded frames get zero attribution.
    """
    if steps < 1:
        raise ValueError(f"integrated_gradients: steps must be >= 1, got {steps}")
    b, t, f = x.shape
    tgt = _target_tensor(target, b)
    base = torch.zeros_like(x) if baseline is None else baseline.expand_as(x).to(x.dtype)
    alphas = (torch.arange(steps, dtype=x.dtype) + 0.5) / steps  # (S,)
    path = base[None] + alphas[:, None, None, None] * (x - base)[None]  # (S, B, T, F)
    path = path.reshape(steps * b, t, f).detach().requires_grad_(True)
    was_training = module.training
    module.eval()
    try:
        with torch.enable_grad():
            logits = module(path, mask.repeat(steps, 1))
            sel = logits.gather(1, tgt.repeat(steps)[:, None]).sum()
            (grads,) = torch.autograd.grad(sel, path)
    finally:
        module.train(was_training)
    avg = grads.reshape(steps, b, t, f).mean(0)
    attr = (avg * (x - base)) * mask.to(x.dtype)[..., None]
    return attr.detach().cpu().numpy().astype(np.float32)


# --------------------------------------------------------------------------------------------
# Features -> landmarks
# --------------------------------------------------------------------------------------------


def feature_landmark_matrix(
    frame_features: Callable[[np.ndarray], np.ndarray],
    n_frames: int = 5,
    trials: int = 3,
    seed: int = 0,
    eps: float = 1e-2,
) -> np.ndarray:
    """Measure which of the 75 landmarks each feature column depends on -> ``M (F, 75)``.

    ``frame_features`` maps normalised landmarks ``(..., T, 75, 3)`` to ``(..., T, F)``. For each
    of ``trials`` random clips of ``n_frames`` frames, the clip and 75 copies of it (copy ``j``
    with landmark ``j`` moved by ``eps`` in every frame) go through it, all in one batch; column
    ``f`` depends on landmark ``j`` when copy ``j`` changes it in any frame of any trial (several
    trials catch dependencies that one configuration hides, e.g. a point inside a convex hull).
    Rows are normalised to sum to 1; a column that depends on no landmark is an all-zero row.
    """
    rng = np.random.default_rng(seed)
    base = rng.normal(0.0, 0.3, size=(trials, 1, n_frames, N_POINTS, 3)).astype(np.float32)
    shift = rng.normal(0.0, 1.0, size=(trials, n_frames, 3)).astype(np.float32)
    shift = eps * shift / np.linalg.norm(shift, axis=-1, keepdims=True)
    batch = np.repeat(base, N_POINTS + 1, axis=1)  # (trials, 76, T, 75, 3); copy 75 untouched
    idx = np.arange(N_POINTS)
    batch[:, idx, :, idx, :] += shift[None]  # advanced indices first: (75, trials, T, 3)
    flat_batch = batch.reshape(trials * (N_POINTS + 1), n_frames, N_POINTS, 3)
    feats = np.asarray(frame_features(flat_batch), dtype=np.float64)
    if feats.ndim != 3 or feats.shape[:2] != flat_batch.shape[:2]:
        raise ValueError(f"frame_features: expected output ({flat_batch.shape[0]}, {n_frames}, F), got {feats.shape}")
    feats = np.nan_to_num(feats).reshape(trials, N_POINTS + 1, n_frames, -1)
    ref = feats[:, -1:]
    diff = np.abs(feats[:, :-1] - ref)  # (trials, 75, T, F)
    scale = np.abs(ref).max(axis=(0, 1, 2)) + 1.0  # (F,)
    depends = (diff.max(axis=(0, 2)) > 1e-6 * scale[None]).T.astype(np.float64)  # (F, 75)
    counts = depends.sum(axis=1, keepdims=True)
    return (depends / np.maximum(counts, 1.0)).astype(np.float32)


def features_to_landmarks(attr: np.ndarray, assignment: np.ndarray) -> np.ndarray:
    """Spread feature attributions over landmarks: ``|attr| (..., T, F) @ M (F, 75) -> (..., T, 75)``."""
    attr = np.asarray(attr, dtype=np.float32)
    if attr.shape[-1] != assignment.shape[0]:
        raise ValueError(
            f"features_to_landmarks: {attr.shape[-1]} feature columns but the assignment matrix has {assignment.shape[0]} rows"
        )
    return np.abs(attr) @ assignment


# --------------------------------------------------------------------------------------------
# Comparing maps (the time axis and normalisation live in signlang.explain.maps)
# --------------------------------------------------------------------------------------------


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two equally shaped maps (average ranks for ties)."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape or a.size < 2:
        raise ValueError(f"spearman: need two maps of the same size >= 2, got {a.size} and {b.size}")
    ra, rb = _rank(a), _rank(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    den = float(np.sqrt((ra**2).sum() * (rb**2).sum()))
    return float((ra * rb).sum() / den) if den > 0 else 0.0


def _rank(v: np.ndarray) -> np.ndarray:
    """Average ranks (ties share the mean of their positions), vectorised."""
    order = np.argsort(v, kind="mergesort")
    sorted_v = v[order]
    starts = np.r_[True, sorted_v[1:] != sorted_v[:-1]]
    group = np.cumsum(starts) - 1
    first = np.flatnonzero(starts)
    sizes = np.diff(np.r_[first, v.size])
    avg = first + (sizes - 1) / 2.0
    ranks = np.empty_like(v)
    ranks[order] = avg[group]
    return ranks
