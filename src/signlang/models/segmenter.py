"""The temporal segmenter: tags every frame of a stream O / B / I (outside, a sign begins, inside).

In the spirit of Moryossef et al., *Linguistically Motivated Sign Language Segmentation* (EMNLP
2023 Findings), which tags pose frames BIO. Here a small **causal** network with a short, fixed
**lookahead**: per-frame features (:func:`signlang.features.frames.stream_features`, ``(T, 110)``)
-> standardise -> linear + ReLU -> a uni-directional GRU -> linear -> logits ``(T, 3)``. The output
at frame ``t`` is the tag of frame ``t - lookahead``: the net sees ``lookahead`` frames after the
frame it tags (``lookahead / 30`` s of delay at 30 FPS), and nothing later. Because the GRU is
causal, a stream fed in chunks with the carried state gives exactly the tags of the whole stream:
constant work and memory per frame.

:class:`StreamSegmenter` is the registered estimator (``segmenter:`` section of a training YAML):
the architecture, the decoding rule and the training knobs; ``fit`` builds training streams from
isolated clips (:mod:`signlang.datasets.streams`) and trains the net. :class:`SegmentDecoder` turns
tag probabilities into segments incrementally. The bundle stores it as ``segmenter.safetensors``
plus a manifest entry (:func:`signlang.models.bundle.attach_segmenter`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from signlang.datasets.streams import StreamSource, StreamSpec, TrainingStream, make_training_streams
from signlang.features.frames import FRAME_DIM, stream_features
from signlang.models.registry import register_model
from signlang.models.segment_decoding import FEATURES, SegmentDecoder, decode, segment_f1

class SegmenterNet(nn.Module):
    """``x (B, T, F)`` [+ state ``(layers, B, H)``] -> logits ``(B, T, 3)``, new state."""

    def __init__(self, n_features: int = FRAME_DIM, hidden: int = 64, layers: int = 1, lookahead: int = 4) -> None:
        super().__init__()
        self.config = {"n_features": n_features, "hidden": hidden, "layers": layers, "lookahead": lookahead}
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("std", torch.ones(n_features))
        self.proj = nn.Linear(n_features, hidden)
        self.gru = nn.GRU(hidden, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, 3)

    def initial_state(self, batch: int = 1) -> torch.Tensor:
        return torch.zeros(self.config["layers"], batch, self.config["hidden"])

    def forward(self, x: torch.Tensor, state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if state is None:
            state = self.initial_state(x.shape[0]).to(x)
        h = torch.relu(self.proj((x - self.mean) / self.std))
        out, state = self.gru(h, state)
        return self.head(out), state


@register_model("segmenter", supplied=("seed",), task="frames")
class StreamSegmenter:
    """The registered frame tagger (config section ``segmenter:``; ``enabled`` makes ``signlang train`` fit it).

    Architecture: ``hidden``, ``layers``, ``lookahead`` (:class:`SegmenterNet`). Decoding: ``begin``,
    ``min_frames``, ``max_frames`` (:class:`SegmentDecoder`, frames of the 30 FPS grid). Training:
    ``n_streams`` streams (:mod:`signlang.datasets.streams`, ``idle_classes`` = the no-sign
    recordings, ``extra_data`` = more datasets whose signs - whatever their vocabulary - join the
    streams, e.g. a cross-signer set), cut into chunks of ``chunk`` frames, ``epochs`` of AdamW at
    ``lr``; ``mirror``: probability of a mirrored (left-handed) stream; ``tune_decoder``: choose
    ``begin`` and ``min_frames`` on the validation streams after training (when there are any).
    """

    def __init__(self, enabled: bool = False, hidden: int = 64, layers: int = 1, lookahead: int = 4, begin: float = 0.3,
                 min_frames: int = 6, max_frames: int = 150, n_streams: int = 1000, chunk: int = 128, epochs: int = 6,
                 batch_size: int = 32, lr: float = 3e-3, mirror: float = 0.3, idle_classes: list[str] | None = None,
                 extra_data: list[str] | None = None, tune_decoder: bool = True, seed: int = 0) -> None:
        self.enabled, self.hidden, self.layers, self.lookahead = enabled, hidden, layers, lookahead
        self.begin, self.min_frames, self.max_frames = begin, min_frames, max_frames
        self.n_streams, self.chunk, self.epochs, self.batch_size, self.lr, self.mirror = n_streams, chunk, epochs, batch_size, lr, mirror
        self.idle_classes = ["-"] if idle_classes is None else list(idle_classes)
        self.extra_data = [] if extra_data is None else list(extra_data)
        self.tune_decoder = tune_decoder
        self.seed = seed
        self.decoder_search_: dict[str, Any] | None = None
        self.net_: SegmenterNet | None = None
        self.history_: list[dict[str, float]] = []

    def check_params(self) -> None:
        for name in ("hidden", "layers", "n_streams", "chunk", "epochs", "batch_size", "min_frames", "max_frames"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if self.lookahead < 0 or not 0 < self.begin < 1 or self.lr <= 0 or not 0 <= self.mirror <= 1:
            raise ValueError("lookahead must be >= 0, begin in (0, 1), lr > 0 and mirror in [0, 1]")
        if self.chunk <= self.lookahead:
            raise ValueError(f"chunk ({self.chunk}) must exceed lookahead ({self.lookahead})")

    # --- the decoding rule and streaming use --------------------------------------------------
    def decoder(self) -> SegmentDecoder:
        return SegmentDecoder(self.begin, self.min_frames, self.max_frames)

    def decode_settings(self) -> dict[str, Any]:
        return {"begin": self.begin, "min_frames": self.min_frames, "max_frames": self.max_frames}

    def tag_proba(self, features: np.ndarray) -> np.ndarray:
        """Tag probabilities of a whole stream ``(T, F) -> (T, 3)``, frame ``t`` in row ``t`` (the lookahead undone; the last rows see fewer frames after them)."""
        if self.net_ is None:
            raise ValueError("the segmenter is not fitted")
        L = self.lookahead
        x = np.concatenate([features, np.repeat(features[-1:], L, axis=0)]) if L and len(features) else features
        with torch.no_grad():
            logits, _ = self.net_(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None])
        return torch.softmax(logits[0, L:], -1).numpy()

    def segments(self, frames: np.ndarray) -> list[tuple[int, int]]:
        """Segments ``(start, end)`` (end exclusive) of landmarks ``(T, 75, 3)`` on a 30 FPS grid."""
        return decode(self.tag_proba(stream_features(frames)), **self.decode_settings())

    # --- training -------------------------------------------------------------------------------
    def fit_streams(self, train: Sequence[TrainingStream], val: Sequence[TrainingStream] = (), log: Any = None) -> "StreamSegmenter":
        """Train on training streams; ``val`` streams are scored after every epoch (segment F1 @ IoU 0.5) and the best epoch is kept."""
        self.check_params()
        torch.manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        feats = [stream_features(s.frames) for s in train]
        allf = np.concatenate(feats)
        net = SegmenterNet(FRAME_DIM, self.hidden, self.layers, self.lookahead)
        with torch.no_grad():
            net.mean.copy_(torch.from_numpy(allf.mean(0)))
            net.std.copy_(torch.from_numpy(np.maximum(allf.std(0), 1e-3)))
        counts = np.bincount(np.concatenate([s.tags for s in train]).astype(np.int64), minlength=3).astype(np.float64)
        weight = torch.tensor(np.sqrt(counts.sum() / np.maximum(counts, 1) / 3), dtype=torch.float32)
        L, n = self.lookahead, self.chunk
        X, Y = _chunks(feats, [s.tags for s in train], n, L)
        opt = torch.optim.AdamW(net.parameters(), lr=self.lr, weight_decay=1e-4)
        steps = self.epochs * int(np.ceil(len(X) / self.batch_size))
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.lr, total_steps=max(1, steps), pct_start=0.1)
        loss_fn = nn.CrossEntropyLoss(weight=weight, ignore_index=-1)
        best: tuple[float, dict[str, torch.Tensor]] | None = None
        self.history_ = []
        for epoch in range(self.epochs):
            t0 = time.perf_counter()
            net.train()
            order = rng.permutation(len(X))
            total = 0.0
            for k in range(0, len(order), self.batch_size):
                b = order[k: k + self.batch_size]
                logits, _ = net(torch.from_numpy(X[b]))
                loss = loss_fn(logits.reshape(-1, 3), torch.from_numpy(Y[b]).reshape(-1))
                opt.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(net.parameters(), 1.0)
                opt.step()
                sched.step()
                total += float(loss.detach()) * len(b)
            net.eval()
            self.net_ = net
            rec: dict[str, float] = {"epoch": epoch + 1, "loss": total / len(X), "seconds": time.perf_counter() - t0}
            if val:
                rec.update(self.score(val))
                if best is None or rec["f1"] > best[0]:
                    best = (rec["f1"], {k: v.clone() for k, v in net.state_dict().items()})
            self.history_.append(rec)
            if log is not None:
                log(json.dumps({k: round(v, 4) for k, v in rec.items()}))
        if best is not None:
            net.load_state_dict(best[1])
        net.eval()
        self.net_ = net
        if val and self.tune_decoder:
            self.decoder_search_ = self.tune_decoding(val)
        return self

    def tune_decoding(self, streams: Sequence[TrainingStream]) -> dict[str, Any]:
        """Choose ``begin`` and ``min_frames`` on (validation) streams by segment F1 @ IoU 0.5; the grid's scores."""
        probs = [self.tag_proba(stream_features(s.frames)) for s in streams]
        truths = [[(a, b) for a, b, *_ in s.segments] for s in streams]
        grid: dict[str, float] = {}
        for begin in (0.2, 0.3, 0.4, 0.5, 0.6):
            for min_frames in (4, 6, 8, 10, 12, 14):
                tp = n_pred = n_true = 0
                for p, true in zip(probs, truths):
                    m, a, b = segment_f1(decode(p, begin=begin, min_frames=min_frames, max_frames=self.max_frames), true)
                    tp, n_pred, n_true = tp + m, n_pred + a, n_true + b
                grid[f"{begin:g}/{min_frames}"] = 2 * tp / max(1, n_pred + n_true)
        key = max(grid, key=lambda k: grid[k])
        self.begin, self.min_frames = float(key.split("/")[0]), int(key.split("/")[1])
        return {"chosen": key, "f1_by_begin_min_frames": grid}

    def score(self, streams: Sequence[TrainingStream]) -> dict[str, float]:
        """Segment precision, recall and F1 at IoU >= 0.5 and the median boundary error (frames) on streams."""
        tp = n_pred = n_true = 0
        errors: list[int] = []
        for s in streams:
            pred = self.segments(s.frames)
            true = [(a, b) for a, b, *_ in s.segments]
            m, p, t = segment_f1(pred, true)
            tp, n_pred, n_true = tp + m, n_pred + p, n_true + t
            for a, b in pred:
                j = min(range(len(true)), key=lambda j: abs(true[j][0] - a) + abs(true[j][1] - b)) if true else None
                if j is not None:
                    errors += [abs(true[j][0] - a), abs(true[j][1] - b)]
        prec, rec = tp / max(1, n_pred), tp / max(1, n_true)
        return {"precision": prec, "recall": rec, "f1": 2 * prec * rec / max(1e-9, prec + rec),
                "boundary_error_frames": float(np.median(errors)) if errors else float("nan")}

    def fit(self, sources: Sequence[StreamSource], val_sources: Sequence[StreamSource] = (), n_val: int = 0, log: Any = None) -> "StreamSegmenter":
        """Build ``n_streams`` training streams from ``sources`` (and ``n_val`` validation streams) and train."""
        spec = StreamSpec(p_mirror=self.mirror)
        train = make_training_streams(sources, self.n_streams, spec=spec, seed=self.seed)
        val = make_training_streams(val_sources, n_val, spec=spec, seed=self.seed + 1) if val_sources and n_val else []
        return self.fit_streams(train, val, log=log)

    # --- bundle ---------------------------------------------------------------------------------
    def to_entry(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        if self.net_ is None:
            raise ValueError("the segmenter is not fitted")
        entry = {"kind": "segmenter", "features": FEATURES, "config": dict(self.net_.config), "decode": self.decode_settings(),
                 "history": self.history_, "decoder_search": self.decoder_search_}
        return entry, {k: v.detach().cpu().contiguous() for k, v in self.net_.state_dict().items()}

    @classmethod
    def from_entry(cls, entry: dict[str, Any], state: dict[str, torch.Tensor]) -> "StreamSegmenter":
        if entry.get("features") != FEATURES:
            raise ValueError(f"segmenter features {entry.get('features')!r}: this signlang computes {FEATURES!r}")
        cfg = dict(entry["config"])
        seg = cls(enabled=True, hidden=int(cfg["hidden"]), layers=int(cfg["layers"]), lookahead=int(cfg["lookahead"]), **entry.get("decode", {}))
        net = SegmenterNet(**cfg)
        net.load_state_dict(state, strict=True)
        seg.net_ = net.eval()
        seg.history_ = list(entry.get("history", []))
        return seg


def _chunks(feats: Sequence[np.ndarray], tags: Sequence[np.ndarray], n: int, lookahead: int) -> tuple[np.ndarray, np.ndarray]:
    """Training chunks ``X (N, n, F)``, targets ``Y (N, n)`` with ``Y[:, t] = tag[t - lookahead]`` (-1 where none)."""
    xs, ys = [], []
    for f, tg in zip(feats, tags):
        y = np.concatenate([np.full(lookahead, -1), tg.astype(np.int64)])[: len(tg)]
        for a in range(0, max(1, len(f) - n + 1), n // 2):
            xf, yf = f[a: a + n], y[a: a + n]
            if len(xf) < n:
                pad = n - len(xf)
                xf = np.concatenate([xf, np.repeat(xf[-1:], pad, 0)])
                yf = np.concatenate([yf, np.full(pad, -1)])
            xs.append(xf)
            ys.append(yf)
    return np.stack(xs).astype(np.float32), np.stack(ys).astype(np.int64)

