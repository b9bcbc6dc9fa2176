"""A two-layer bidirectional LSTM with (approximate) zoneout and attention pooling.

``(B, T, F)`` -> linear projection + LayerNorm -> BiLSTM layer 1 -> zoneout -> BiLSTM layer 2 ->
zoneout -> attention pooling with a learned query over the valid frames -> LayerNorm, dropout,
linear head -> logits ``(B, C)``.

Padding: each clip is packed (``pack_padded_sequence``) to its length = index of its last valid
frame + 1, so frames appended after the clip (mask False) are never fed to either direction and
cannot change the output. Missing frames *inside* a clip (mask False) are fed to the LSTM as a
zero vector (whatever their feature values) and get zero weight in the pooling.

Zoneout, honestly stated: true zoneout (Krueger et al., 2017) keeps a unit's previous hidden/cell
state inside the recurrence, which needs a Python loop over time steps with ``LSTMCell``. Here it
is applied *to the output sequence of each cuDNN/``nn.LSTM`` layer*: in training mode every unit
of ``h_t`` is replaced by that direction's previous output (``h_{t-1}`` forward, ``h_{t+1}``
backward, zero at the sequence start as in the LSTM's initial state) with probability ``zoneout``.
The recurrence itself is not affected, so this is a temporal-smoothing regulariser on what the
next layer and the pooling see, not the original cell-state zoneout. In eval mode it is the
identity: deterministic, no zoneout.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from signlang.models.layers import AttentionPool, check_inputs, masked_softmax
from signlang.models.registry import CamSpec, register_model


def output_zoneout(h: torch.Tensor, lengths: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Approximate zoneout on bidirectional LSTM outputs ``h (B, T, 2H)``; identity unless training.

    Forward half: a unit keeps ``h_{t-1}``; backward half: it keeps ``h_{t+1}``; both with
    probability ``p``. Frames at or beyond ``lengths`` are zero (padding) and stay zero.
    """
    if not training or p <= 0.0:
        return h
    hid = h.shape[-1] // 2
    fwd, bwd = h[..., :hid], h[..., hid:]
    prev_fwd = torch.nn.functional.pad(fwd, (0, 0, 1, 0))[:, :-1]  # h_{t-1}, zero at t = 0
    prev_bwd = torch.nn.functional.pad(bwd, (0, 0, 0, 1))[:, 1:]  # h_{t+1}, zero after the end (padded zeros)
    prev = torch.cat([prev_fwd, prev_bwd], dim=-1)
    keep_prev = torch.rand_like(h) < p
    out = torch.where(keep_prev, prev, h)
    valid = torch.arange(h.shape[1], device=h.device)[None, :] < lengths.to(h.device)[:, None]
    return out * valid[..., None].to(out.dtype)


