"""Small building blocks shared by the networks: masked softmax and attention pooling.

Both work on whole ``(B, T, D)`` batches at once (no loop over frames) and treat a frame whose
mask is False as absent: it receives exactly zero weight, so padding or missing frames never change
the pooled vector. A clip with no valid frame pools to the zero vector (finite, never NaN).
"""

from __future__ import annotations

import math

import torch
from torch import nn


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Softmax of ``scores`` over ``dim`` restricted to ``mask`` (True = keep).

    Masked entries get weight 0; a slice with no True entry gets all-zero weights (not NaN).
    """
    neg = torch.finfo(scores.dtype).min
    filled = scores.masked_fill(~mask, neg)
    weights = torch.softmax(filled, dim=dim)
    weights = weights * mask.to(weights.dtype)
    return weights


class AttentionPool(nn.Module):
    """Attention pooling with a learned query vector: ``(B, T, D), (B, T) -> (B, D)``.

    ``score_t = q . tanh(W h_t) / sqrt(D)``; the weights are a softmax over the valid frames only.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, dim)
        self.query = nn.Parameter(torch.randn(dim) / math.sqrt(dim))
        self.scale = 1.0 / math.sqrt(dim)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        scores = torch.tanh(self.proj(h)) @ self.query * self.scale  # (B, T)
        weights = masked_softmax(scores, mask, dim=-1)  # (B, T)
        return torch.einsum("bt,btd->bd", weights, h)


def check_inputs(x: torch.Tensor, mask: torch.Tensor, n_features: int, name: str) -> None:
    """Raise ``ValueError`` naming the network when ``x``/``mask`` do not match ``(B, T, F)``/``(B, T)``."""
    if x.ndim != 3 or x.shape[-1] != n_features:
        raise ValueError(f"{name}: x must have shape (B, T, {n_features}), got {tuple(x.shape)}")
    if mask.shape != x.shape[:2]:
        raise ValueError(f"{name}: mask must have shape {tuple(x.shape[:2])} (B, T), got {tuple(mask.shape)}")
