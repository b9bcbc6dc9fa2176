"""Label audits: a cell list (one row per signer and sign) saying which recordings to keep.

A data set can come with a CSV audit of its labels, one row per (signer, label) cell::

    signer,label,clips,...,verdict,...,keep
    8,hello,17,...,wrong_sign,...,0

Required columns: ``signer``, ``label`` and ``keep`` (``1`` keep, ``0`` exclude); any other columns
are carried along (``verdict`` and ``clips`` are shown when a cell is excluded). Cells the audit does
not list are kept. :func:`read_audit` parses it (a malformed file raises ``ValueError`` naming the
file, the line and the field); :func:`audit_mask` applies it to a :class:`ClipSet` and says which
cells it excluded and how many clips each held, so nothing is dropped silently.

Which audit applies to a data path (:func:`resolve_audit`): an explicit file (``--audit FILE``, also
spelt ``--exclude-cells FILE``), none (``--all-cells``), or by default a file named one of
:data:`AUDIT_FILENAMES` beside the data (next to an ``.npz``, inside a store folder).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from signlang._io import sha256_file
from signlang.datasets.clip import ClipSet

PathLike = str | os.PathLike[str]

AUDIT_FILENAMES = ("label_audit.csv",)
"""Audit files picked up beside a data set when no audit is named (``<stem>_audit.csv`` is tried first)."""
AUDIT_COLUMNS = ("signer", "label", "keep")
"""The columns every audit must have."""
AUTO = "auto"
"""``cells=AUTO``: the audit beside the data, if there is one."""
ALL_CELLS = "all"
"""``cells=ALL_CELLS``: every clip, whatever an audit beside the data says."""


@dataclass(frozen=True)
class Audit:
    """A parsed audit: ``rows[(signer, label)]`` = the CSV row (strings), ``keep[(signer, label)]`` = bool."""

    path: Path
    keep: dict[tuple[str, str], bool]
    rows: dict[tuple[str, str], dict[str, str]] = field(repr=False)

    @property
    def excluded_cells(self) -> list[tuple[str, str]]:
        return [cell for cell, k in self.keep.items() if not k]


def _cell_key(signer: Any, label: Any) -> tuple[str, str]:
    return (str(signer).strip(), str(label).strip())


def read_audit(path: PathLike) -> Audit:
    """Parse an audit CSV (module docstring); ``ValueError`` naming the file, line and field when malformed."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{p}: cannot read the label audit ({exc})") from exc
    reader = csv.reader(text.splitlines())
    header = next(reader, None)
    if not header or not any(h.strip() for h in header):
        raise ValueError(f"{p}: line 1: the label audit is empty; expected a header with the fields {', '.join(AUDIT_COLUMNS)}")
    names = [h.strip() for h in header]
    missing = [c for c in AUDIT_COLUMNS if c not in names]
    if missing:
        raise ValueError(f"{p}: line 1: missing field(s) {missing} in the header {names} (a label audit needs "
                         f"{', '.join(AUDIT_COLUMNS)})")
    keep: dict[tuple[str, str], bool] = {}
    rows: dict[tuple[str, str], dict[str, str]] = {}
    for line_no, values in enumerate(reader, start=2):
        if not values or not any(v.strip() for v in values):
            continue
        if len(values) != len(names):
            raise ValueError(f"{p}: line {line_no}: {len(values)} fields, the header has {len(names)}")
        row = {n: v.strip() for n, v in zip(names, values)}
        for col in ("signer", "label"):
            if not row[col]:
                raise ValueError(f"{p}: line {line_no}: field {col!r} is empty")
        if row["keep"] not in ("0", "1"):
            raise ValueError(f"{p}: line {line_no}: field 'keep' must be 0 or 1, got {row['keep']!r}")
        cell = _cell_key(row["signer"], row["label"])
        if cell in keep:
            raise ValueError(f"{p}: line {line_no}: cell signer={cell[0]!r}, label={cell[1]!r} is listed twice")
        keep[cell] = row["keep"] == "1"
        rows[cell] = row
    return Audit(path=p, keep=keep, rows=rows)


