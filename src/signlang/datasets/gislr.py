"""Kaggle "Isolated Sign Language Recognition" (GISLR) parquet datasets: read and write.

The competition's layout, under a root folder::

    ROOT/train.csv                          path, participant_id, sequence_id, sign
    ROOT/train_landmark_files/<participant_id>/<sequence_id>.parquet
    ROOT/sign_to_prediction_index_map.json  {"sign": index, ...} (the class order)

Each parquet holds one sequence in long format, one row per frame and point: ``frame``,
``row_id`` (``"<frame>-<type>-<landmark_index>"``), ``type`` (``face``, ``left_hand``, ``pose``,
``right_hand``), ``landmark_index``, ``x``, ``y``, ``z``; 543 points per frame (face 468, left
hand 21, pose 33, right hand 21), NaN where not detected. Reading keeps the 75 pose/hand points
(:data:`signlang.landmarks.layout.KAGGLE_TO_75`), a point without a row is NaN, the face is
dropped; ``participant_id`` becomes the signer (so ``--split signer`` works).

Needs pyarrow (``pip install "signlang[parquet]"``).
"""

from __future__ import annotations

import csv
import io
import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from signlang._io import atomic_write
from signlang.datasets.clip import ClipSet
from signlang.landmarks.layout import KAGGLE_PART_SLICES, N_COORDS, N_KAGGLE_POINTS, from_543, to_543

PathLike = str | os.PathLike[str]

TRAIN_CSV = "train.csv"
SIGN_MAP = "sign_to_prediction_index_map.json"
LANDMARK_DIR = "train_landmark_files"
CSV_COLUMNS = ("path", "participant_id", "sequence_id", "sign")
PARQUET_COLUMNS = ("frame", "row_id", "type", "landmark_index", "x", "y", "z")
TYPE_ORDER = ("face", "left_hand", "pose", "right_hand")
"""The order of the parts within one frame, as in the competition files (and the 543 points)."""


def _pyarrow() -> tuple[Any, Any]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:  # pragma: no cover - depends on the optional extra
        raise ValueError('reading/writing GISLR parquet needs pyarrow: pip install "signlang[parquet]"') from exc
    return pa, pq


def is_gislr_root(path: Path) -> bool:
    """``path`` is a GISLR folder (holds ``train.csv``) or its ``train.csv`` itself."""
    if path.is_dir():
        return (path / TRAIN_CSV).is_file()
    return path.is_file() and path.name == TRAIN_CSV


def read_sequence(path: PathLike) -> np.ndarray:
    """One long-format parquet -> ``(T, 543, 3)`` float32 in Kaggle's point order, NaN = missing.

    Frames are the sorted distinct ``frame`` values; a point without a row stays NaN. Raises
    ``ValueError`` naming the file for a missing column, an unknown ``type`` or an index out of range.
    """
    _, pq = _pyarrow()
    p = Path(path)
    try:
        table = pq.read_table(p, columns=["frame", "type", "landmark_index", "x", "y", "z"])
    except (OSError, ValueError, KeyError) as exc:  # pyarrow raises ArrowInvalid (a ValueError) for bad files
        raise ValueError(f"{p}: not a readable GISLR parquet ({' '.join(str(exc).split())})") from exc
    frame = table.column("frame").to_numpy(zero_copy_only=False).astype(np.int64)
    types = table.column("type").to_numpy(zero_copy_only=False).astype(str)
    index = table.column("landmark_index").to_numpy(zero_copy_only=False).astype(np.int64)
    xyz = np.stack([table.column(c).to_numpy(zero_copy_only=False) for c in ("x", "y", "z")], axis=-1).astype(np.float32)
    type_names, type_of_row = np.unique(types, return_inverse=True)
    unknown = [t for t in type_names if t not in KAGGLE_PART_SLICES]
    if unknown:
        raise ValueError(f"{p}: column 'type' has {unknown[0]!r}; expected one of {list(TYPE_ORDER)}")
    start = np.array([KAGGLE_PART_SLICES[t].start for t in type_names], dtype=np.int64)[type_of_row]
    size = np.array([KAGGLE_PART_SLICES[t].stop - KAGGLE_PART_SLICES[t].start for t in type_names], dtype=np.int64)[type_of_row]
    bad_index = (index < 0) | (index >= size)
    if bad_index.any():
        i = int(np.flatnonzero(bad_index)[0])
        raise ValueError(f"{p}: landmark_index {index[i]} out of range for type {types[i]!r} (0..{size[i] - 1})")
    frames, row_frame = np.unique(frame, return_inverse=True)
    out = np.full((len(frames), N_KAGGLE_POINTS, N_COORDS), np.nan, dtype=np.float32)
    out[row_frame, start + index] = xyz
    return out


