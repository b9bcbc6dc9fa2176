"""Train/test splits, validation carving and out-of-fold assignment, one registry of protocols.

A split is named by a spec string, parsed by :func:`parse_split_spec`:

* ``random:P``   stratified by class, a fraction ``P`` of every class to test;
* ``signer`` / ``signer:P``   whole signers to test (about ``P`` of the clips, default 0.2),
  chosen to keep the class mix; no signer is on both sides;
* ``blocked:P``  per class, clips ordered by ``seq_id`` (else file order), the last
  ``round(P * n)`` (at least 1 when n >= 2) to test: consecutive recordings stay together
  (the project's main benchmark protocol);
* ``include50:TRAIN_CSV,TEST_CSV``   INCLUDE-50's official file lists, matched on each clip's
  source path (suffix match, case-sensitive); clips in neither list are left out;
* ``stored``     the ``split`` column recorded in the store (``train``/``test``).

Every function is deterministic for a given ``seed`` and returns sorted, disjoint ``int64``
index arrays into the :class:`ClipSet`.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from signlang._registry import Registry
from signlang.datasets.clip import ClipSet

PathLike = str | os.PathLike[str]
DEFAULT_SIGNER_FRACTION = 0.2
DEFAULT_VALIDATION_FRACTION = 0.2


@dataclass(frozen=True)
class SplitSpec:
    """A parsed split spec: the protocol's ``name``, its ``fraction`` (if any) and other ``args``."""

    name: str
    fraction: float | None = None
    args: tuple[str, ...] = ()
    text: str = ""


@dataclass(frozen=True)
class SplitStrategy:
    """One protocol of the registry.

    ``parse(arg)`` turns the text after ``name:`` (or ``None``) into a :class:`SplitSpec`;
    ``split(clips, spec, seed)`` gives ``(train, test)``; ``folds(clips, idx, k, spec, seed)``
    gives fold ids ``(len(idx),)`` in ``0..k-1`` that follow the same protocol.
    """

    name: str
    usage: str
    parse: Callable[[str | None], SplitSpec]
    split: Callable[[ClipSet, SplitSpec, int], tuple[np.ndarray, np.ndarray]]
    folds: Callable[[ClipSet, np.ndarray, int, SplitSpec, int], np.ndarray]


SPLITS: Registry[SplitStrategy] = Registry("split protocol")


def register_split(strategy: SplitStrategy) -> SplitStrategy:
    """Add a protocol to :data:`SPLITS`."""
    return SPLITS.register(strategy.name, strategy)


def _valid_forms() -> str:
    return ", ".join(s.usage for s in SPLITS.values())


