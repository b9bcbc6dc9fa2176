"""Training streams from isolated clips: clips strung together the way people sign, with frame targets.

A stream is built from one :class:`StreamSource` (a set of clips of one recording setup; a person
when the clips name their signers) as:

``idle | sign | transition [| idle | transition] | sign | ... | idle``

* **signs**: random clips of the source's sign classes, each resampled to ``1 / speed`` of its
  length, ``speed`` uniform in ``speed`` (0.6-1.6x);
* **idle stretches** (with probability ``p_idle`` between two signs, always at both ends): a real
  recording of the vocabulary's no-sign class (``idle_classes``, e.g. traduttore's ``-``) at a random
  speed, or a *still* stretch - the neighbouring clip's own first or last frame held, with a small
  tremor - of ``still_frames`` frames;
* **transitions**: the hands move from the last frame of one part to the first frame of the next
  along an eased path (smoothstep) with a small random arc, ``transition_frames`` frames long (a
  part missing at one end is held from the other end);
* **whole-stream variations**: mirrored (a left-handed signer / a mirrored webcam; x -> 1 - x and
  left/right swapped) with probability ``p_mirror``; up to ``max_drop`` of the frames dropped, each
  replaced by the previous kept frame (what a streaming recognizer's time grid does with a gap).

Targets per frame: ``tags`` (``O``=0 outside, ``B``=1 first frame of a sign, ``I``=2 inside) and
``labels`` (the sign's index into the source's classes, -1 outside). ``segments`` lists every sign
as ``(start, end, label, clip_index, n_frames)`` with ``frames[start:end]`` exactly the inserted
(resampled, possibly mirrored) clip: the targets line up with the frames.

Everything is seeded by ``seed``; all per-clip work is numpy on whole arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from signlang.datasets.clip import ClipSet
from signlang.landmarks.layout import MIRROR_PERMUTATION

TAG_O, TAG_B, TAG_I = 0, 1, 2
TAGS = ("O", "B", "I")


@dataclass(frozen=True)
class StreamSpec:
    """How streams are built (frame counts at the stream's 30 FPS grid)."""

    n_signs: tuple[int, int] = (2, 8)
    speed: tuple[float, float] = (0.6, 1.6)
    p_idle: float = 0.5  # an idle stretch between two signs (else back to back)
    p_real_idle: float = 0.5  # an idle stretch is a real no-sign recording (else a still stretch)
    still_frames: tuple[int, int] = (4, 30)
    transition_frames: tuple[int, int] = (1, 12)
    p_mirror: float = 0.3
    max_drop: float = 0.15

    def __post_init__(self) -> None:
        lo, hi = self.n_signs
        if not 1 <= lo <= hi:
            raise ValueError(f"StreamSpec.n_signs must be 1 <= lo <= hi, got {self.n_signs}")
        if not 0 < self.speed[0] <= self.speed[1]:
            raise ValueError(f"StreamSpec.speed must be 0 < lo <= hi, got {self.speed}")
        for name in ("p_idle", "p_real_idle", "p_mirror", "max_drop"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"StreamSpec.{name} must be in [0, 1], got {getattr(self, name)}")
        if not 1 <= self.still_frames[0] <= self.still_frames[1] or not 1 <= self.transition_frames[0] <= self.transition_frames[1]:
            raise ValueError("StreamSpec.still_frames and transition_frames must be 1 <= lo <= hi")


@dataclass
class StreamSource:
    """Clips ``idx`` of ``clips`` to build streams from; classes named in ``idle_classes`` are the no-sign recordings."""

    clips: ClipSet
    idx: np.ndarray
    idle_classes: Sequence[str] = ("-",)
    name: str = ""

    def __post_init__(self) -> None:
        self.idx = np.asarray(self.idx, dtype=np.int64)
        idle = {i for i, c in enumerate(self.clips.classes) if c in set(self.idle_classes)}
        y = self.clips.y[self.idx]
        is_idle = np.isin(y, list(idle))
        self.sign_idx = self.idx[~is_idle]
        self.idle_idx = self.idx[is_idle]
        if not len(self.sign_idx):
            raise ValueError(f"stream source {self.name or '?'}: no sign clips among the {len(self.idx)} given")
        signers = self.clips.signers[self.sign_idx]
        known = np.array([s is not None and s != "" for s in signers])
        self.signer_groups: list[np.ndarray] = (
            [self.sign_idx[signers == s] for s in np.unique(signers[known].astype(str))] if known.all() else [self.sign_idx])


@dataclass
class TrainingStream:
    """One stream: ``frames (T, 75, 3)``, ``tags (T,)`` int8 BIO, ``labels (T,)`` int16 (-1 outside)."""

    frames: np.ndarray
    tags: np.ndarray
    labels: np.ndarray
    segments: list[tuple[int, int, int, int, int]] = field(default_factory=list)  # (start, end, label, clip index, frames)
    mirrored: bool = False
    dropped: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # frame indices replaced by the previous frame
    source: str = ""


def resample(clip: np.ndarray, n: int) -> np.ndarray:
    """Linear resampling of ``(T, 75, 3)`` to ``n`` frames; a point missing at either neighbour takes the nearer one."""
    t = np.linspace(0.0, len(clip) - 1, n)
    lo = np.floor(t).astype(np.int64)
    hi = np.minimum(lo + 1, len(clip) - 1)
    w = (t - lo)[:, None, None].astype(np.float32)
    mix = (1 - w) * clip[lo] + w * clip[hi]
    near = np.where(w < 0.5, clip[lo], clip[hi])
    return np.where(np.isnan(mix), near, mix).astype(np.float32)


def transition(a: np.ndarray, b: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` frames moving from frame ``a (75, 3)`` to frame ``b`` on an eased path with a small arc."""
    s = np.linspace(0.0, 1.0, n + 2)[1:-1]
    ease = (s * s * (3 - 2 * s)).astype(np.float32)[:, None, None]
    a2 = np.where(np.isnan(a), b, a)
    b2 = np.where(np.isnan(b), a, b)
    path = (1 - ease) * a2[None] + ease * b2[None]
    arc = np.zeros(3, np.float32)
    arc[:2] = rng.normal(0.0, 0.03, 2)
    path = path + (np.sin(np.pi * s)[:, None, None] * arc).astype(np.float32)
    return path.astype(np.float32)


def still(frame: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` frames holding ``frame (75, 3)`` with a small tremor (NaN stays NaN)."""
    return (frame[None] + rng.normal(0.0, 0.002, (n,) + frame.shape)).astype(np.float32)


def mirror_image(frames: np.ndarray) -> np.ndarray:
    """Mirror image of image-coordinate landmarks ``(..., 75, 3)``: x -> 1 - x, left and right swapped."""
    out = np.array(frames[..., MIRROR_PERMUTATION, :], copy=True)
    out[..., 0] = 1.0 - out[..., 0]
    return out


def make_stream(source: StreamSource, spec: StreamSpec, rng: np.random.Generator) -> TrainingStream:
    """One training stream from ``source`` (see the module docstring)."""
    lm = source.clips.landmarks
    group = source.signer_groups[int(rng.integers(len(source.signer_groups)))]
    n_signs = int(rng.integers(spec.n_signs[0], spec.n_signs[1] + 1))
    chosen = rng.choice(group, n_signs, replace=len(group) < n_signs)
    parts: list[np.ndarray] = []
    kinds: list[int] = []  # -1 = outside, else the index into chosen
    clips = [resample(lm[i], max(4, round(len(lm[i]) / rng.uniform(*spec.speed)))) for i in chosen]

    def idle(neighbour: np.ndarray) -> np.ndarray:
        if len(source.idle_idx) and rng.random() < spec.p_real_idle:
            rec = lm[int(rng.choice(source.idle_idx))]
            return resample(rec, max(4, round(len(rec) / rng.uniform(*spec.speed))))
        return still(neighbour, int(rng.integers(spec.still_frames[0], spec.still_frames[1] + 1)), rng)

    def add(part: np.ndarray, kind: int) -> None:
        if parts:
            parts.append(transition(parts[-1][-1], part[0], int(rng.integers(spec.transition_frames[0], spec.transition_frames[1] + 1)), rng))
            kinds.append(-1)
        parts.append(part)
        kinds.append(kind)

    add(idle(clips[0][0]), -1)
    for k, clip in enumerate(clips):
        if k and rng.random() < spec.p_idle:
            add(idle(clips[k - 1][-1] if rng.random() < 0.5 else clip[0]), -1)
        add(clip, k)
    add(idle(clips[-1][-1]), -1)

    lengths = np.array([len(p) for p in parts])
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    frames = np.concatenate(parts).astype(np.float32)
    tags = np.zeros(len(frames), np.int8)
    labels = np.full(len(frames), -1, np.int16)
    segments = []
    for kind, a, n in zip(kinds, starts, lengths):
        if kind < 0:
            continue
        i = int(chosen[kind])
        tags[a] = TAG_B
        tags[a + 1: a + n] = TAG_I
        labels[a: a + n] = source.clips.y[i]
        segments.append((int(a), int(a + n), int(source.clips.y[i]), i, int(n)))
    mirrored = bool(rng.random() < spec.p_mirror)
    if mirrored:
        frames = mirror_image(frames)
    dropped = np.zeros(0, np.int64)
    if spec.max_drop > 0:
        frac = rng.uniform(0, spec.max_drop)
        dropped = np.flatnonzero(rng.random(len(frames)) < frac)
        dropped = dropped[dropped > 0]
        if len(dropped):  # each dropped frame repeats the last kept one
            keep = np.ones(len(frames), bool)
            keep[dropped] = False
            last_kept = np.maximum.accumulate(np.where(keep, np.arange(len(frames)), 0))
            frames = frames[last_kept]
    return TrainingStream(frames, tags, labels, segments, mirrored, dropped, source.name)


def make_training_streams(sources: Sequence[StreamSource], n_streams: int, *, spec: StreamSpec | None = None,
                          seed: int = 0, weights: Sequence[float] | None = None) -> list[TrainingStream]:
    """``n_streams`` streams, each from one of ``sources`` (drawn with probabilities ``weights``, default equal)."""
    if not sources:
        raise ValueError("make_training_streams: no sources")
    spec = spec or StreamSpec()
    rng = np.random.default_rng(seed)
    p = None if weights is None else np.asarray(weights, float) / np.sum(weights)
    which = rng.choice(len(sources), n_streams, p=p)
    return [make_stream(sources[int(k)], spec, rng) for k in which]
