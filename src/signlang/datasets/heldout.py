"""Which clips of a dataset a trained model may be scored (or calibrated) on: the held-out part.

Shared by training (which records what it trained on), ``signlang evaluate`` (which scores through
the predictor, :mod:`signlang.inference.evaluate`) and ``signlang calibrate``. A bundle's manifest
records the split spec, its seed, the training data's checksum and the clip ids + content
fingerprints of its training part (``extra.split``, ``extra.training_clips``), so that the held-out
part is exactly the test part of training, and clips the bundle trained on are refused.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from signlang._io import sha256_file
from signlang.datasets.audit import ALL_CELLS, AUTO
from signlang.datasets.clip import ClipSet

PathLike = str | os.PathLike[str]
DataArg = PathLike | ClipSet

EVALUATE_ALL = "all"
"""``split="all"``: score every clip of the data (a separate test set)."""
FINAL = "none"
"""The split spec recorded for a final bundle: every clip given was used for training."""


def load_data(data: DataArg, cells: PathLike | None = AUTO) -> tuple[ClipSet, dict[str, Any]]:
    """A ClipSet from a path (any registered loader) or as given, and a description of its source.

    ``cells``: the label audit that applies (:mod:`signlang.datasets.audit`): ``"auto"`` (default) = the
    ``label_audit.csv`` beside a data path if there is one, ``"all"`` = none, or an audit file. The
    cells it excludes are dropped here and described in ``source["audit"]`` (file, clips excluded, the
    cells with their clip counts); ``source["n_clips"]`` counts the clips kept. A ClipSet given as is
    gets only an explicit audit file.
    """
    from signlang.datasets.audit import apply_audit, audit_beside, resolve_audit

    if isinstance(data, ClipSet):
        clips, record = apply_audit(data, None if str(cells) == AUTO else resolve_audit(None, cells))
        return clips, {"path": None, "sha256": None, "n_clips": len(clips), "audit": record}
    from signlang.datasets.formats import load_dataset

    p = Path(data)
    audit_file = resolve_audit(p, cells)  # a missing --audit file fails before the data are read
    clips, record = apply_audit(load_dataset(p), audit_file)
    source = {"path": str(p), "sha256": sha256_file(p) if p.is_file() else None, "n_clips": len(clips), "audit": record}
    if record is None and str(cells) == ALL_CELLS and audit_beside(p) is not None:
        source["audit_ignored"] = str(audit_beside(p))
    return clips, source


def clip_fingerprints(landmarks: Sequence[np.ndarray]) -> list[str]:
    """A 16-hex-digit content hash per clip (its float32 ``(T, 75, 3)`` bytes, NaN made canonical)."""
    out = []
    for lm in landmarks:
        arr = np.nan_to_num(np.asarray(lm, dtype=np.float32), nan=np.float32(-7.5e37))
        h = hashlib.blake2b(np.ascontiguousarray(arr).tobytes(), digest_size=8)
        h.update(str(arr.shape).encode())
        out.append(h.hexdigest())
    return out


def training_overlap(manifest: dict[str, Any], clips: ClipSet, idx: np.ndarray) -> list[tuple[str, str]]:
    """``[(clip id here, clip id in training)]`` for the clips at ``idx`` whose content the bundle
    trained on (empty for bundles that record no training clips)."""
    recorded = (manifest.get("extra") or {}).get("training_clips") or {}
    prints, ids = recorded.get("fingerprints") or [], recorded.get("clip_ids") or []
    if not prints:
        return []
    trained = dict(zip(prints, ids))
    here = clip_fingerprints([clips.landmarks[i] for i in idx])
    return [(str(clips.clip_ids[i]), str(trained[f])) for i, f in zip(idx, here) if f in trained]


def classes_to_model(data_classes: Sequence[str], model_classes: Sequence[str]) -> np.ndarray:
    """Per data class, its index in the model's classes (-1 = unknown to the model)."""
    index = {c: i for i, c in enumerate(model_classes)}
    return np.array([index.get(str(c), -1) for c in data_classes], dtype=np.int64)


