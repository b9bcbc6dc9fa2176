"""The accuracy benchmark behind ``signlang benchmark accuracy``: our models beside two baselines.

One run, one table, on one split (default ``blocked:0.2``: per class the latest 20% of the
recordings by ``seq_id`` are the test part, so sessions do not leak): the pooled-statistics
logistic regression and MiniRocket baselines (:mod:`signlang.training.baselines`), each of our
base models trained alone, and the stacking ensemble. Every model trains on the whole training
part and is scored on the same test part: accuracy, macro-F1, training time (wall clock) and
inference time per clip (normalisation + features + model, batched). The ``random:0.2`` figures
(clips of one session on both sides) are added for the ensemble and the LR baseline, marked
optimistic.
"""

from __future__ import annotations

import os
import platform
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from signlang._io import atomic_write, write_json
from signlang.datasets.clip import ClipSet
from signlang.training.baselines import BASELINES
from signlang.training.config import TrainConfig
from signlang.training.evaluation import labels_accuracy_f1

PathLike = str | os.PathLike[str]


def _baseline_row(name: str, clips: ClipSet, train_idx: np.ndarray, test_idx: np.ndarray, split: str, seed: int) -> dict[str, Any]:
    est = BASELINES[name](seed=seed)
    train = [clips.landmarks[i] for i in train_idx]
    test = [clips.landmarks[i] for i in test_idx]
    t0 = time.perf_counter()
    est.fit(train, clips.y[train_idx])
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    pred = est.predict(test)
    ms = (time.perf_counter() - t0) / len(test) * 1000
    scores = labels_accuracy_f1(clips.y[test_idx], pred, len(clips.classes))
    return {"model": est.name, "kind": "baseline", "split": split, **scores, "train_s": fit_s, "infer_ms_per_clip": ms}


def _our_rows(clips: ClipSet, cfg: TrainConfig, split: str, models: Sequence[str] | str | None, seed: int,
              workdir: Path, progress: bool, label: str, with_bases: bool = False) -> list[dict[str, Any]]:
    """Train ``models`` (None = the ensemble) on the training part, evaluate on the test part.

    ``with_bases``: also a row per base model of the ensemble (its final refit on the training part).
    """
    from signlang.training.pipeline import ENSEMBLE, evaluate_bundle, train_bundle

    tag = ENSEMBLE if models is None else str(models)
    bundle = workdir / f"{tag}-{split.replace(':', '_')}"
    report = train_bundle(clips, bundle, cfg, split=split, models=models, track=False, seed=seed,
                          progress=progress, validate=False)
    ev = evaluate_bundle(bundle, clips, None)
    rows = []
    for name, res in ev["models"].items():
        is_main = name == ev["primary"]
        if not is_main and (models is not None or not with_bases):
            continue
        rows.append({
            "model": label if is_main else f"{name} (inside the ensemble)",
            "kind": "ours",
            "split": split,
            "accuracy": res["accuracy"],
            "macro_f1": res["macro_f1"],
            "top5_accuracy": res["top5_accuracy"],
            "train_s": report["timings"]["fit_s"] if is_main else report["timings"].get("fit_s_by_model", {}).get(name),
            "infer_ms_per_clip": ev["inference_ms_per_clip"][name] + ev["normalize_ms_per_clip"],
        })
    return rows


