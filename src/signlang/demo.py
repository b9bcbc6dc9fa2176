"""``signlang demo``: the whole toolkit end to end on SYNTHETIC signs, with no data and no GPU.

An edge (like ``bench/``): it trains, so it may import every stage, and no stage imports it; the
serving stages (``inference/``, ``explain/``, ``serve/``) need no ``training/`` because of it.

synthetic signs (:mod:`signlang.datasets.synthetic`, every class and clip named ``synthetic-...``)
-> the full ensemble (transformer + BiLSTM + XGBoost, combined as configs/cpu.yaml says: the mean)
trained with the CPU config cut down to demo size -> evaluation on held-out synthetic *signers*
(``signer`` split) -> a prediction for one held-out clip. The numbers say the code works; they
say nothing about real sign language.

Files under ``out_dir``: ``synthetic.npz`` (the data set, re-usable with ``signlang train``),
``model/`` (the bundle), ``evaluation/report.json`` + ``evaluation/confusion_matrix.png`` and
``demo.json`` (summary, prediction, timings). The default ``out_dir`` is
:func:`default_demo_dir`, outside any checkout; a folder holding an earlier demo is replaced (only
the demo's own files), any other non-empty folder is refused.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


import shutil

from signlang._io import write_json
from signlang.training.config import TrainConfig, load_config, merge_overrides, shipped_config_path

DEMO_OVERRIDES: dict[str, Any] = {
    "augment": [{"name": "mirror", "p": 0.5}, {"name": "rotate", "p": 0.5, "max_degrees": 10.0},
                {"name": "scale", "p": 0.5, "min_scale": 0.9, "max_scale": 1.1}],
    "data.target_frames": 32,
    "transformer.d_model": 64,
    "transformer.n_layers": 2,
    "transformer.dim_feedforward": 128,
    "bilstm.hidden": 64,
    "bilstm.n_layers": 1,
    "xgboost.n_estimators": 40,
    "xgboost.max_depth": 3,
    "xgboost.colsample_bytree": 0.3,
    "optim.epochs": 12,
    "optim.patience": 4,
    "optim.batch_size": 32,
    "optim.lr": 2.0e-3,
    "ensemble.n_folds": 2,
}
"""The CPU config cut down so that the whole demo takes about a minute on 2 cores."""


DEMO_FILES = ("synthetic.npz", "model", "evaluation", "demo.json")
"""What a demo writes into its folder (``demo.json`` last: it marks a finished demo)."""


def default_demo_dir() -> Path:
    """``$XDG_CACHE_HOME/signlang/demo`` (``~/.cache/signlang/demo``): outside the working folder,
    so a demo started in a checkout leaves nothing in it."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "signlang" / "demo"


def prepare_demo_dir(out: Path) -> None:
    """Make ``out`` ready for a demo: created if missing, an earlier demo's files removed; a
    non-empty folder that is not a demo's (no ``demo.json``, or other files) raises ``ValueError``."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: is a file, not a folder")
    if out.is_dir():
        found = sorted(p.name for p in out.iterdir())
        foreign = [n for n in found if n not in DEMO_FILES]
        if found and ("demo.json" not in found or foreign):
            shown = ", ".join((foreign or found)[:5])
            raise ValueError(f"--out {out}: the folder holds files that are not an earlier demo's ({shown}); "
                             "choose an empty or new folder")
        for name in found:  # an earlier demo: replaced
            path = out / name
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    out.mkdir(parents=True, exist_ok=True)


@dataclass(frozen=True)
class DemoSize:
    """How much synthetic data the demo makes."""

    n_classes: int = 8
    n_signers: int = 8
    clips_per_signer: int = 4
    frames: tuple[int, int] = (28, 44)


def demo_config(overrides: dict[str, Any] | None = None, seed: int = 0) -> TrainConfig:
    """``configs/cpu.yaml`` with :data:`DEMO_OVERRIDES` (and ``overrides``) applied."""
    cfg = load_config(shipped_config_path("cpu"))
    return merge_overrides(cfg, {**DEMO_OVERRIDES, "seed": seed, **(overrides or {})})


def run_demo(
    out_dir: str | os.PathLike[str],
    *,
    size: DemoSize = DemoSize(),
    overrides: dict[str, Any] | None = None,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the demo into ``out_dir`` and return its summary (also written to ``demo.json``)."""
    from signlang.datasets.loaders import save_npz
    from signlang.datasets.splits import split_indices
    from signlang.datasets.synthetic import make_synthetic_dataset
    from signlang.inference.predictor import Predictor
    from signlang.inference.evaluate import evaluate_bundle
    from signlang.training.pipeline import train_bundle

    out = Path(out_dir)
    prepare_demo_dir(out)
    timings: dict[str, float] = {}
    t_all = time.perf_counter()

    t0 = time.perf_counter()
    clips = make_synthetic_dataset(size.n_classes, size.n_signers, size.clips_per_signer, seed=seed, frames=size.frames)
    data_path = save_npz(clips, out / "synthetic.npz")
    timings["make_data_s"] = time.perf_counter() - t0

    cfg = demo_config(overrides, seed)
    t0 = time.perf_counter()
    train_report = train_bundle(data_path, out / "model", cfg, split="signer", models=None, track=False,
                                progress=progress, seed=seed)
    timings["train_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    eval_report = evaluate_bundle(out / "model", data_path, None, out_dir=out / "evaluation", progress=progress)
    timings["evaluate_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    _, test_idx = split_indices(clips, "signer", seed=seed)
    pick = int(test_idx[0])
    with Predictor(out / "model", backend="torch") as predictor:  # the one path from a clip to top-k
        answer = predictor.predict_landmarks(clips.landmarks[pick], top_k=3, name=str(clips.clip_ids[pick]))
    prediction = {
        "clip_id": str(clips.clip_ids[pick]),
        "signer": str(clips.signers[pick]),
        "true_sign": clips.classes[int(clips.y[pick])],
        "top_k": [{"sign": s, "prob": p} for s, p in answer.top_k],
    }
    timings["predict_s"] = time.perf_counter() - t0
    timings["total_s"] = time.perf_counter() - t_all

    summary = {
        "data": "SYNTHETIC signs (procedural bodies and hands), not real sign language",
        "n_clips": len(clips),
        "n_classes": len(clips.classes),
        "n_signers": size.n_signers,
        "split": eval_report["split"],
        "test_signers": sorted({str(s) for s in clips.signers[test_idx]}),
        "test": eval_report["summary"],
        "validation": train_report["validation_summary"],
        "prediction": prediction,
        "timings": timings,
        "files": {
            "data": str(data_path),
            "bundle": str(out / "model"),
            "report": str(out / "evaluation" / "report.json"),
            "confusion_matrix": str(out / "evaluation" / "confusion_matrix.png"),
        },
    }
    write_json(out / "demo.json", summary)
    return summary
