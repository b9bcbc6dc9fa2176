"""Dataset readers: ``.npz`` arrays, landmark stores and ``.pose`` files -> :class:`ClipSet`.

Every source becomes the same :class:`ClipSet` (clips ``(T_i, 75, 3)`` float32, NaN = missing),
so the later stages never care where the landmarks came from. Which reader a path needs is
decided in one place, :data:`signlang.datasets.formats.FORMATS` (``load_dataset`` there).

The ``.npz`` format (read by :func:`load_npz`, written by :func:`save_npz`):

* ``X`` ``(N, T, 75, 3)`` landmarks (NaN = not detected) or any other layout of
  :data:`signlang.landmarks.layout.LAYOUTS` with a leading ``N``: ``(N, T, 258)`` community
  vectors, ``(N, T, 1662)`` Holistic with face, ``(N, T, 543, 3)`` Kaggle points (face dropped);
  any float dtype;
* ``y`` ``(N,)`` integer indices into ``classes`` or class-name strings;
* ``classes`` ``(C,)`` strings (optional when ``y`` holds strings: then the sorted names);
* optional ``(N,)`` columns ``signer``, ``seq_id``, ``is_duplicate``, ``clip_id``, ``split``,
  ``path`` and ``lengths`` (frames beyond ``lengths[i]`` are padding and dropped).
"""

from __future__ import annotations

import difflib
import io
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from signlang._io import atomic_write
from signlang.datasets.clip import ClipSet
from signlang.datasets.splits import include50_membership
from signlang.landmarks.layout import N_COORDS, N_POINTS, to_landmarks
from signlang.landmarks.store import MANIFEST, clip_path, read_clip, read_manifest

PathLike = str | os.PathLike[str]


# --------------------------------------------------------------------------------------------
# .npz
# --------------------------------------------------------------------------------------------


def _require_key(path: Path, files: Sequence[str], key: str, what: str) -> None:
    if key in files:
        return
    lowered = {f.lower(): f for f in files}
    close = difflib.get_close_matches(key.lower(), list(lowered), n=1, cutoff=0.5)
    hint = f"; did you mean {lowered[close[0]]!r}?" if close else ""
    raise ValueError(f"{path}: missing array {key!r} ({what}); the file has {sorted(files)}{hint}")


def _column(path: Path, z: np.lib.npyio.NpzFile, key: str, n: int) -> np.ndarray | None:
    """An optional per-clip column, checked to have ``n`` rows."""
    if key not in z.files:
        return None
    col = np.asarray(z[key])
    if col.ndim != 1 or col.shape[0] != n:
        raise ValueError(f"{path}: array {key!r} must have shape ({n},) like 'X', got {col.shape}")
    return col


def _strings_or_none(col: np.ndarray) -> np.ndarray:
    """String column with "" meaning unknown -> object array with ``None``."""
    out = np.asarray([str(v) for v in col], dtype=object)
    out[out == ""] = None
    return out


