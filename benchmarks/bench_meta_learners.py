"""Which way of combining the base models works best on the blocked split? (an analysis script)

Trains the cpu.yaml base models out-of-fold on the training part of ``blocked:0.2`` (3 blocked
folds, as ``signlang train`` does), then compares, on the test part, the base models of a kept
ensemble bundle combined by: the XGBoost meta-learner (the shipped one), a logistic-regression
meta-learner on log-probabilities, and the plain mean of the probabilities.

    python benchmarks/bench_meta_learners.py DATA.npz runs/bench/ensemble-blocked_0.2

The bundle must come from ``signlang benchmark accuracy --keep runs/bench`` (trained on the whole
training part of the same split and seed). Results: docs/benchmarks.md.
"""

from __future__ import annotations

import sys

import numpy as np
from sklearn.linear_model import LogisticRegression

from signlang.datasets.formats import load_dataset
from signlang.datasets.splits import fold_ids, split_indices
from signlang.models.bundle import load_bundle
from signlang.training.config import load_config, shipped_config_path
from signlang.training.pipeline import build_base_model, meta_learner, normalize, preprocessing_of

SPLIT, SEED, N_FOLDS = "blocked:0.2", 42, 3


def main(data: str, bundle_dir: str) -> None:
    cfg = load_config(shipped_config_path("cpu"))
    clips = load_dataset(data)
    train, test = split_indices(clips, SPLIT, seed=SEED)
    pre = preprocessing_of(cfg)
    X_train = normalize([clips.landmarks[i] for i in train], pre)
    X_test = normalize([clips.landmarks[i] for i in test], pre)
    y_train, y_test = clips.y[train], clips.y[test]
    folds = fold_ids(clips, train, N_FOLDS, SPLIT, SEED)
    names, n_classes = list(cfg.ensemble.models), len(clips.classes)

    oof = np.zeros((len(train), len(names) * n_classes), np.float32)
    for k in np.unique(folds):
        for b, name in enumerate(names):
            est = build_base_model(name, cfg, n_classes, SEED).fit(X_train[folds != k], y_train[folds != k])
            oof[folds == k, b * n_classes:(b + 1) * n_classes] = est.predict_proba(X_train[folds == k])

    by_model = load_bundle(bundle_dir).model.predict_proba_by_model(X_test)
    test_probs = np.concatenate([by_model[n] for n in names], axis=1)

    def accuracy(p: np.ndarray) -> float:
        return float((p.argmax(1) == y_test).mean())

    rows = [(f"{n} alone", accuracy(by_model[n])) for n in names]
    rows.append(("XGBoost meta-learner (shipped)", accuracy(meta_learner(n_classes, SEED).fit(oof, y_train).predict_proba(test_probs))))
    logistic = LogisticRegression(max_iter=2000).fit(np.log(oof + 1e-6), y_train)
    rows.append(("logistic meta-learner on log-probabilities", accuracy(logistic.predict_proba(np.log(test_probs + 1e-6)))))
    rows.append(("mean of the probabilities", accuracy(test_probs.reshape(len(test), len(names), n_classes).mean(1))))
    print("| combination | test accuracy |\n|---|---:|")
    for name, acc in rows:
        print(f"| {name} | {100 * acc:.2f}% |")


if __name__ == "__main__":
    main(*sys.argv[1:3])
