"""The one input layer: every format a path can hold, read for training or for prediction.

:data:`FORMATS` lists each format once: how it is recognised (``matches``), the clips in it to
recognise (``clips``: labels not needed) and, where the format carries labels, the labelled
:class:`ClipSet` (``dataset``). :func:`load_dataset` (train, evaluate, benchmarks) and
:func:`read_inputs` (``signlang predict``, ``explain``, ``spot``) both dispatch through it, so a
format added with :func:`register_format` is readable everywhere.

Built-in formats, tried in this order: a ``.npy`` clip (any layout of
:mod:`signlang.landmarks.layout`), an ``.npz`` (``X`` + ``y`` dataset, ``X`` alone, or a store clip
with ``landmarks``), a ``.pose`` file, a video (any container FFmpeg reads), a landmark store folder,
a Kaggle GISLR folder, and a folder of videos / ``.pose`` files (walked recursively).

Videos are not decoded here: an :class:`Item` of a video carries its path, and :func:`with_landmarks`
turns it into landmarks through the one extraction function
(:class:`signlang.landmarks.extract.Landmarker`) when the caller reaches it, so a bad video fails
alone and the Predictor only ever receives landmarks.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from signlang._registry import Registry
from signlang.datasets.clip import ClipSet
from signlang.datasets.gislr import is_gislr_root, load_gislr
from signlang.datasets.loaders import load_npz, load_pose_file, load_store, read_npz_clips
from signlang.landmarks.layout import as_landmarks
from signlang.landmarks.store import CLIPS_DIR, MANIFEST, clip_path, read_clip, read_manifest
from signlang.landmarks.video import VIDEO_EXTENSIONS

PathLike = str | os.PathLike[str]


@dataclass
class Item:
    """One clip to recognise: where it came from, its id, and its landmarks ``(T, 75, 3)``.

    ``landmarks`` is None for a video (or ``.pose`` file) not read yet (``video`` is set; see
    :func:`with_landmarks`) or for a clip that could not be read (``error`` says why, naming the
    file, and its ``code`` the kind, e.g. ``unreadable_video``; the other clips of the batch go on). ``fps``: the frame rate when the input states one;
    ``timings_ms``: decode / landmarks time of a video.
    """

    input: str
    clip_id: str
    landmarks: np.ndarray | None = None
    video: Path | None = None
    error: ValueError | None = None
    fps: float | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """How errors name the item: the file, plus the clip id when the file holds several clips."""
        single = self.video is not None or Path(self.input).stem == self.clip_id
        return self.input if single else f"{self.input} [{self.clip_id}]"


@dataclass(frozen=True)
class Format:
    """One input format: ``matches(path)``; ``clips(path)`` -> items to recognise; ``dataset(path)`` ->
    a labelled :class:`ClipSet` (None: the format holds no labels, so it cannot be trained on)."""

    name: str
    description: str
    matches: Callable[[Path], bool]
    clips: Callable[[Path], list[Item]]
    dataset: Callable[[Path], ClipSet] | None = None


FORMATS: Registry[Format] = Registry("input format")


def register_format(fmt: Format) -> Format:
    """Add a format to :data:`FORMATS` (tried in registration order; a folder of videos matches last)."""
    return FORMATS.register(fmt.name, fmt)


# --------------------------------------------------------------------------------------------
# clips to recognise, per format
# --------------------------------------------------------------------------------------------


def _npy_clips(path: Path) -> list[Item]:
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise ValueError(f"{path}: not a readable .npy array ({exc})") from exc
    return [Item(str(path), path.stem, as_landmarks(arr, name=str(path)))]


def _npz_clips(path: Path) -> list[Item]:
    """A store clip (``landmarks``, its ``fps``) or the rows of ``X`` (``lengths``, ``clip_id`` and ``fps`` when present)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = set(z.files)
            fps = float(z["fps"]) if "fps" in keys and np.asarray(z["fps"]).size == 1 else None
    except (OSError, ValueError, EOFError) as exc:
        raise ValueError(f"{path}: not a readable .npz ({exc})") from exc
    if "landmarks" in keys and "X" not in keys:
        clip = read_clip(path)
        return [Item(str(path), clip.clip_id, clip.landmarks, fps=clip.fps)]
    if "X" not in keys:
        raise ValueError(f"{path}: expected an array 'X' (clips) or 'landmarks' (one store clip); the file has {sorted(keys)}")
    return [Item(str(path), cid, lm, fps=fps) for cid, lm in read_npz_clips(path)]


def _lazy_clip(path: Path) -> list[Item]:
    """A video or ``.pose`` file: read later, by the caller's :class:`~signlang.landmarks.extract.Landmarker`."""
    return [Item(str(path), path.stem, video=path)]


