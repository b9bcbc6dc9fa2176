"""What closes the cross-signer gap on asl_crowd_8signs (kept cells): cheap variants of the XGBoost base model.

Grouped K-fold by signer (the benchmark's folds, ``bench.accuracy.signer_folds`` over every clip; models
train on the kept cells of the other folds' people, scored on the kept cells of the fold). Every
variant is the pooled XGBoost of the CPU configuration (``configs/cpu.yaml``), changed in one way:

* ``shipped``: as shipped (dominant hand canonicalised, pooling over every frame with a pose or a hand);
* ``class-balanced``: sample weights N / (C n_c), so a sign with few people weighs as much as hello;
* ``active span``: pooling over the frames from the first to the last one with a hand (the sign),
  not the idle frames around it;
* ``no canonical hand``: the dominant-hand mirroring switched off (what the canonicalisation buys).

Usage (one core, about 10-20 minutes on a quiet machine)::

    OMP_NUM_THREADS=1 python benchmarks/bench_crowd_gap.py --folds 3 --out runs/gap/gap.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np


def active_span_mask(X: np.ndarray) -> np.ndarray:
    """``(N, T, 75, 3) -> (N, T)``: frames from the first to the last one with a hand (all frames if none has one)."""
    from signlang.landmarks.layout import part_present

    hand = part_present(X)[..., 1:].any(axis=-1)  # (N, T)
    t = np.arange(hand.shape[1])
    first = np.where(hand.any(1), np.argmax(hand, 1), 0)
    last = np.where(hand.any(1), hand.shape[1] - 1 - np.argmax(hand[:, ::-1], 1), hand.shape[1] - 1)
    return (t[None] >= first[:, None]) & (t[None] <= last[:, None])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=None)
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--variants", default="shipped,class-balanced,active span,no canonical hand")
    ap.add_argument("--out", default="runs/gap/gap.json")
    args = ap.parse_args()

    from signlang.bench.accuracy import CROWD_DATA, per_person, per_sign, signer_folds
    from signlang.bench.common import shared_data_path
    from signlang.datasets.audit import audit_mask, read_audit, resolve_audit
    from signlang.features.engineering import frame_features, frame_mask, pool_features
    from signlang.models.trees import XGBoostClassifier
    from signlang.training.config import load_config, merge_overrides, shipped_config_path
    from signlang.models.evaluation import labels_accuracy_f1
    from signlang.training.pipeline import load_data, normalize, preprocessing_of

    data = Path(args.data) if args.data else shared_data_path(*CROWD_DATA)
    clips, _ = load_data(data, "all")
    keep, audit = audit_mask(clips, read_audit(resolve_audit(data)))
    folds = signer_folds(clips, args.folds)
    cfg = load_config(shipped_config_path("cpu"))
    xcfg = cfg.section("xgboost")
    names = np.asarray([str(s) for s in clips.signers])
    y = clips.y
    k = len(clips.classes)
    cache: dict[bool, np.ndarray] = {}

    def landmarks(canonical: bool) -> np.ndarray:
        if canonical not in cache:
            c = merge_overrides(cfg, {"data.canonical_hand": canonical})
            cache[canonical] = normalize([clips.landmarks[i] for i in np.flatnonzero(keep)], preprocessing_of(c))
        return cache[canonical]

    def features(X: np.ndarray, span: bool) -> np.ndarray:
        out = []
        for s in range(0, len(X), 512):
            xb = X[s:s + 512]
            mask = active_span_mask(xb) & frame_mask(xb) if span else frame_mask(xb)
            out.append(pool_features(frame_features(xb), mask))
        return np.concatenate(out)

    kept = np.flatnonzero(keep)
    yk, fk, nk = y[kept], folds[kept], names[kept]
    results = {}
    for variant in [v.strip() for v in args.variants.split(",") if v.strip()]:
        t0 = time.perf_counter()
        F = features(landmarks(variant != "no canonical hand"), variant == "active span")
        pred = np.zeros(len(kept), np.int64)
        for f in range(args.folds):
            tr, te = fk != f, fk == f
            w = None
            if variant == "class-balanced":
                counts = np.bincount(yk[tr], minlength=k).astype(np.float64)
                w = (tr.sum() / (np.count_nonzero(counts) * np.maximum(counts, 1)))[yk[tr]]
            est = XGBoostClassifier(**dataclasses.asdict(xcfg), seed=cfg.seed, classes=np.arange(k), n_jobs=1)
            est.fit(F[tr], yk[tr], sample_weight=w)
            pred[te] = est.classes_[np.argmax(est.predict_proba(F[te]), 1)]
        pp = per_person(yk, pred, nk)
        results[variant] = {**labels_accuracy_f1(yk, pred, k), **{key: v for key, v in pp.items() if key != "by_person"},
                            "per_sign": per_sign(yk, pred, nk, clips.classes),
                            "by_fold": [float((pred[fk == f] == yk[fk == f]).mean()) for f in range(args.folds)],
                            "seconds": time.perf_counter() - t0}
        print(variant, json.dumps({key: (round(v, 4) if isinstance(v, float) else v) for key, v in results[variant].items()
                                   if key != "per_sign"}), {s: round(v["accuracy"], 3) for s, v in results[variant]["per_sign"].items()},
              flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"data": str(data), "folds": args.folds, "n_kept": int(keep.sum()),
                                          "n_excluded": audit["n_excluded"], "results": results}, indent=1))


if __name__ == "__main__":
    main()
