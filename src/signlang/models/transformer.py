"""A pre-norm Transformer encoder over per-frame features, pooled through a CLS token.

``(B, T, F)`` features -> linear projection to ``d_model`` -> + learned positional embeddings ->
a learned CLS token is prepended -> ``n_layers`` pre-norm encoder layers whose attention ignores
padded and missing frames (key padding mask) -> the CLS output -> LayerNorm, dropout, linear head
-> logits ``(B, C)``. The CLS token is always a valid key, so a clip whose mask is all False still
yields finite logits, and frames whose mask is False never influence the output.
"""

from __future__ import annotations

import torch
from torch import nn

from signlang.models.layers import check_inputs
from signlang.models.registry import CamSpec, register_model


def _last_self_attention(module: nn.Module) -> nn.Module:
    """The ``self_attn`` of the last encoder layer (its input is the layer's normalised tokens)."""
    return module.encoder.layers[-1].self_attn


# Grad-CAM: the tokens entering the last layer's self-attention (after its pre-norm; the
# attention mixes them into the CLS token, so each carries its own gradient), per-token
# weighting, CLS dropped. Reading *before* the LayerNorm would give ~0: a LayerNorm's input
# gradient is orthogonal to its (centred) input, so sum_d G A cancels.
@register_model(
    "transformer",
    key_aliases={"dim_ff": "dim_feedforward"},  # the YAML key before 0.2
    cam=CamSpec(layer=_last_self_attention, read="input", weighting="token"),
)
class SignTransformer(nn.Module):
    """Transformer encoder classifier: ``forward(x (B, T, F), mask (B, T) bool) -> (B, C)``.

    ``T`` may be anything from 1 to ``max_len``; positions are the frame indices.
    """

    def __init__(
        self,
        n_features: int,
        n_classes: int,
        d_model: int = 256,
        n_heads: int = 8,
        n_layers: int = 6,
        dim_feedforward: int = 1024,
        dropout: float = 0.2,
        max_len: int = 256,
    ) -> None:
        super().__init__()
        if n_features < 1 or n_classes < 1:
            raise ValueError(f"transformer: n_features and n_classes must be >= 1, got {n_features}, {n_classes}")
        if d_model % n_heads:
            raise ValueError(f"transformer: d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        if max_len < 1:
            raise ValueError(f"transformer: max_len must be >= 1, got {max_len}")
        self.config: dict[str, int | float] = dict(
            n_features=int(n_features), n_classes=int(n_classes), d_model=int(d_model), n_heads=int(n_heads),
            n_layers=int(n_layers), dim_feedforward=int(dim_feedforward), dropout=float(dropout), max_len=int(max_len),
        )
        self.n_features = int(n_features)
        self.max_len = int(max_len)
        self.input_proj = nn.Linear(n_features, d_model)
        self.pos_embedding = nn.Parameter(torch.zeros(1, max_len, d_model))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d_model))
        nn.init.trunc_normal_(self.pos_embedding, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        self.input_dropout = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(
            d_model, n_heads, dim_feedforward=dim_feedforward, dropout=dropout,
            activation="gelu", batch_first=True, norm_first=True,
        )
        # enable_nested_tensor=False: the same dense code path in train and eval mode.
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.head_dropout = nn.Dropout(dropout)
        self.head = nn.Linear(d_model, n_classes)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, C)`` from features ``x (B, T, F)`` and ``mask (B, T)`` (True = real frame)."""
        check_inputs(x, mask, self.n_features, "transformer")
        b, t, _ = x.shape
        if t > self.max_len:
            raise ValueError(f"transformer: {t} frames exceed max_len={self.max_len}; resample the clips or rebuild with a larger max_len")
        mask = mask.to(torch.bool)
        h = self.input_proj(x) + self.pos_embedding[:, :t]
        h = torch.cat([self.cls_token.expand(b, -1, -1), h], dim=1)  # (B, 1 + T, D)
        h = self.input_dropout(h)
        keep = torch.cat([torch.ones(b, 1, dtype=torch.bool, device=mask.device), mask], dim=1)
        h = self.encoder(h, src_key_padding_mask=~keep)
        pooled = self.norm(h[:, 0])
        return self.head(self.head_dropout(pooled))