def load_npz(path: PathLike, *, drop_duplicates: bool = True) -> ClipSet:
    """Load an ``.npz`` dataset (format in the module docstring) as a :class:`ClipSet`.

    Rows flagged ``is_duplicate`` are dropped when ``drop_duplicates``; clip ids default to
    ``f"{stem}-{i:05d}"`` with ``i`` the row in the file, so they stay stable after dropping.
    Missing or malformed arrays raise ``ValueError`` naming the file and the key.
    """
    p = Path(path)
    with _open_npz(p) as z:
        files = list(z.files)
        _require_key(p, files, "X", _X_WHAT)
        _require_key(p, files, "y", "labels (N,)")
        X, landmarks = _npz_landmarks(p, z)
        n = X.shape[0]
        y_raw = _column(p, z, "y", n)
        assert y_raw is not None
        if np.issubdtype(y_raw.dtype, np.integer):
            _require_key(p, files, "classes", "class names (C,) that the integer 'y' indexes")
            classes = tuple(str(c) for c in np.asarray(z["classes"]).ravel())
            y = y_raw.astype(np.int64)
            if n and (y.min() < 0 or y.max() >= len(classes)):
                raise ValueError(f"{p}: array 'y' must index the {len(classes)} classes, got range {y.min()}..{y.max()}")
        elif y_raw.dtype.kind in "US":
            names = np.asarray([str(v) for v in y_raw])
            if "classes" in files:
                classes = tuple(str(c) for c in np.asarray(z["classes"]).ravel())
            else:
                classes = tuple(sorted(set(names.tolist())))
            index = {c: i for i, c in enumerate(classes)}
            unknown = sorted(set(names.tolist()) - set(index))
            if unknown:
                raise ValueError(f"{p}: array 'y' has labels not in 'classes': {unknown[:5]}")
            y = np.array([index[s] for s in names], dtype=np.int64)
        else:
            raise ValueError(f"{p}: array 'y' must hold integers or strings, got dtype {y_raw.dtype}")

        lengths, clip_ids = _npz_lengths_and_ids(p, z, X)
        signer = _column(p, z, "signer", n)
        signers = None if signer is None else _strings_or_none(signer)
        seq = _column(p, z, "seq_id", n)
        seq_ids = None if seq is None else seq.astype(np.int64)
        split = _column(p, z, "split", n)
        splits = None if split is None else np.asarray([str(s) for s in split], dtype=object)
        src = _column(p, z, "path", n)
        paths = None if src is None else np.asarray([str(s) for s in src], dtype=object)
        dup = _column(p, z, "is_duplicate", n)

    keep = np.ones(n, dtype=bool) if (dup is None or not drop_duplicates) else ~dup.astype(bool)
    idx = np.flatnonzero(keep)
    return ClipSet(
        landmarks=[landmarks[i, : lengths[i]] for i in idx],
        y=y[idx],
        classes=classes,
        clip_ids=clip_ids[idx],
        signers=None if signers is None else signers[idx],
        seq_ids=None if seq_ids is None else seq_ids[idx],
        splits=None if splits is None else splits[idx],
        paths=None if paths is None else paths[idx],
    )


_X_WHAT = "landmarks (N, T, 75, 3), (N, T, 258), (N, T, 1662) or (N, T, 543, 3)"


def _npz_landmarks(p: Path, z: np.lib.npyio.NpzFile) -> tuple[np.ndarray, np.ndarray]:
    """``(X as stored, landmarks (N, T, 75, 3) float32)`` of an open ``.npz``."""
    X = np.asarray(z["X"])
    if not np.issubdtype(X.dtype, np.floating):
        raise ValueError(f"{p}: array 'X' must be floating point, got dtype {X.dtype}")
    return X, to_landmarks(X, name=f"{p}: array 'X'", lead=2)