def _store_clips(path: Path) -> list[Item]:
    """Every clip of a landmark store, labelled or not (a missing or damaged clip file is that item's error)."""
    items = []
    for i, row in enumerate(read_manifest(path)):
        cid = row.get("clip_id", "")
        try:
            if not cid:
                raise ValueError(f"{path}: manifest row {i + 1} has an empty clip_id")
            file = clip_path(path, cid)
            if not file.is_file():
                raise ValueError(f"{file}: listed in the manifest but missing")
            clip = read_clip(file)
            items.append(Item(str(path), cid, clip.landmarks, fps=clip.fps))
        except ValueError as exc:
            items.append(Item(str(path), cid or f"row-{i + 1}", error=exc))
    return items


def _gislr_clips(path: Path) -> list[Item]:
    clips = load_gislr(path)
    return [Item(str(path), str(cid), lm) for cid, lm in zip(clips.clip_ids, clips.landmarks)]


def _video_folder_clips(path: Path) -> list[Item]:
    from signlang.landmarks.sources import find_videos

    found = find_videos(path)
    if not found:
        raise ValueError(f"{path}: the folder holds no videos, .pose files or landmark store")
    return [Item(str(p), p.stem, video=p) for p in found]  # read one by one: a bad file never stops the rest


def _is_file(*suffixes: str) -> Callable[[Path], bool]:
    wanted = frozenset(suffixes)
    return lambda p: p.is_file() and p.suffix.lower() in wanted


def _is_store(p: Path) -> bool:
    return p.is_dir() and ((p / MANIFEST).is_file() or (p / CLIPS_DIR).is_dir())


register_format(Format("npy", "a .npy clip (T, 75, 3) or any landmark layout", _is_file(".npy"), _npy_clips))
register_format(Format("npz", "a .npz with X (and y to train), or a store clip with landmarks", _is_file(".npz"), _npz_clips, load_npz))
register_format(Format("pose", "a MediaPipe Holistic .pose file (pose-format)", _is_file(".pose"), _lazy_clip, load_pose_file))
register_format(Format("video", "a video file (mp4, mov, avi, mkv, webm, ...)", _is_file(*VIDEO_EXTENSIONS), _lazy_clip))
register_format(Format("store", "a landmark store folder (manifest.csv + clips/)", _is_store, _store_clips, load_store))
register_format(Format("gislr", "a Kaggle GISLR folder (train.csv + one long-format parquet per sequence) or its train.csv",
                       is_gislr_root, _gislr_clips, load_gislr))
register_format(Format("videos", "a folder of videos or .pose files (walked recursively)", Path.is_dir, _video_folder_clips))


# --------------------------------------------------------------------------------------------
# dispatch
# --------------------------------------------------------------------------------------------


def find_format(path: PathLike) -> Format:
    """The first format of :data:`FORMATS` that ``path`` matches; ``ValueError`` naming the path otherwise."""
    p = Path(path)
    if not p.exists():
        raise ValueError(f"{p}: no such file or folder")
    for fmt in FORMATS.values():
        if fmt.matches(p):
            return fmt
    kinds = "; ".join(f"{f.name}: {f.description}" for f in FORMATS.values())
    raise ValueError(f"{p}: not a dataset or input this toolkit can read (expected one of: {kinds})")


def load_dataset(path: PathLike) -> ClipSet:
    """The labelled clips in ``path`` (``.npz``, store folder, ``.pose`` file, GISLR folder, ...) via :data:`FORMATS`."""
    p = Path(path)
    fmt = find_format(p)
    if fmt.dataset is None:
        kinds = "; ".join(f"{f.name}: {f.description}" for f in FORMATS.values() if f.dataset is not None)
        raise ValueError(f"{p}: not a dataset ({fmt.description} holds no labels; extract videos first with "
                         f"`signlang extract`). Datasets are: {kinds}")
    return fmt.dataset(p)


def read_inputs(path: PathLike) -> list[Item]:
    """Every clip in ``path`` to recognise, labels not needed (videos are read later: :func:`with_landmarks`)."""
    p = Path(path)
    return find_format(p).clips(p)


def with_landmarks(items: Iterable[Item], landmarker: Callable[[Path], object]) -> Iterator[Item]:
    """``items`` with each video / ``.pose`` item's landmarks filled in by ``landmarker`` (a
    :class:`~signlang.landmarks.extract.Landmarker`), lazily and one at a time; a file that cannot be read
    becomes that item's ``error`` (naming it) and never stops the rest."""
    for item in items:
        if item.video is not None and item.landmarks is None and item.error is None:
            try:
                got = landmarker(item.video)
            except ValueError as exc:
                item.error = exc
            else:
                item.landmarks = got.landmarks  # type: ignore[attr-defined]
                item.fps = got.fps  # type: ignore[attr-defined]
                item.timings_ms = dict(got.timings_ms)  # type: ignore[attr-defined]
        yield item