def run_accuracy_benchmark(
    data: PathLike | ClipSet,
    cfg: TrainConfig,
    *,
    split: str = "blocked:0.2",
    optimistic_split: str | None = "random:0.2",
    baselines: Sequence[str] = ("lr", "minirocket"),
    single_models: bool = True,
    seed: int | None = None,
    workdir: PathLike | None = None,
    keep_bundles: PathLike | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the benchmark and return ``{"rows": [...], "setup": {...}}`` (see the module docstring).

    ``keep_bundles``: a folder where the trained bundles stay (for the latency and explanation
    benchmarks); by default they go to a temporary folder that is removed.
    """
    from signlang.datasets.splits import split_indices
    from signlang.training.pipeline import load_data

    seed = cfg.seed if seed is None else int(seed)
    unknown = [b for b in baselines if b not in BASELINES]
    if unknown:
        raise ValueError(f"unknown baseline(s) {unknown}; known: {sorted(BASELINES)}")
    clips, source = load_data(data)
    t_all = time.perf_counter()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="signlang-bench-", dir=workdir) as tmp:
        work = Path(keep_bundles) if keep_bundles is not None else Path(tmp)
        train_idx, test_idx = split_indices(clips, split, seed=seed)
        for b in baselines:
            rows.append(_baseline_row(b, clips, train_idx, test_idx, split, seed))
        if single_models:
            for name in cfg.ensemble.models:
                rows += _our_rows(clips, cfg, split, name, seed, work, progress, f"{name} (alone)")
        rows += _our_rows(clips, cfg, split, None, seed, work, progress, "ensemble (stacked)", with_bases=not single_models)
        if optimistic_split:
            o_train, o_test = split_indices(clips, optimistic_split, seed=seed)
            if "lr" in baselines:
                rows.append(_baseline_row("lr", clips, o_train, o_test, optimistic_split, seed) | {"optimistic": True})
            rows += [r | {"optimistic": True}
                     for r in _our_rows(clips, cfg, optimistic_split, None, seed, work, progress, "ensemble (stacked)")
                     if r["model"] == "ensemble (stacked)"]
    setup = {
        "data": source,
        "n_clips": len(clips),
        "n_classes": len(clips.classes),
        "split": split,
        "n_train": int(len(train_idx)),
        "n_test": int(len(test_idx)),
        "optimistic_split": optimistic_split,
        "seed": seed,
        "ensemble_models": list(cfg.ensemble.models),
        "n_folds": cfg.ensemble.n_folds,
        "total_s": time.perf_counter() - t_all,
        "machine": {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
                    "torch_threads": _torch_threads()},
    }
    from signlang.training.config import config_to_dict

    return {"rows": rows, "setup": setup, "config": config_to_dict(cfg)}


def _torch_threads() -> int:
    import torch

    return int(torch.get_num_threads())


def _fmt_pct(x: float | None) -> str:
    return "-" if x is None or x != x else f"{100 * x:.2f}%"


def _fmt_s(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f} s"


def markdown_table(result: dict[str, Any]) -> str:
    """The benchmark as a markdown section (setup line + one table)."""
    s = result["setup"]
    data = s["data"].get("path") or "in-memory ClipSet"
    lines = [
        "## Accuracy benchmark",
        "",
        f"Data: `{data}` ({s['n_clips']} clips, {s['n_classes']} classes). Split `{s['split']}`: "
        f"{s['n_train']} training / {s['n_test']} test clips, seed {s['seed']}. One run. "
        f"Machine: {s['machine']['cpus']} CPU(s), torch threads {s['machine']['torch_threads']}, {s['machine']['platform']}. "
        f"Total {s['total_s'] / 60:.1f} min. Every model trains on the whole training part; inference = "
        "normalisation + features + model, batched, per clip. A base model's training time inside the ensemble "
        "counts all its out-of-fold fits and its final fit.",
        "",
        "| model | split | accuracy | macro-F1 | training time | inference ms/clip |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        split = f"{r['split']} (optimistic)" if r.get("optimistic") else r["split"]
        lines.append(f"| {r['model']} | {split} | {_fmt_pct(r['accuracy'])} | {_fmt_pct(r['macro_f1'])} | "
                     f"{_fmt_s(r['train_s'])} | {r['infer_ms_per_clip']:.3f} |")
    lines += ["", "`random:0.2` (optimistic) puts clips of the same recording sessions on both sides of the split; "
              "the `blocked` figures are the ones to quote.", ""]
    return "\n".join(lines)


def write_results(result: dict[str, Any], out: PathLike) -> tuple[Path, Path]:
    """Write ``out`` (markdown, ``.md``) and its ``.json`` sibling, atomically."""
    md = Path(out)
    if md.suffix.lower() != ".md":
        md = md.with_suffix(".md")
    js = md.with_suffix(".json")
    with atomic_write(md, "w") as fh:
        fh.write(markdown_table(result))
    write_json(js, result)
    return md, js