def _pool_weights(module: nn.Module, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The attention-pooling weights ``(B, T)`` the BiLSTM used for its states ``h (B, T, 2H)``.

    Recomputed from the pool's own parameters (``AttentionPool`` returns only the pooled vector).
    """
    pool = module.pool
    scores = torch.tanh(pool.proj(h)) @ pool.query * pool.scale
    return masked_softmax(scores, mask.to(torch.bool), dim=-1)


class PaddedBiLSTM(nn.Module):
    """The BiLSTM network without ``pack_padded_sequence`` (which does not trace): its export form.

    Each bidirectional layer becomes two unidirectional LSTMs with the same weights; the backward
    one reads every clip reversed *within its own length* (a gather), which is exactly what packing
    does, and outputs past a clip's length are zeroed as ``pad_packed_sequence`` does. Eval only.
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.fw = nn.ModuleList()
        self.bw = nn.ModuleList()
        for lstm in net.lstms:
            f = nn.LSTM(lstm.input_size, lstm.hidden_size, batch_first=True)
            b = nn.LSTM(lstm.input_size, lstm.hidden_size, batch_first=True)
            with torch.no_grad():
                for p in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
                    getattr(f, p).copy_(getattr(lstm, p))
                    getattr(b, p).copy_(getattr(lstm, p + "_reverse"))
            self.fw.append(f)
            self.bw.append(b)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        net = self.net
        mask = mask.to(torch.bool)
        steps = torch.arange(x.shape[1], device=x.device)
        lengths = (mask.to(torch.int64) * (steps + 1)[None, :]).amax(dim=1).clamp(min=1)  # (B,)
        valid = (steps[None, :] < lengths[:, None])[..., None].to(x.dtype)  # (B, T, 1)
        rev = (lengths[:, None] - 1 - steps[None, :]).clamp(min=0)[..., None]  # (B, T, 1)
        h = net.input_proj(x) * mask[..., None].to(x.dtype)
        for f, b in zip(self.fw, self.bw):
            hf, _ = f(h)
            hb, _ = b(torch.gather(h, 1, rev.expand(-1, -1, h.shape[-1])))
            hb = torch.gather(hb, 1, rev.expand(-1, -1, hb.shape[-1]))
            h = torch.cat([hf, hb], dim=-1) * valid
        pool = net.pool
        scores = torch.tanh(pool.proj(h)) @ pool.query * pool.scale  # (B, T)
        weights = masked_softmax(scores, mask, dim=-1)
        pooled = torch.bmm(weights[:, None, :], h)[:, 0]  # the pool's einsum; ORT mis-plans that einsum's buffer
        return net.head(net.norm(pooled))


# Grad-CAM: the last LSTM layer's output sequence as the attention pool receives it, classic
# channel weighting, times the pool's attention weights.
@register_model(
    "bilstm",
    key_aliases={"layers": "n_layers"},  # the YAML key before 0.2
    cam=CamSpec(layer=lambda m: m.pool, read="input", weighting="channel", attention=_pool_weights),
    export=PaddedBiLSTM,
)
class SignBiLSTM(nn.Module):
    """Bidirectional LSTM classifier: ``forward(x (B, T, F), mask (B, T) bool) -> (B, C)``."""

    def __init__(
        self,
        n_features: int,
        n_classes: int,
        hidden: int = 256,
        n_layers: int = 2,
        zoneout: float = 0.1,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        if n_features < 1 or n_classes < 1 or hidden < 1 or n_layers < 1:
            raise ValueError(f"bilstm: n_features, n_classes, hidden and n_layers must be >= 1, got {n_features}, {n_classes}, {hidden}, {n_layers}")
        if not 0.0 <= zoneout < 1.0:
            raise ValueError(f"bilstm: zoneout must be in [0, 1), got {zoneout}")
        self.config: dict[str, int | float] = dict(
            n_features=int(n_features), n_classes=int(n_classes), hidden=int(hidden), n_layers=int(n_layers),
            zoneout=float(zoneout), dropout=float(dropout),
        )
        self.n_features = int(n_features)
        self.zoneout = float(zoneout)
        self.input_proj = nn.Sequential(nn.Linear(n_features, hidden), nn.LayerNorm(hidden), nn.GELU())
        self.input_dropout = nn.Dropout(dropout)
        # Separate single-layer LSTMs so zoneout can act between the layers.
        self.lstms = nn.ModuleList(
            nn.LSTM(hidden if i == 0 else 2 * hidden, hidden, batch_first=True, bidirectional=True) for i in range(n_layers)
        )
        self.pool = AttentionPool(2 * hidden)
        self.norm = nn.LayerNorm(2 * hidden)
        self.head_dropout = nn.Dropout(dropout)
        self.head = nn.Linear(2 * hidden, n_classes)

    @staticmethod
    def lengths_from_mask(mask: torch.Tensor) -> torch.Tensor:
        """Per-clip length = index of the last True frame + 1, at least 1: ``(B, T) -> (B,)`` int64 on CPU."""
        t = mask.shape[1]
        idx = torch.arange(1, t + 1, device=mask.device)[None, :]
        return (mask.to(torch.int64) * idx).amax(dim=1).clamp(min=1).cpu()

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, C)`` from features ``x (B, T, F)`` and ``mask (B, T)`` (True = real frame)."""
        check_inputs(x, mask, self.n_features, "bilstm")
        mask = mask.to(torch.bool)
        t = x.shape[1]
        lengths = self.lengths_from_mask(mask)
        # Masked frames enter the recurrence as a zero vector, whatever their feature values.
        h = self.input_dropout(self.input_proj(x)) * mask[..., None].to(x.dtype)
        for lstm in self.lstms:
            packed = pack_padded_sequence(h, lengths, batch_first=True, enforce_sorted=False)
            out, _ = lstm(packed)
            h, _ = pad_packed_sequence(out, batch_first=True, total_length=t)
            h = output_zoneout(h, lengths, self.zoneout, self.training)
        pooled = self.norm(self.pool(h, mask))
        return self.head(self.head_dropout(pooled))
