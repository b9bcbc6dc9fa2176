"""Where extraction inputs come from: finding videos, labels from folders, official splits, clip ids.

Labels come from the folder layout:

* INCLUDE: ``Category/N. Word/video.MOV`` -> ``WORD`` (number and dot removed, upper case,
  spaces -> ``_``); with the official ``normalized_glosses.csv`` mapping the mapping wins
  (``28. Store or Shop`` -> ``SHOP``).
* plain ``label/video.mp4`` -> ``label`` (kept as written); under INCLUDE the nearest numbered folder wins (``Animals/4. Bird/Extra/x.MOV`` -> ``BIRD``).
* a lone file (no folder below the input root) -> its stem's label (``FOOTBALL.mp4`` -> ``FOOTBALL``,
  ``12. Ball.MOV`` -> ``BALL``), or ``""`` when the stem gives nothing.

Splits come from INCLUDE-50's official CSVs (columns ``Category,Word,Video,FilePath``) via
:func:`read_split_csvs`; the datasets stage imports that function for the ``include50:`` split.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath

from signlang.landmarks.video import VIDEO_EXTENSIONS

POSE_EXTENSION = ".pose"
INPUT_EXTENSIONS: frozenset[str] = VIDEO_EXTENSIONS | {POSE_EXTENSION}
SPLIT_NAMES = ("train", "test", "val")

_NUMBERED = re.compile(r"^\s*\d+\s*\.\s*(.+?)\s*$")
_SLUG_BAD = re.compile(r"[^A-Za-z0-9]+")


def normalize_gloss(name: str) -> str:
    """``"12. Football"`` -> ``"FOOTBALL"``, ``"16. train ticket"`` -> ``"TRAIN_TICKET"``.

    Drops a leading ``N.`` number, upper-cases, and turns runs of whitespace into ``_``.
    """
    m = _NUMBERED.match(name)
    word = m.group(1) if m else name.strip()
    return "_".join(word.upper().split())


def read_glosses(path: str | os.PathLike[str]) -> dict[str, str]:
    """Read ``normalized_glosses.csv`` (``actual_gloss,normalized_gloss``) as a folder-name -> gloss map."""
    p = Path(path)
    try:
        with open(p, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            cols = reader.fieldnames or []
            if "actual_gloss" not in cols or "normalized_gloss" not in cols:
                raise ValueError(f"{p}: expected columns actual_gloss,normalized_gloss, got {cols}")
            return {_key(r["actual_gloss"]): r["normalized_gloss"].strip() for r in reader if r["actual_gloss"]}
    except OSError as exc:
        raise ValueError(f"{p}: cannot read the gloss mapping ({exc})") from exc


def _key(folder: str) -> str:
    """Lookup key for a numbered folder name: case- and whitespace-insensitive."""
    return " ".join(folder.split()).casefold()


def label_from_path(rel_path: str | os.PathLike[str], glosses: Mapping[str, str] | None = None) -> str:
    """The label of a clip from its path relative to the input root (see the module docstring)."""
    parts = PurePosixPath(Path(rel_path).as_posix()).parts
    if not parts:
        return ""
    if len(parts) == 1:
        name = PurePosixPath(parts[0]).stem
    else:
        # INCLUDE keeps some videos one folder deeper (``Animals/4. Bird/Extra/MVI_3045.MOV``):
        # the nearest numbered ``N. Word`` folder names the sign; otherwise the parent folder does.
        folders = parts[:-1]
        name = next((f for f in reversed(folders) if _NUMBERED.match(f)), folders[-1])
    if glosses and _key(name) in glosses:
        return glosses[_key(name)]
    if _NUMBERED.match(name):
        return normalize_gloss(name)
    return name.strip()


def _split_name(spec: str) -> tuple[str | None, Path]:
    """``"train=PATH"`` -> ``("train", PATH)``; a plain path -> ``(None, PATH)``."""
    head, sep, tail = spec.partition("=")
    if sep and head.strip().lower() in SPLIT_NAMES:
        return head.strip().lower(), Path(tail)
    return None, Path(spec)


def read_split_csvs(paths: Iterable[str | os.PathLike[str]]) -> dict[str, str]:
    """Map each relative ``FilePath`` (posix, as in the CSV) to its split: ``"train"``/``"test"``/``"val"``.

    Each item is a CSV path whose file name contains ``train``, ``test`` or ``val``, or
    ``"NAME=PATH"`` to name the split. Raises ``ValueError`` naming the file for a missing
    ``FilePath`` column, an unknown split name, or a file listed in two different splits.
    """
    out: dict[str, str] = {}
    for item in paths:
        split, path = _split_name(os.fspath(item))
        if split is None:
            found = [s for s in SPLIT_NAMES if s in path.name.lower()]
            if len(found) != 1:
                raise ValueError(f"{path}: cannot tell the split from the file name; pass it as train=PATH or test=PATH")
            split = found[0]
        try:
            with open(path, newline="", encoding="utf-8-sig") as fh:
                reader = csv.DictReader(fh)
                if "FilePath" not in (reader.fieldnames or []):
                    raise ValueError(f"{path}: no FilePath column (expected Category,Word,Video,FilePath), got {reader.fieldnames}")
                for row in reader:
                    key = PurePosixPath(row["FilePath"].strip().replace("\\", "/")).as_posix()
                    if not key:
                        continue
                    if out.get(key, split) != split:
                        raise ValueError(f"{path}: {key} is listed in both {out[key]!r} and {split!r}")
                    out[key] = split
        except OSError as exc:
            raise ValueError(f"{path}: cannot read the split file ({exc})") from exc
    return out


def split_for(rel_path: str | os.PathLike[str], splits: Mapping[str, str]) -> str:
    """The split of ``rel_path``: the CSV entry equal to it or to its longest matching tail, else ``""``.

    Matching tails lets INPUT be the dataset root or a folder above it.
    """
    parts = PurePosixPath(Path(rel_path).as_posix()).parts
    for i in range(len(parts)):
        hit = splits.get(PurePosixPath(*parts[i:]).as_posix())
        if hit is not None:
            return hit
    return ""


def find_videos(root: str | os.PathLike[str]) -> list[Path]:
    """Videos (and ``.pose`` files) under ``root``, recursively, sorted; hidden files and folders skipped.

    ``root`` may be a single file, which is returned as is. Extensions match case-insensitively.
    """
    r = Path(root)
    if r.is_file():
        return [r]
    if not r.is_dir():
        raise ValueError(f"{r}: no such file or folder")
    found = []
    for dirpath, dirnames, filenames in os.walk(r):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found.extend(
            Path(dirpath) / f for f in filenames if not f.startswith(".") and Path(f).suffix.lower() in INPUT_EXTENSIONS
        )
    return sorted(found)


def relative_path(path: Path, root: Path) -> str:
    """``path`` relative to the input ``root`` (posix); a lone-file input gives its file name."""
    if root.is_file() or path == root:
        return path.name
    return path.relative_to(root).as_posix()


def clip_id_for(rel_path: str) -> str:
    """Stable, filesystem-safe clip id: slug of the relative path + 10 hex digits of its sha1.

    ``"Sports/12. Football/x.MOV"`` -> ``"Sports_12_Football_x_MOV-<hash>"``.
    """
    slug = _SLUG_BAD.sub("_", rel_path).strip("_")[-60:].strip("_") or "clip"
    digest = hashlib.sha1(rel_path.encode("utf-8")).hexdigest()[:10]
    return f"{slug}-{digest}"