def heldout_part(manifest: dict[str, Any], classes: Sequence[str], bundle_dir: PathLike, data: DataArg, split: str | None, *,
                 seed: int | None = None, allow_overlap: bool = False,
                 purpose: str = "evaluate", cells: PathLike | None = AUTO) -> tuple[ClipSet, dict[str, Any], str, int, np.ndarray, np.ndarray, list[str], list[tuple[str, str]]]:
    """The clips of ``data`` to score a bundle (``manifest``, ``classes``) on:
    ``(clips, source, spec, seed, idx, y in the bundle's classes, notes, overlap)``.

    ``split=None`` reuses the bundle's split (every clip for a final bundle); ``"all"`` takes every clip.
    Clips with labels the bundle does not know are left out; clips it trained on raise ``ValueError``
    unless ``allow_overlap``. ``cells``: the label audit (:func:`load_data`); a note is added when it
    differs from the one the bundle was trained with.
    """
    from signlang.datasets.splits import split_indices

    trained_split = dict((manifest.get("extra") or {}).get("split") or {})
    spec = split or trained_split.get("spec")
    if spec == FINAL:
        spec = EVALUATE_ALL
    if spec is None:
        raise ValueError(f"{bundle_dir}: the bundle records no split; pass one (e.g. --split blocked:0.2 or --split all)")
    use_seed = int(seed if seed is not None else trained_split.get("seed", 0))
    clips, source = load_data(data, cells)
    if spec == EVALUATE_ALL:
        test_idx = np.arange(len(clips))
    else:
        _, test_idx = split_indices(clips, spec, seed=use_seed)
    notes: list[str] = []
    trained_sha = (trained_split.get("data") or {}).get("sha256")
    if split is None and spec != EVALUATE_ALL and trained_sha and source["sha256"] and trained_sha != source["sha256"]:
        notes.append("the data differ from the training data (sha256); the recorded split was re-applied to these data")
    trained_audit = ((trained_split.get("data") or {}).get("audit") or {}).get("sha256")
    this_audit = (source.get("audit") or {}).get("sha256")
    if split is None and spec != EVALUATE_ALL and trained_sha == source["sha256"] and trained_audit != this_audit:
        notes.append(f"the label audit differs from the one the bundle was trained with ({'none' if trained_audit is None else trained_audit[:12]} "
                     f"-> {'none' if this_audit is None else this_audit[:12]}): the recorded split was re-applied to other clips")
    to_bundle = classes_to_model(clips.classes, classes)
    y = to_bundle[clips.y[test_idx]]
    known = y >= 0
    if not known.all():
        unknown = sorted({clips.classes[c] for c in clips.y[test_idx][~known]})
        notes.append(f"{int((~known).sum())} clip(s) with labels unknown to the bundle left out: {unknown[:10]}")
    test_idx, y = test_idx[known], y[known]
    if len(test_idx) == 0:
        raise ValueError(f"{bundle_dir}: no test clips with labels the bundle knows (split {spec!r})")
    overlap = training_overlap(manifest, clips, test_idx)
    if overlap and not allow_overlap:
        shown = ", ".join(f"{a} (trained as {b})" if a != b else a for a, b in overlap[:10])
        raise ValueError(f"{data if not isinstance(data, ClipSet) else 'the data'}: {len(overlap)} of the {len(test_idx)} clips "
                         f"to {purpose} were used to train {bundle_dir}: {shown}{', ...' if len(overlap) > 10 else ''}; "
                         f"{'a temperature fitted' if purpose == 'calibrate' else 'scores'} on them say{'s' if purpose == 'calibrate' else ''} "
                         f"nothing about new clips. Use other clips, or pass --allow-overlap")
    if overlap:
        notes.append(f"{len(overlap)} of the {len(test_idx)} clips were used in training (--allow-overlap): the scores are optimistic")
    return clips, source, spec, use_seed, test_idx, y, notes, overlap
