"""``signlang evaluate``: score a model exactly as ``signlang predict`` serves it.

Every held-out clip (:func:`signlang.datasets.heldout.heldout_part`) goes through the
:class:`~signlang.inference.predictor.Predictor`: the same numpy plan and combiner as
``predict`` and the service, and the same decision policy (:mod:`signlang.inference.policy`). A
clip with nobody in it is answered by the vocabulary's no-sign class where there is one (rule
``no_person``), as ``predict`` answers it; a clip the predictor refuses (e.g. nobody, and no
no-sign class) has no answer and counts as wrong, in the column ``(no answer)`` of the confusion
matrix, as an error line of ``predict --json`` would. So the accuracy here equals the accuracy of
``signlang predict --json`` on the same clips.

Each base model of an ensemble is scored on its own probabilities from the same run, under the
same rules (a clip a rule answered has the rule's answer for every model).
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from signlang._io import atomic_write, write_json
from signlang.datasets.heldout import DataArg, PathLike, heldout_part
from signlang.models.evaluation import classification_report

NO_ANSWER = "(no answer)"
"""The extra column of a report's confusion matrix holding the clips the predictor could not answer."""


def _summary(report: dict[str, Any]) -> dict[str, float]:
    return {k: report[k] for k in ("accuracy", "macro_f1", "top5_accuracy", "ece") if k in report}


