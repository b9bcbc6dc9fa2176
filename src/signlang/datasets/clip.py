"""The data model of a dataset: clips of landmarks with labels, signers and ids.

A clip is ``(T, 75, 3)`` float32 landmarks (NaN = not detected, layout in
:mod:`signlang.landmarks.layout`) plus a label, a clip id and optional signer, sequence number
and split tag. Clips in a :class:`ClipSet` may differ in length, so the landmarks are kept as a
list, while the per-clip metadata are columns (numpy arrays) that index and subset together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from signlang.landmarks.layout import as_landmarks


@dataclass(frozen=True)
class Clip:
    """One isolated sign: landmarks ``(T, 75, 3)`` and what is known about them."""

    landmarks: np.ndarray
    label: str | None
    clip_id: str
    signer: str | None = None
    seq_id: int | None = None
    split: str | None = None
    path: str | None = None

    @property
    def n_frames(self) -> int:
        return int(self.landmarks.shape[0])


@dataclass
class ClipSet:
    """A labelled collection of clips of possibly different lengths.

    ``y[i]`` indexes ``classes``; ``signers``/``seq_ids``/``splits`` hold ``None``/-1/"" where
    unknown. ``classes`` is the vocabulary (sorted unless the source fixes an order).
    ``paths`` holds each clip's source path relative to its dataset root ("" where unknown); the
    INCLUDE-50 split matches on it.
    """

    landmarks: list[np.ndarray]
    y: np.ndarray
    classes: tuple[str, ...]
    clip_ids: np.ndarray
    signers: np.ndarray = field(default=None)  # type: ignore[assignment]
    seq_ids: np.ndarray = field(default=None)  # type: ignore[assignment]
    splits: np.ndarray = field(default=None)  # type: ignore[assignment]
    paths: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        n = len(self.landmarks)
        self.y = np.asarray(self.y, dtype=np.int64)
        self.clip_ids = np.asarray(self.clip_ids, dtype=object)
        self.signers = np.full(n, None, dtype=object) if self.signers is None else np.asarray(self.signers, dtype=object)
        self.seq_ids = np.full(n, -1, dtype=np.int64) if self.seq_ids is None else np.asarray(self.seq_ids, dtype=np.int64)
        self.splits = np.full(n, "", dtype=object) if self.splits is None else np.asarray(self.splits, dtype=object)
        self.paths = np.full(n, "", dtype=object) if self.paths is None else np.asarray(self.paths, dtype=object)
        self.classes = tuple(str(c) for c in self.classes)
        for name in ("y", "clip_ids", "signers", "seq_ids", "splits", "paths"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"ClipSet: column {name!r} has {len(getattr(self, name))} rows but there are {n} clips")
        if n and (self.y.min() < 0 or self.y.max() >= len(self.classes)):
            raise ValueError(f"ClipSet: labels must index the {len(self.classes)} classes, got range {self.y.min()}..{self.y.max()}")
        self.landmarks = [as_landmarks(lm, name=f"clip {cid}") for lm, cid in zip(self.landmarks, self.clip_ids)]

    def __len__(self) -> int:
        return len(self.landmarks)

    def __getitem__(self, i: int) -> Clip:
        signer = self.signers[i]
        return Clip(
            landmarks=self.landmarks[i],
            label=self.classes[int(self.y[i])],
            clip_id=str(self.clip_ids[i]),
            signer=None if signer is None else str(signer),
            seq_id=None if self.seq_ids[i] < 0 else int(self.seq_ids[i]),
            split=str(self.splits[i]) or None,
            path=str(self.paths[i]) or None,
        )

    @property
    def labels(self) -> np.ndarray:
        """Class names per clip, ``(N,)`` object array."""
        return np.asarray(self.classes, dtype=object)[self.y]

    @property
    def lengths(self) -> np.ndarray:
        return np.array([lm.shape[0] for lm in self.landmarks], dtype=np.int64)

    def subset(self, indices: Sequence[int] | np.ndarray) -> "ClipSet":
        """The clips at ``indices`` (same vocabulary)."""
        idx = np.asarray(indices, dtype=np.int64)
        return ClipSet(
            landmarks=[self.landmarks[i] for i in idx],
            y=self.y[idx],
            classes=self.classes,
            clip_ids=self.clip_ids[idx],
            signers=self.signers[idx],
            seq_ids=self.seq_ids[idx],
            splits=self.splits[idx],
            paths=self.paths[idx],
        )

    @classmethod
    def from_clips(cls, clips: Sequence[Clip], classes: Sequence[str] | None = None) -> "ClipSet":
        """Build from :class:`Clip` objects; ``classes`` defaults to the sorted set of labels."""
        vocab = tuple(classes) if classes is not None else tuple(sorted({str(c.label) for c in clips}))
        index = {c: i for i, c in enumerate(vocab)}
        missing = sorted({str(c.label) for c in clips} - set(index))
        if missing:
            raise ValueError(f"labels not in the vocabulary: {missing[:5]}")
        return cls(
            landmarks=[c.landmarks for c in clips],
            y=np.array([index[str(c.label)] for c in clips], dtype=np.int64),
            classes=vocab,
            clip_ids=np.array([c.clip_id for c in clips], dtype=object),
            signers=np.array([c.signer for c in clips], dtype=object),
            seq_ids=np.array([-1 if c.seq_id is None else c.seq_id for c in clips], dtype=np.int64),
            splits=np.array([c.split or "" for c in clips], dtype=object),
            paths=np.array([c.path or "" for c in clips], dtype=object),
        )