def _open_npz(p: Path) -> np.lib.npyio.NpzFile:
    """``np.load`` of an ``.npz`` (no pickles); ``ValueError`` naming the file when it cannot be read."""
    try:
        return np.load(p, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{p}: not a readable .npz file ({exc})") from exc


def _npz_lengths_and_ids(p: Path, z: np.lib.npyio.NpzFile, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Frames per clip ``(N,)`` (``lengths`` or all of ``T``) and clip ids (``clip_id`` or ``stem-00000``...)."""
    n = X.shape[0]
    lengths = _column(p, z, "lengths", n)
    if lengths is not None:
        lengths = lengths.astype(np.int64)
        if n and (lengths.min() < 0 or lengths.max() > X.shape[1]):
            raise ValueError(f"{p}: array 'lengths' must lie in 0..{X.shape[1]}, got {lengths.min()}..{lengths.max()}")
    else:
        lengths = np.full(n, X.shape[1], dtype=np.int64)
    clip_ids = _column(p, z, "clip_id", n)
    clip_ids = (
        np.asarray([f"{p.stem}-{i:05d}" for i in range(n)], dtype=object)
        if clip_ids is None
        else np.asarray([str(c) for c in clip_ids], dtype=object)
    )
    return lengths, clip_ids


def read_npz_clips(path: PathLike) -> list[tuple[str, np.ndarray]]:
    """``[(clip id, landmarks (T_i, 75, 3))]`` of an ``.npz`` with ``X``: the clips to recognise, so
    labels are not needed (``lengths`` and ``clip_id`` are used when present; duplicates are kept)."""
    p = Path(path)
    with _open_npz(p) as z:
        _require_key(p, list(z.files), "X", _X_WHAT)
        X, landmarks = _npz_landmarks(p, z)
        lengths, clip_ids = _npz_lengths_and_ids(p, z, X)
    return [(str(clip_ids[i]), landmarks[i, : lengths[i]]) for i in range(X.shape[0])]


def save_npz(clips: ClipSet, path: PathLike) -> Path:
    """Write ``clips`` atomically as ``.npz``: ``X`` ``(N, Tmax, 75, 3)`` NaN-padded + ``lengths``.

    :func:`load_npz` reads it back to an equal :class:`ClipSet` (ids, signers, seq ids, splits,
    paths included). Returns the written path.
    """
    target = Path(path)
    n = len(clips)
    lengths = clips.lengths
    t_max = int(lengths.max()) if n else 0
    X = np.full((n, t_max, N_POINTS, N_COORDS), np.nan, dtype=np.float32)
    for i, lm in enumerate(clips.landmarks):
        X[i, : lm.shape[0]] = lm
    buf = io.BytesIO()
    np.savez_compressed(
        buf,
        X=X,
        lengths=lengths,
        y=clips.y,
        classes=np.asarray(clips.classes, dtype=str),
        clip_id=np.asarray([str(c) for c in clips.clip_ids], dtype=str),
        signer=np.asarray(["" if s is None else str(s) for s in clips.signers], dtype=str),
        seq_id=clips.seq_ids,
        split=np.asarray([str(s) for s in clips.splits], dtype=str),
        path=np.asarray([str(s) for s in clips.paths], dtype=str),
    )
    with atomic_write(target) as fh:
        fh.write(buf.getvalue())
    return target


# --------------------------------------------------------------------------------------------
# landmark store
# --------------------------------------------------------------------------------------------


def load_store(path: PathLike, *, split_csvs: tuple[PathLike, PathLike] | None = None) -> ClipSet:
    """Load a landmark store (``manifest.csv`` + ``clips/<clip_id>.npz``) as a :class:`ClipSet`.

    A clip file that is missing or damaged is skipped with a warning naming it. ``classes`` are
    the sorted labels of the clips loaded. ``split_csvs=(train_csv, test_csv)`` (INCLUDE-50's
    official lists) overwrites the ``splits`` column by matching each clip's source path; clips
    in neither list get ``""``.
    """
    root = Path(path)
    rows = read_manifest(root)
    landmarks: list[np.ndarray] = []
    kept: list[dict[str, str]] = []
    for row in rows:
        cid = row.get("clip_id", "")
        file = clip_path(root, cid)
        try:
            if not cid:
                raise ValueError(f"{root / MANIFEST}: a row has an empty clip_id")
            if not file.is_file():
                raise ValueError(f"{file}: listed in the manifest but missing")
            stored = read_clip(file)
        except ValueError as exc:
            warnings.warn(f"skipping clip {cid!r}: {exc}", RuntimeWarning, stacklevel=2)
            continue
        if not row.get("label", ""):
            warnings.warn(f"skipping clip {cid!r} ({file}): no label in the manifest", RuntimeWarning, stacklevel=2)
            continue
        landmarks.append(stored.landmarks)
        kept.append(row)
    labels = [r["label"] for r in kept]
    classes = tuple(sorted(set(labels)))
    index = {c: i for i, c in enumerate(classes)}
    clips = ClipSet(
        landmarks=landmarks,
        y=np.array([index[s] for s in labels], dtype=np.int64),
        classes=classes,
        clip_ids=np.array([r["clip_id"] for r in kept], dtype=object),
        signers=np.array([r.get("signer") or None for r in kept], dtype=object),
        splits=np.array([r.get("split") or "" for r in kept], dtype=object),
        paths=np.array([r.get("path") or "" for r in kept], dtype=object),
    )
    if split_csvs is not None:
        member = include50_membership(clips.paths, *split_csvs)
        clips.splits = np.where(member == 0, "train", np.where(member == 1, "test", "")).astype(object)
    return clips


# --------------------------------------------------------------------------------------------
# .pose (pose-format)
# --------------------------------------------------------------------------------------------



def load_pose_file(path: PathLike) -> ClipSet:
    """Load one MediaPipe Holistic ``.pose`` file (pose-format) as a one-clip :class:`ClipSet`.

    Reading is :func:`signlang.landmarks.posefile.read_pose` (the pose, left-hand and right-hand
    components in the 75-point layout, NaN where not detected); the label is the file stem.
    """
    from signlang.landmarks.posefile import read_pose

    p = Path(path)
    try:
        lm, _fps = read_pose(p)
    except ImportError as exc:  # pragma: no cover - depends on the optional extra
        raise ValueError(f"{p}: reading .pose files needs pose-format (pip install 'signlang[video]')") from exc
    return ClipSet(landmarks=[lm], y=np.zeros(1, dtype=np.int64), classes=(p.stem,), clip_ids=np.array([p.stem], dtype=object),
                   paths=np.array([p.name], dtype=object))