def audit_beside(data: PathLike) -> Path | None:
    """The audit file next to a data set (:data:`AUDIT_FILENAMES`, or ``<stem>_audit.csv``), or None."""
    p = Path(data)
    folder = p if p.is_dir() else p.parent
    names = ([] if p.is_dir() else [f"{p.stem}_audit.csv"]) + list(AUDIT_FILENAMES)
    for name in names:
        if (folder / name).is_file():
            return folder / name
    return None


def resolve_audit(data: PathLike | None, cells: PathLike | None = AUTO) -> Path | None:
    """The audit file that applies: ``cells`` = :data:`AUTO` (beside ``data``), :data:`ALL_CELLS`/None (none) or a path."""
    if cells is None or str(cells) == ALL_CELLS:
        return None
    if str(cells) == AUTO:
        return None if data is None else audit_beside(data)
    p = Path(cells)
    if not p.is_file():
        raise ValueError(f"{p}: no such label audit file")
    return p


def audit_mask(clips: ClipSet, audit: Audit) -> tuple[np.ndarray, dict[str, Any]]:
    """``(keep (N,) bool, record)``: the clips of ``clips`` the audit keeps, and what it excluded.

    ``record``: ``file``, ``sha256``, ``n_clips`` (before), ``n_kept``, ``n_excluded``, ``cells_listed``,
    ``excluded_cells`` (``[{signer, label, clips, verdict}]``, only cells with clips here) and
    ``excluded_cells_absent`` (cells marked 0 that hold no clip of these data).
    """
    signers = np.asarray(["" if s is None else str(s) for s in clips.signers], dtype=object)
    labels = np.asarray(clips.classes, dtype=object)[clips.y] if len(clips) else np.zeros(0, dtype=object)
    keep = np.ones(len(clips), dtype=bool)
    cells, absent = [], []
    for cell in audit.excluded_cells:
        m = (signers == cell[0]) & (labels == cell[1])
        n = int(m.sum())
        if n == 0:
            absent.append({"signer": cell[0], "label": cell[1]})
            continue
        keep &= ~m
        row = audit.rows[cell]
        cells.append({"signer": cell[0], "label": cell[1], "clips": n, "verdict": row.get("verdict", "")})
    if audit.keep and len(clips) and not (signers != "").any():
        raise ValueError(f"{audit.path}: a label audit lists cells by signer, but the data have no signer column")
    record = {"file": str(audit.path), "sha256": sha256_file(audit.path), "n_clips": len(clips), "n_kept": int(keep.sum()),
              "n_excluded": int((~keep).sum()), "cells_listed": len(audit.keep), "excluded_cells": cells,
              "excluded_cells_absent": absent}
    return keep, record


def apply_audit(clips: ClipSet, audit_file: PathLike | None) -> tuple[ClipSet, dict[str, Any] | None]:
    """``clips`` without the cells ``audit_file`` excludes, and the record of :func:`audit_mask` (None: no audit)."""
    if audit_file is None:
        return clips, None
    keep, record = audit_mask(clips, read_audit(audit_file))
    return (clips if keep.all() else clips.subset(np.flatnonzero(keep))), record


def describe_audit(record: dict[str, Any] | None, *, ignored: PathLike | None = None, limit: int | None = None) -> str:
    """One line for a report: how many clips the audit excluded, and the cells (signer/label: clips)."""
    if record is None:
        if ignored is not None:
            return f"label audit: {ignored} ignored (--all-cells): every clip used"
        return "label audit: none"
    cells = record["excluded_cells"]
    shown = cells if limit is None else cells[:limit]
    names = ", ".join(f"{c['signer']}/{c['label']} ({c['clips']}{', ' + c['verdict'] if c.get('verdict') else ''})" for c in shown)
    more = f", ... {len(cells) - len(shown)} more" if len(shown) < len(cells) else ""
    return (f"label audit {record['file']}: {record['n_excluded']} of {record['n_clips']} clips excluded, in {len(cells)} "
            f"cell(s) (signer/label (clips, verdict)): {names or 'none'}{more}")
