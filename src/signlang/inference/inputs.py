"""What ``signlang predict`` and ``signlang explain`` read: every clip in a path, labels not needed.

A path may be a video (landmarks extracted later, by the predictor), a ``.pose`` file, a ``.npy``
clip ``(T, 75, 3)`` / ``(T, 258)`` / any layout of :mod:`signlang.landmarks.layout`, a
landmark-store clip ``.npz`` (key ``landmarks``), an ``.npz`` of clips (``X``; ``y`` and the other
dataset columns are optional here), a landmark store folder (``manifest.csv``; clips without a
label too), a Kaggle GISLR folder (``train.csv`` + parquet), or a folder of videos / ``.pose``
files (walked recursively, as ``signlang extract`` does). Clips to be recognised have no labels: labels are needed only to train and evaluate.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class Item:
    """One clip to predict: where it came from, its id, and its landmarks ``(T, 75, 3)``.

    ``landmarks`` is None for a video (or ``.pose`` file) read later (``video`` is set), or for a
    clip that could not be read (``error`` says why; the other clips of the batch go on).
    """

    input: str
    clip_id: str
    landmarks: np.ndarray | None = None
    video: Path | None = None
    error: str | None = None


def read_inputs(path: Path) -> list[Item]:
    """All clips in ``path``; ``ValueError`` naming the file when it cannot be used."""
    from signlang.landmarks.layout import as_landmarks
    from signlang.landmarks.video import VIDEO_EXTENSIONS

    path = Path(path)
    if not path.exists():
        raise ValueError(f"{path}: no such file or folder")
    suffix = path.suffix.lower()
    if path.is_file() and suffix == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: not a readable .npy array ({exc})") from exc
        return [Item(str(path), path.stem, as_landmarks(arr, name=str(path)))]
    if path.is_file() and suffix in VIDEO_EXTENSIONS:
        return [Item(str(path), path.stem, video=path)]
    if path.is_file() and suffix == ".pose":
        from signlang.landmarks.posefile import read_pose

        return [Item(str(path), path.stem, read_pose(path)[0])]
    if path.is_file() and suffix == ".npz":
        return _read_npz(path)
    from signlang.datasets.gislr import is_gislr_root

    if is_gislr_root(path):  # a Kaggle GISLR folder (or its train.csv)
        from signlang.datasets.gislr import load_gislr

        clips = load_gislr(path)
        return [Item(str(path), str(cid), lm) for cid, lm in zip(clips.clip_ids, clips.landmarks)]
    if path.is_dir():
        from signlang.landmarks.store import CLIPS_DIR, MANIFEST

        if (path / MANIFEST).is_file() or (path / CLIPS_DIR).is_dir():
            return _read_store(path)
        return _read_video_folder(path)
    raise ValueError(f"{path}: not an input signlang can read (a video, .pose, .npy, .npz, a landmark store "
                     "or a folder of videos)")


def _read_npz(path: Path) -> list[Item]:
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = set(z.files)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable .npz ({exc})") from exc
    if "landmarks" in keys and "X" not in keys:
        from signlang.landmarks.store import read_clip

        clip = read_clip(path)
        return [Item(str(path), clip.clip_id, clip.landmarks)]
    if "X" not in keys:
        raise ValueError(f"{path}: expected an array 'X' (clips) or 'landmarks' (one store clip); the file has {sorted(keys)}")
    from signlang.datasets.loaders import read_npz_clips

    return [Item(str(path), cid, lm) for cid, lm in read_npz_clips(path)]


def _read_store(path: Path) -> list[Item]:
    """Every clip of a landmark store, labelled or not (a missing clip file raises, naming it)."""
    from signlang.landmarks.store import clip_path, read_clip, read_manifest

    items = []
    for i, row in enumerate(read_manifest(path)):
        cid = row.get("clip_id", "")
        try:
            if not cid:
                raise ValueError(f"{path}: manifest row {i + 1} has an empty clip_id")
            file = clip_path(path, cid)
            if not file.is_file():
                raise ValueError(f"{file}: listed in the manifest but missing")
            items.append(Item(str(path), cid, read_clip(file).landmarks))
        except ValueError as exc:
            items.append(Item(str(path), cid or f"row-{i + 1}", error=str(exc)))
    return items


def _read_video_folder(path: Path) -> list[Item]:
    from signlang.landmarks.sources import find_videos

    found = find_videos(path)
    if not found:
        raise ValueError(f"{path}: the folder holds no videos, .pose files or landmark store")
    return [Item(str(p), p.stem, video=p) for p in found]  # read one by one: a bad file never stops the rest