def parse_split_spec(spec: str) -> SplitSpec:
    """Parse ``"name"`` or ``"name:arg"``; a bad spec raises ``ValueError`` listing valid forms."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"bad split spec {spec!r}: empty; valid forms: {_valid_forms()}")
    name, sep, arg = spec.strip().partition(":")
    try:
        strategy = SPLITS.get(name.strip().lower())
    except ValueError as exc:
        raise ValueError(f"bad split spec {spec!r}: {exc}; valid forms: {_valid_forms()}") from None
    try:
        parsed = strategy.parse(arg.strip() if sep else None)
    except ValueError as exc:
        raise ValueError(f"bad split spec {spec!r}: {exc}; valid forms: {_valid_forms()}") from exc
    return SplitSpec(parsed.name, parsed.fraction, parsed.args, spec)


def _fraction(arg: str | None, *, default: float | None) -> float:
    if arg is None or arg == "":
        if default is None:
            raise ValueError("needs a test fraction P with 0 < P < 1")
        return default
    try:
        p = float(arg)
    except ValueError:
        raise ValueError(f"test fraction {arg!r} is not a number") from None
    if not 0.0 < p < 1.0:
        raise ValueError(f"test fraction {p} must satisfy 0 < P < 1")
    return p


def _as_index(idx: np.ndarray | list[int]) -> np.ndarray:
    return np.sort(np.asarray(idx, dtype=np.int64))


def _n_test(n: np.ndarray | int, p: float) -> np.ndarray:
    """Per-group test count: ``round(p * n)``, at least 1 when ``n >= 2``, never all of ``n``."""
    n = np.asarray(n, dtype=np.int64)
    k = np.floor(p * n + 0.5).astype(np.int64)
    k = np.where(n >= 2, np.maximum(k, 1), 0)
    return np.minimum(k, np.maximum(n - 1, 0))


def _class_groups(y: np.ndarray) -> list[np.ndarray]:
    """Positions of each class present in ``y`` (in order of first position)."""
    return [np.flatnonzero(y == c) for c in np.unique(y)]


# --------------------------------------------------------------------------------------------
# random (stratified)
# --------------------------------------------------------------------------------------------


def _random_split(clips: ClipSet, spec: SplitSpec, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    test: list[np.ndarray] = []
    for pos in _class_groups(clips.y):
        perm = rng.permutation(pos)
        test.append(perm[: int(_n_test(len(pos), spec.fraction or 0.0))])
    is_test = np.zeros(len(clips), dtype=bool)
    if test:
        is_test[np.concatenate(test)] = True
    return _as_index(np.flatnonzero(~is_test)), _as_index(np.flatnonzero(is_test))


def _stratified_folds(clips: ClipSet, idx: np.ndarray, k: int, spec: SplitSpec, seed: int) -> np.ndarray:
    """Stratified K-fold: each class dealt round-robin over the folds, start rotated per class."""
    rng = np.random.default_rng(seed)
    y = clips.y[idx]
    fold = np.empty(len(idx), dtype=np.int64)
    offset = 0
    for pos in _class_groups(y):
        perm = rng.permutation(pos)
        fold[perm] = (np.arange(len(perm)) + offset) % k
        offset += len(perm)
    return fold


register_split(SplitStrategy(
    "random", "random:P (stratified, P = test fraction)",
    lambda arg: SplitSpec("random", _fraction(arg, default=None)),
    _random_split, _stratified_folds,
))


# --------------------------------------------------------------------------------------------
# signer (group) split
# --------------------------------------------------------------------------------------------


def _signer_codes(clips: ClipSet, idx: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(names (S,), code per clip)``; raises if any clip's signer is unknown."""
    signers = clips.signers if idx is None else clips.signers[idx]
    unknown = np.array([s is None or str(s) == "" for s in signers], dtype=bool)
    if unknown.any():
        first = clips.clip_ids[np.flatnonzero(unknown)[0] if idx is None else idx[np.flatnonzero(unknown)[0]]]
        raise ValueError(
            f"signer split needs every clip's signer; {int(unknown.sum())} clip(s) have none (first: {first!r}); "
            "use blocked:P or random:P for this dataset"
        )
    names, codes = np.unique(np.asarray([str(s) for s in signers]), return_inverse=True)
    return names, codes


