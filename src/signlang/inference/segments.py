"""Stage one of two-stage decoding: the segmenter over a stream's time grid proposes sign segments.

:class:`SegmentSpotter` takes the grid samples ``(75, 3)`` of a stream one by one (or a few at a
time), computes each sample's per-frame features **once** (:class:`~signlang.features.frames.StreamFeaturizer`),
runs the causal tagger with its carried state (:class:`TorchTagger` / :class:`OnnxTagger`: constant
work per sample) and the :class:`~signlang.models.segment_decoding.SegmentDecoder`, and returns the
segments ``(start_k, end_k)`` (grid indices, end exclusive) that closed. It keeps the last
``capacity`` raw samples so that the streaming recognizer can classify a closed segment with the
isolated-sign ensemble (stage two, :mod:`signlang.inference.streaming`). Memory is constant.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from signlang.features.frames import StreamFeaturizer
from signlang.landmarks.layout import N_COORDS, N_POINTS
from signlang.models.segment_decoding import FEATURES, SegmentDecoder

SEGMENTER_ONNX = "segmenter.onnx"


class Tagger(Protocol):
    lookahead: int

    def reset(self) -> None: ...

    def step(self, features: np.ndarray) -> np.ndarray: ...


class _TaggerBase:
    """Shared by the backends: carried state, and the first ``lookahead`` outputs (frames before the stream) dropped."""

    lookahead: int

    def reset(self) -> None:
        self._state = self._zero_state()
        self._skip = self.lookahead
        self._last: np.ndarray | None = None

    def step(self, features: np.ndarray) -> np.ndarray:
        """Features ``(n, F)`` of the next samples -> tag probabilities ``(m, 3)`` of the next frames whose lookahead is complete."""
        if not len(features):
            return np.zeros((0, 3), np.float32)
        probs = self._run(np.ascontiguousarray(features, dtype=np.float32))
        self._last = features[-1]
        drop = min(self._skip, len(probs))
        self._skip -= drop
        return probs[drop:]

    def flush(self) -> np.ndarray:
        """End of stream: tags of the last ``lookahead`` frames (the last features repeated, as offline)."""
        if self._last is None or not self.lookahead:
            return np.zeros((0, 3), np.float32)
        return self.step(np.repeat(self._last[None], self.lookahead, axis=0))


class TorchTagger(_TaggerBase):
    """A fitted :class:`~signlang.models.segmenter.StreamSegmenter` run by PyTorch."""

    def __init__(self, segmenter: Any) -> None:
        self.net = segmenter.net_
        self.lookahead = int(segmenter.lookahead)
        self.reset()

    def _zero_state(self) -> Any:
        return self.net.initial_state(1)

    def _run(self, x: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            logits, self._state = self.net(torch.from_numpy(x)[None], self._state)
            return torch.softmax(logits[0], -1).numpy()


class OnnxTagger(_TaggerBase):
    """The segmenter exported to ONNX (``segmenter.onnx``, entry ``segmenter`` of an export's manifest)."""

    def __init__(self, session: Any, entry: dict[str, Any]) -> None:
        self.session = session
        cfg = entry["config"]
        self.lookahead = int(cfg["lookahead"])
        self._shape = (int(cfg["layers"]), 1, int(cfg["hidden"]))
        self.reset()

    def _zero_state(self) -> Any:
        return np.zeros(self._shape, np.float32)

    def _run(self, x: np.ndarray) -> np.ndarray:
        probs, self._state = self.session.run(["probs", "state_out"], {"x": x[None], "state": self._state})
        return probs[0]


@dataclass
class SegmenterRunner:
    """A loaded segmenter: ``spotter()`` gives each stream its own state (the weights or ONNX session are shared)."""

    make_tagger: Callable[[], Tagger]
    decode: dict[str, Any]
    backend: str

    def spotter(self) -> "SegmentSpotter":
        return SegmentSpotter(self.make_tagger(), self.decode)


def load_segmenter_runner(model_dir: str | Path, threads: int = 1) -> SegmenterRunner | None:
    """The segmenter of a bundle (PyTorch) or of an ONNX export folder (ONNX Runtime); None when it has none."""
    folder = Path(model_dir)
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    entry = manifest.get("segmenter")
    if not entry:
        return None
    if entry.get("features") != FEATURES:
        raise ValueError(f"{folder}: segmenter features {entry.get('features')!r}; this signlang computes {FEATURES!r}")
    if manifest.get("format") == "signlang-onnx":
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        session = ort.InferenceSession(str(folder / entry["file"]), opts, providers=["CPUExecutionProvider"])
        return SegmenterRunner(lambda: OnnxTagger(session, entry), dict(entry["decode"]), "onnx")
    from signlang.models.bundle import load_segmenter

    seg = load_segmenter(folder)
    return SegmenterRunner(lambda: TorchTagger(seg), seg.decode_settings(), "torch")


class SegmentSpotter:
    """Grid samples in, closed segments ``(start_k, end_k)`` out (see the module docstring)."""

    def __init__(self, tagger: Tagger, decode: dict[str, Any], capacity: int | None = None) -> None:
        self.tagger = tagger
        self.decoder = SegmentDecoder(**decode)
        self.capacity = int(capacity or self.decoder.max_frames + tagger.lookahead + 16)
        self._ring = np.full((self.capacity, N_POINTS, N_COORDS), np.nan, np.float32)
        self._real = np.zeros(self.capacity, np.int32)  # real frames whose time falls on each grid sample's interval
        self._features = StreamFeaturizer()
        self._new: list[np.ndarray] = []
        self.reset(0)

    def reset(self, k: int) -> None:
        """Start afresh at grid index ``k`` (a new stream, or after a long pause)."""
        self.tagger.reset()
        self.decoder.reset()
        self._features.reset()
        self._new.clear()
        self.base = k  # grid index of the decoder's frame 0
        self.next_k = k

    @property
    def waiting(self) -> int:
        return len(self._new)

    def add(self, k: int, sample: np.ndarray) -> None:
        """Grid sample ``k`` (``(75, 3)``, NaN = not detected); ``k`` must follow the previous one."""
        if k != self.next_k:
            raise ValueError(f"grid sample {k} does not follow {self.next_k - 1}")
        self._ring[k % self.capacity] = sample
        self._real[k % self.capacity] = 0
        self._new.append(np.array(sample, dtype=np.float32))
        self.next_k = k + 1

    def mark_real(self, k: int) -> None:
        """A real frame arrived at or after grid sample ``k`` (already added), before the next one."""
        if self.next_k - self.capacity <= k < self.next_k:
            self._real[k % self.capacity] += 1

    def real_frames(self, start_k: int, end_k: int) -> int:
        """Real frames that arrived over the samples ``[start_k, end_k)`` still held."""
        ks = np.arange(max(start_k, self.next_k - self.capacity), min(end_k, self.next_k))
        return int(self._real[ks % self.capacity].sum())

    def run(self) -> list[tuple[int, int]]:
        """Tag the samples added since the last run; the segments that closed."""
        if not self._new:
            return []
        x = np.stack(self._new)
        self._new.clear()
        probs = self.tagger.step(self._features(x))
        return [(self.base + a, self.base + b) for a, b in self.decoder.push(probs)]

    def finish(self) -> list[tuple[int, int]]:
        """End of stream (or a long pause): tag the last frames and close the open segment."""
        out = self.run()
        out += [(self.base + a, self.base + b) for a, b in self.decoder.push(self.tagger.flush())]
        return out + [(self.base + a, self.base + b) for a, b in self.decoder.finish()]

    def frames(self, start_k: int, end_k: int) -> np.ndarray:
        """The raw samples ``[start_k, end_k)`` still held ``(n, 75, 3)`` (the oldest beyond ``capacity`` are gone)."""
        ks = np.arange(max(start_k, self.next_k - self.capacity), min(end_k, self.next_k))
        return self._ring[ks % self.capacity]

