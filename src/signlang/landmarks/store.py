"""The landmark store that ``signlang extract`` writes and the dataset loaders read.

Layout of a store folder ``OUT``::

    OUT/clips/<clip_id>.npz   landmarks (T, 75, 3) float32 NaN=missing, presence (T, 3) bool
                              (pose, left hand, right hand), fps, path (relative to the input
                              root), sha256 of the source, label, signer, split
    OUT/manifest.csv          one row per clip: MANIFEST_COLUMNS
    OUT/errors.csv            path,error for every input that could not be used

Every file is written atomically; the manifest is always rebuilt from the clips that exist, so a
run killed at any point leaves a consistent store once it is run again.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from signlang._io import atomic_write
from signlang.landmarks.layout import N_COORDS, N_POINTS, part_present

MANIFEST_COLUMNS = ("clip_id", "path", "label", "signer", "split", "n_frames", "fps", "hands_detected", "sha256")
ERROR_COLUMNS = ("path", "error")
CLIPS_DIR = "clips"
MANIFEST = "manifest.csv"
ERRORS = "errors.csv"


@dataclass(frozen=True)
class StoredClip:
    """One clip as kept in a store."""

    clip_id: str
    landmarks: np.ndarray  # (T, 75, 3) float32, NaN = not detected
    fps: float
    path: str = ""
    sha256: str = ""
    label: str = ""
    signer: str = ""
    split: str = ""

    @property
    def presence(self) -> np.ndarray:
        """``(T, 3)`` bool: pose, left hand, right hand detected."""
        return part_present(self.landmarks)

    @property
    def hands_detected(self) -> float:
        """Fraction of frames with at least one hand."""
        if self.landmarks.shape[0] == 0:
            return 0.0
        return float(self.presence[:, 1:].any(axis=1).mean())

    def manifest_row(self) -> dict[str, str]:
        return {
            "clip_id": self.clip_id,
            "path": self.path,
            "label": self.label,
            "signer": self.signer,
            "split": self.split,
            "n_frames": str(self.landmarks.shape[0]),
            "fps": f"{self.fps:.6g}",
            "hands_detected": f"{self.hands_detected:.4f}",
            "sha256": self.sha256,
        }


def clip_path(store: str | os.PathLike[str], clip_id: str) -> Path:
    return Path(store) / CLIPS_DIR / f"{clip_id}.npz"


def write_clip(store: str | os.PathLike[str], clip: StoredClip) -> Path:
    """Write one clip atomically to ``store/clips/<clip_id>.npz``."""
    lm = np.asarray(clip.landmarks, dtype=np.float32)
    if lm.ndim != 3 or lm.shape[1:] != (N_POINTS, N_COORDS):
        raise ValueError(f"clip {clip.clip_id}: landmarks must be (T, 75, 3), got {lm.shape}")
    target = clip_path(store, clip.clip_id)
    buf = io.BytesIO()
    np.savez_compressed(
        buf,
        landmarks=lm,
        presence=part_present(lm),
        fps=np.float32(clip.fps),
        path=np.str_(clip.path),
        sha256=np.str_(clip.sha256),
        label=np.str_(clip.label),
        signer=np.str_(clip.signer),
        split=np.str_(clip.split),
    )
    with atomic_write(target) as fh:
        fh.write(buf.getvalue())
    return target


def read_clip(path: str | os.PathLike[str]) -> StoredClip:
    """Read one ``clips/<clip_id>.npz``; a damaged file raises ``ValueError`` naming it."""
    p = Path(path)
    try:
        with np.load(p, allow_pickle=False) as z:
            return StoredClip(
                clip_id=p.stem,
                landmarks=z["landmarks"].astype(np.float32),
                fps=float(z["fps"]),
                path=str(z["path"]),
                sha256=str(z["sha256"]),
                label=str(z["label"]),
                signer=str(z["signer"]),
                split=str(z["split"]),
            )
    except (OSError, KeyError, ValueError) as exc:
        raise ValueError(f"{p}: not a readable landmark clip ({exc})") from exc


def iter_clip_files(store: str | os.PathLike[str]) -> list[Path]:
    """The finished clip files of a store, sorted by clip id (temporaries excluded)."""
    folder = Path(store) / CLIPS_DIR
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.npz") if not p.name.startswith("."))


def rebuild_manifest(store: str | os.PathLike[str]) -> list[dict[str, str]]:
    """Rewrite ``manifest.csv`` from the clip files that exist and return its rows."""
    rows = [read_clip(p).manifest_row() for p in iter_clip_files(store)]
    write_csv(Path(store) / MANIFEST, MANIFEST_COLUMNS, rows)
    return rows


def read_manifest(store: str | os.PathLike[str]) -> list[dict[str, str]]:
    """Rows of ``store/manifest.csv``; a missing or malformed manifest raises ``ValueError``."""
    path = Path(store) / MANIFEST
    if not path.is_file():
        raise ValueError(f"{store}: not a landmark store (no {MANIFEST}); create one with `signlang extract`")
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in ("clip_id", "label") if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}")
        return list(reader)


def write_csv(path: str | os.PathLike[str], columns: tuple[str, ...], rows: list[dict[str, str]]) -> None:
    """Write rows as CSV atomically."""
    with atomic_write(path, "w") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