def _signer_split(clips: ClipSet, spec: SplitSpec, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Pick the signer subset whose clips best match ``P`` of every class (seeded random search)."""
    p = spec.fraction if spec.fraction is not None else DEFAULT_SIGNER_FRACTION
    names, codes = _signer_codes(clips)
    n_s = len(names)
    if n_s < 2:
        raise ValueError(f"signer split needs at least 2 signers, found {n_s} ({list(names)})")
    n_c = len(clips.classes)
    counts = np.zeros((n_s, n_c), dtype=np.float64)  # clips per signer and class
    np.add.at(counts, (codes, clips.y), 1.0)
    total = counts.sum(axis=0)
    rng = np.random.default_rng(seed)
    n_draws = 512
    orders = np.argsort(rng.random((n_draws, n_s)), axis=1)  # random signer orders
    cum = np.cumsum(counts[orders].sum(axis=2), axis=1) / counts.sum()  # (draws, S) test fraction
    # take the prefix (1..S-1 signers) whose clip fraction is nearest to p
    n_take = np.argmin(np.abs(cum[:, : n_s - 1] - p), axis=1) + 1
    chosen = np.arange(n_s)[None, :] < n_take[:, None]  # over ordered positions
    member = np.zeros((n_draws, n_s), dtype=bool)
    np.put_along_axis(member, orders, chosen, axis=1)
    test_counts = member.astype(np.float64) @ counts  # (draws, C)
    present = total > 0
    frac = np.divide(test_counts, total, out=np.zeros_like(test_counts), where=present)
    missing_train = ((test_counts >= total) & present).sum(axis=1)  # classes with no train clip
    score = np.abs(frac - p)[:, present].mean(axis=1) + np.abs(member @ counts.sum(axis=1) / counts.sum() - p) + 10.0 * missing_train
    best = member[int(np.argmin(score))]
    is_test = best[codes]
    return _as_index(np.flatnonzero(~is_test)), _as_index(np.flatnonzero(is_test))


def _signer_folds(clips: ClipSet, idx: np.ndarray, k: int, spec: SplitSpec, seed: int) -> np.ndarray:
    """Group K-fold: signers, largest first (seeded tie-break), each to the fold with fewest clips."""
    names, codes = _signer_codes(clips, idx)
    if len(names) < k:
        raise ValueError(f"signer folds: {k} folds need at least {k} signers, found {len(names)}")
    sizes = np.bincount(codes, minlength=len(names))
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(len(names)), -sizes))
    load = np.zeros(k, dtype=np.int64)
    fold_of = np.empty(len(names), dtype=np.int64)
    for s in order:  # loop over signers (a handful), not clips or frames
        f = int(np.argmin(load))
        fold_of[s] = f
        load[f] += sizes[s]
    return fold_of[codes]


register_split(SplitStrategy(
    "signer", "signer or signer:P (whole signers to test, default P=0.2)",
    lambda arg: SplitSpec("signer", _fraction(arg, default=DEFAULT_SIGNER_FRACTION)),
    _signer_split, _signer_folds,
))


# --------------------------------------------------------------------------------------------
# blocked (per class, by seq_id)
# --------------------------------------------------------------------------------------------


def _blocked_order(clips: ClipSet, idx: np.ndarray) -> list[np.ndarray]:
    """Per class, positions into ``idx`` ordered by ``seq_id`` (ties and unknowns: file order)."""
    seq = clips.seq_ids[idx]
    key = np.where(seq >= 0, seq, np.iinfo(np.int64).max)
    out = []
    for pos in _class_groups(clips.y[idx]):
        out.append(pos[np.lexsort((idx[pos], key[pos]))])
    return out


def _blocked_split(clips: ClipSet, spec: SplitSpec, seed: int) -> tuple[np.ndarray, np.ndarray]:
    all_idx = np.arange(len(clips), dtype=np.int64)
    is_test = np.zeros(len(clips), dtype=bool)
    for ordered in _blocked_order(clips, all_idx):
        k = int(_n_test(len(ordered), spec.fraction or 0.0))
        if k:
            is_test[ordered[-k:]] = True
    return _as_index(np.flatnonzero(~is_test)), _as_index(np.flatnonzero(is_test))


def _blocked_folds(clips: ClipSet, idx: np.ndarray, k: int, spec: SplitSpec, seed: int) -> np.ndarray:
    """Per class, the seq_id-ordered clips cut into ``k`` contiguous blocks (fold 0 = earliest)."""
    idx = np.asarray(idx, dtype=np.int64)
    fold = np.empty(len(idx), dtype=np.int64)
    for ordered in _blocked_order(clips, idx):
        fold[ordered] = (np.arange(len(ordered)) * k) // max(len(ordered), 1)
    return fold


register_split(SplitStrategy(
    "blocked", "blocked:P (per class, highest seq_ids to test)",
    lambda arg: SplitSpec("blocked", _fraction(arg, default=None)),
    _blocked_split, _blocked_folds,
))


# --------------------------------------------------------------------------------------------
# INCLUDE-50 official lists
# --------------------------------------------------------------------------------------------


def _norm_path(path: str) -> str:
    p = str(path).replace("\\", "/").strip()
    while p.startswith("./"):
        p = p[2:]
    return p.strip("/")


def read_include_csv(path: PathLike) -> list[str]:
    """The ``FilePath`` column of an INCLUDE split CSV (``Category,Word,Video,FilePath``)."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"{p}: INCLUDE split list not found")
    with open(p, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        if "FilePath" not in (reader.fieldnames or []):
            raise ValueError(f"{p}: missing column 'FilePath' (has {reader.fieldnames}); expected Category,Word,Video,FilePath")
        return [_norm_path(r["FilePath"]) for r in reader if r.get("FilePath")]


def include50_membership(paths: np.ndarray, train_csv: PathLike, test_csv: PathLike) -> np.ndarray:
    """Per clip: 0 = in the train list, 1 = in the test list, -1 = in neither.

    A clip's source path matches a listed path when it equals it or ends with ``"/" + listed``
    (so stores extracted from the INCLUDE root or from a parent folder both work). A clip
    matching both lists raises ``ValueError``.
    """
    lists = {0: set(read_include_csv(train_csv)), 1: set(read_include_csv(test_csv))}
    both = lists[0] & lists[1]
    if both:
        raise ValueError(f"{train_csv} and {test_csv} share {len(both)} path(s), e.g. {sorted(both)[0]!r}")
    out = np.full(len(paths), -1, dtype=np.int64)
    for i, raw in enumerate(paths):  # string matching per clip; each path has only a few suffixes
        parts = _norm_path(raw).split("/") if raw else []
        suffixes = {"/".join(parts[j:]) for j in range(len(parts))}
        for side, listed in lists.items():
            if suffixes & listed:
                out[i] = side
    return out


def _include50_parse(arg: str | None) -> SplitSpec:
    files = [a.strip() for a in (arg or "").split(",") if a.strip()]
    if len(files) != 2:
        raise ValueError("include50 needs two CSV files: include50:TRAIN_CSV,TEST_CSV")
    return SplitSpec("include50", None, tuple(files))


def _include50_split(clips: ClipSet, spec: SplitSpec, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if not any(str(p) for p in clips.paths):
        raise ValueError("include50 split needs each clip's source path (ClipSet.paths); load a store whose manifest has a 'path' column")
    member = include50_membership(clips.paths, spec.args[0], spec.args[1])
    train, test = np.flatnonzero(member == 0), np.flatnonzero(member == 1)
    if not len(train) or not len(test):
        raise ValueError(
            f"include50 split: {len(train)} train and {len(test)} test clips matched {spec.args[0]} / {spec.args[1]}; "
            f"clip paths look like {str(clips.paths[0])!r}"
        )
    return _as_index(train), _as_index(test)


register_split(SplitStrategy(
    "include50", "include50:TRAIN_CSV,TEST_CSV (INCLUDE-50 official lists)",
    _include50_parse, _include50_split, _stratified_folds,
))


# --------------------------------------------------------------------------------------------
# stored
# --------------------------------------------------------------------------------------------


def _stored_parse(arg: str | None) -> SplitSpec:
    if arg:
        raise ValueError("stored takes no argument")
    return SplitSpec("stored")


def _stored_split(clips: ClipSet, spec: SplitSpec, seed: int) -> tuple[np.ndarray, np.ndarray]:
    tags = np.asarray([str(s).strip().lower() for s in clips.splits])
    train, test = np.flatnonzero(tags == "train"), np.flatnonzero(tags == "test")
    if not len(train) or not len(test):
        found = sorted(set(tags.tolist()))
        raise ValueError(f"stored split needs clips tagged 'train' and 'test' in the split column; found tags {found}")
    return _as_index(train), _as_index(test)


register_split(SplitStrategy("stored", "stored (the store's split column)", _stored_parse, _stored_split, _stratified_folds))


# --------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------


def _check_disjoint(train: np.ndarray, test: np.ndarray, spec: str) -> None:
    if np.intersect1d(train, test).size:
        raise AssertionError(f"split {spec!r} produced overlapping train and test indices")


def split_indices(clips: ClipSet, spec: str, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(train_idx, test_idx)`` for ``clips`` under the protocol ``spec`` (see module docstring)."""
    parsed = parse_split_spec(spec)
    train, test = SPLITS[parsed.name].split(clips, parsed, seed)
    _check_disjoint(train, test, spec)
    return train, test


def validation_indices(
    clips: ClipSet, train_idx: np.ndarray, spec: str, seed: int = 0, *, fraction: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Carve ``(fit_idx, val_idx)`` out of ``train_idx`` with the same protocol as ``spec``.

    Only ``train_idx`` is touched. ``fraction`` defaults to the spec's test fraction (0.2 when it
    has none). ``include50`` and ``stored`` have no validation list, so they fall back to a
    stratified random split of the training part.
    """
    parsed = parse_split_spec(spec)
    train_idx = np.asarray(train_idx, dtype=np.int64)
    p = fraction if fraction is not None else (parsed.fraction or DEFAULT_VALIDATION_FRACTION)
    if parsed.name in ("random", "signer", "blocked"):
        inner = SplitSpec(parsed.name, _fraction(str(p), default=None))
        strategy = SPLITS[parsed.name]
    else:
        inner = SplitSpec("random", _fraction(str(p), default=None))
        strategy = SPLITS["random"]
    fit, val = strategy.split(clips.subset(train_idx), inner, seed)
    return _as_index(train_idx[fit]), _as_index(train_idx[val])


def fold_ids(clips: ClipSet, idx: np.ndarray, n_folds: int, spec: str, seed: int = 0) -> np.ndarray:
    """Fold of each clip in ``idx`` (``(len(idx),)`` in ``0..n_folds-1``) for out-of-fold stacking.

    blocked: contiguous seq_id blocks per class; random/include50/stored: stratified K-fold;
    signer: group K-fold (no signer in two folds).
    """
    if n_folds < 2:
        raise ValueError(f"n_folds must be >= 2, got {n_folds}")
    parsed = parse_split_spec(spec)
    idx = np.asarray(idx, dtype=np.int64)
    return SPLITS[parsed.name].folds(clips, idx, n_folds, parsed, seed).astype(np.int64)