def _scored(y: np.ndarray, proba: np.ndarray, answered: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    """The classification report of answered rows ``proba (N, C)``; unanswered rows count as the wrong answer :data:`NO_ANSWER`."""
    if answered.all():
        return classification_report(y, proba, classes)
    ext = np.zeros((len(y), proba.shape[1] + 1), dtype=np.float64)
    ext[answered, :-1] = proba[answered]
    ext[~answered, -1] = 1.0
    return classification_report(y, ext, (*classes, NO_ANSWER))


def evaluate_bundle(
    bundle_dir: PathLike,
    data: DataArg,
    split: str | None = None,
    *,
    out_dir: PathLike | None = None,
    seed: int | None = None,
    progress: bool = False,
    allow_overlap: bool = False,
    backend: str = "auto",
    batch_size: int = 256,
    cells: PathLike | None = "auto",
) -> dict[str, Any]:
    """Score a model on the test part of ``data`` (or on every clip with ``split="all"``) through the Predictor.

    ``split=None`` reuses the bundle's own split spec and seed (every clip for a bundle trained without
    a split). Clips whose label the bundle does not know are left out (counted in the notes); clips the
    bundle trained on raise ``ValueError`` naming them unless ``allow_overlap``. Returns the report
    (accuracy, macro-F1, top-5, ECE, per-class scores and the confusion matrix per model, the answers'
    kinds and the errors, ``inference_ms_per_clip``: each base model's own run, and the whole answer with its
    features); with ``out_dir`` also ``report.json`` and ``confusion_matrix.png``.
    """
    from tqdm.auto import tqdm

    from signlang.inference.predictor import Predictor
    from signlang.models.ensemble import ENSEMBLE

    with Predictor(bundle_dir, backend=backend, top_k=5) as predictor:
        manifest = predictor.bundle_manifest
        classes = predictor.classes
        clips, source, spec, use_seed, test_idx, y, notes, overlap = heldout_part(
            manifest, classes, bundle_dir, data, split, seed=seed, allow_overlap=allow_overlap, cells=cells)
        plan = predictor.runner.plan
        names = [b.name for b in plan.bases] if plan.has_meta else []
        single = ((manifest.get("models") or [{}])[0] or {}).get("name") or plan.bases[0].name  # the bundle's own name
        main_name = ENSEMBLE if plan.has_meta else str(single)
        n, c = len(test_idx), len(classes)
        proba = np.zeros((n, c), dtype=np.float32)
        by_model = {name: np.zeros((n, c), dtype=np.float32) for name in names}
        answered = np.zeros(n, dtype=bool)
        kinds = {"model": 0, "no_person": 0, "no_hands": 0, "unknown": 0, "low_confidence": 0, "error": 0}
        errors: list[str] = []
        ms = 0.0
        base_ms = dict.fromkeys(names, 0.0)
        bar = tqdm(total=n, disable=not progress, desc="evaluate", unit="clip", leave=False)
        for start in range(0, n, batch_size):
            rows = np.arange(start, min(n, start + batch_size))
            idx = test_idx[rows]
            preds, errs = predictor.predict_batch([clips.landmarks[i] for i in idx], names=[str(clips.clip_ids[i]) for i in idx],
                                                  by_model=bool(names))
            if any(p is not None and p.rule is None for p in preds):  # the model ran on this batch
                for name in names:
                    base_ms[name] += getattr(predictor.runner, "last_ms", {}).get(name, 0.0)
            for j, p in enumerate(preds):
                if p is None:
                    kinds["error"] += 1
                    errors.append(str(errs.get(j)))
                    continue
                r = rows[j]
                answered[r] = True
                proba[r] = p.probs
                for name in names:
                    by_model[name][r] = (p.by_model or {})[name]
                kinds[p.rule or "model"] += 1
                kinds["unknown"] += bool(p.unknown)
                kinds["low_confidence"] += bool(p.low_confidence)
                ms += p.timings_ms.get("features", 0.0) + p.timings_ms.get("model", 0.0)
            bar.update(len(rows))
        bar.close()

    results: dict[str, Any] = {name: _scored(y, by_model[name], answered, classes) for name in names}
    results[main_name] = _scored(y, proba, answered, classes)
    if kinds["error"]:
        notes.append(f"{kinds['error']} clip(s) got no answer from the predictor and count as wrong (column {NO_ANSWER!r}): "
                     + "; ".join(errors[:3]) + (" ..." if len(errors) > 3 else ""))
    if kinds["no_person"] or kinds["no_hands"]:
        notes.append(f"{kinds['no_person']} clip(s) with nobody and {kinds['no_hands']} with no hand in any frame were answered "
                     "by the no-sign class (the predictor's rule)")
    report: dict[str, Any] = {
        "kind": "evaluation",
        "bundle": str(bundle_dir),
        "scored_by": f"signlang.inference.predictor.Predictor ({predictor.backend}), as `signlang predict` answers",
        "data": source,
        "audit": source.get("audit"),
        "split": {"spec": spec, "seed": use_seed, "n_test": int(n),
                  "from_bundle": split is None, "n_overlap_with_training": len(overlap)},
        "primary": main_name,
        "models": results,
        "summary": {k: _summary(v) for k, v in results.items()},
        "answers": kinds,
        "errors": errors,
        "inference_ms_per_clip": {**{name: v / max(1, kinds["model"]) for name, v in base_ms.items()},
                                  main_name: ms / max(1, kinds["model"])},
        "notes": notes,
    }
    if out_dir is not None:
        out = Path(out_dir)
        cm = np.asarray(results[main_name]["confusion_matrix"])
        shown = (*classes, NO_ANSWER) if cm.shape[0] > len(classes) else classes
        plot_confusion_matrix(cm, shown, out / "confusion_matrix.png", title=f"{main_name} on {spec} test part (n={n})")
        write_json(out / "report.json", report)
        report["files"] = {"report": str(out / "report.json"), "confusion_matrix": str(out / "confusion_matrix.png")}
    return report


def plot_confusion_matrix(
    cm: np.ndarray,
    classes: Sequence[str],
    path: str | os.PathLike[str],
    *,
    title: str = "Confusion matrix",
    normalize: bool = True,
) -> None:
    """Write a PNG of the ``(C, C)`` confusion matrix (rows = true, row-normalised by default).

    The figure grows with the number of classes so every label stays readable; cells show the
    raw counts when there are few enough classes. Written atomically (Agg backend, no display).
    """
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    counts = np.asarray(cm, dtype=np.float64)
    n = len(classes)
    if counts.shape != (n, n):
        raise ValueError(f"confusion matrix shape {counts.shape} does not match {n} classes")
    rows = counts.sum(axis=1, keepdims=True)
    shown = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0) if normalize else counts
    longest = max((len(str(c)) for c in classes), default=1)
    side = float(np.clip(0.32 * n + 2.5, 4.0, 30.0))
    margin = float(np.clip(0.09 * longest, 0.5, 4.0))  # room for long tick labels
    fig, ax = plt.subplots(figsize=(side + 1.2 + margin, side + margin))
    try:
        im = ax.imshow(shown, cmap="Blues", vmin=0.0, vmax=1.0 if normalize else None)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class" if normalize else "count")
        font = float(np.clip(11 - n / 8, 5, 10))
        ax.set_xticks(np.arange(n), labels=[str(c) for c in classes], rotation=90, fontsize=font)
        ax.set_yticks(np.arange(n), labels=[str(c) for c in classes], fontsize=font)
        ax.set_xlabel("predicted sign")
        ax.set_ylabel("true sign")
        ax.set_title(title, fontsize=10, wrap=True)
        if n <= 40:
            r, c = np.nonzero(counts)
            for i, j in zip(r, c):
                ax.text(j, i, str(int(counts[i, j])), ha="center", va="center", fontsize=max(font - 2, 4),
                        color="white" if shown[i, j] > 0.5 else "black")
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)
    with atomic_write(path) as fh:
        fh.write(buf.getvalue())