def _sequence_table(points: np.ndarray) -> Any:
    """``(T, 543, 3)`` -> the competition's long-format table (one row per frame and point)."""
    pa, _ = _pyarrow()
    n_frames = points.shape[0]
    point_type = np.empty(N_KAGGLE_POINTS, dtype=object)
    point_index = np.empty(N_KAGGLE_POINTS, dtype=np.int16)
    for t in TYPE_ORDER:
        part = KAGGLE_PART_SLICES[t]
        point_type[part] = t
        point_index[part] = np.arange(part.stop - part.start)
    frame = np.repeat(np.arange(n_frames, dtype=np.int16), N_KAGGLE_POINTS)
    types = np.tile(point_type, n_frames)
    index = np.tile(point_index, n_frames)
    row_id = [f"{f}-{t}-{i}" for f, t, i in zip(frame.tolist(), types.tolist(), index.tolist())]
    flat = points.reshape(-1, N_COORDS).astype(np.float64)
    return pa.table({
        "frame": frame, "row_id": row_id, "type": types.astype(str), "landmark_index": index,
        "x": flat[:, 0], "y": flat[:, 1], "z": flat[:, 2],
    })


def _read_train_csv(csv_path: Path) -> list[dict[str, str]]:
    try:
        with open(csv_path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise ValueError(f"{csv_path}: missing column(s) {missing}; a GISLR train.csv has {list(CSV_COLUMNS)}")
            return list(reader)
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{csv_path}: not a readable CSV ({exc})") from exc


def _read_sign_map(root: Path, signs: list[str]) -> tuple[str, ...]:
    """The class order: the JSON map's indices when present, else the sorted signs of train.csv."""
    path = root / SIGN_MAP
    if not path.is_file():
        return tuple(sorted(set(signs)))
    try:
        mapping = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(mapping, dict) or sorted(mapping.values()) != list(range(len(mapping))):
            raise ValueError("expected {sign: index} with indices 0..N-1")
    except (ValueError, OSError) as exc:
        raise ValueError(f"{path}: not a sign -> index map ({exc})") from exc
    return tuple(sorted(mapping, key=mapping.__getitem__))


def load_gislr(path: PathLike) -> ClipSet:
    """Load a GISLR folder (or its ``train.csv``) as a :class:`ClipSet` of ``(T, 75, 3)`` clips.

    ``participant_id`` -> signer, ``sequence_id`` -> clip id and sequence number, ``path`` ->
    source path, ``sign`` -> label (class order from ``sign_to_prediction_index_map.json``). A row
    whose parquet is missing or unreadable, or whose sign is not in the map, is skipped with a
    warning naming it.
    """
    p = Path(path)
    root = p.parent if p.is_file() else p
    rows = _read_train_csv(root / TRAIN_CSV)
    classes = _read_sign_map(root, [r["sign"] for r in rows])
    index = {c: i for i, c in enumerate(classes)}
    landmarks, kept = [], []
    for n, row in enumerate(rows, start=2):
        where = f"{root / TRAIN_CSV} line {n}"
        try:
            if row["sign"] not in index:
                raise ValueError(f"{where}: sign {row['sign']!r} is not in {SIGN_MAP}")
            file = root / row["path"]
            if not row["path"] or not file.is_file():
                raise ValueError(f"{where}: parquet {row['path']!r} not found under {root}")
            landmarks.append(from_543(read_sequence(file)))
        except ValueError as exc:
            warnings.warn(f"skipping sequence {row.get('sequence_id')!r}: {exc}", RuntimeWarning, stacklevel=2)
            continue
        kept.append(row)
    seq = [r["sequence_id"] for r in kept]
    return ClipSet(
        landmarks=landmarks,
        y=np.array([index[r["sign"]] for r in kept], dtype=np.int64),
        classes=classes,
        clip_ids=np.array(seq, dtype=object),
        signers=np.array([r["participant_id"] or None for r in kept], dtype=object),
        seq_ids=np.array([int(s) if s.lstrip("-").isdigit() else -1 for s in seq], dtype=np.int64),
        paths=np.array([r["path"] for r in kept], dtype=object),
    )


def save_gislr(clips: ClipSet, root: PathLike) -> Path:
    """Write ``clips`` as a GISLR folder (``train.csv``, one parquet per clip, the sign map).

    ``participant_id`` is the clip's signer ("" when unknown); ``sequence_id`` its clip id when
    every clip id is a distinct integer, else its row number. The face points are NaN. Every file
    is written atomically; :func:`load_gislr` reads back the same landmarks, labels and signers.
    """
    _, pq = _pyarrow()
    out = Path(root)
    ids = [str(c) for c in clips.clip_ids]
    numeric = all(c.isdigit() for c in ids) and len(set(ids)) == len(ids)
    rows = []
    for i, lm in enumerate(clips.landmarks):
        signer = "" if clips.signers[i] is None else str(clips.signers[i])
        seq = ids[i] if numeric else str(i)
        rel = f"{LANDMARK_DIR}/{signer or 'unknown'}/{seq}.parquet"
        buf = io.BytesIO()
        pq.write_table(_sequence_table(to_543(lm)), buf)
        with atomic_write(out / rel) as fh:
            fh.write(buf.getvalue())
        rows.append({"path": rel, "participant_id": signer, "sequence_id": seq, "sign": clips.classes[int(clips.y[i])]})
    with atomic_write(out / SIGN_MAP, "w") as fh:
        json.dump({c: i for i, c in enumerate(clips.classes)}, fh)
    with atomic_write(out / TRAIN_CSV, "w") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(CSV_COLUMNS), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return out
