"""The ``tiny_bundle`` fixture: a real, small stacking ensemble trained in seconds and saved as a bundle.

Session-scoped and shared by the inference, export, service and explanation tests. It trains a
tiny transformer, a tiny BiLSTM (2 epochs each) and a small pooled XGBoost under an XGBoost
meta-learner with 2 out-of-fold folds on a small synthetic dataset, then writes it with
:func:`signlang.models.bundle.save_bundle`. :func:`tiny_clips` gives the training clips again
(deterministic), e.g. to classify clips the models know.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

TINY_FRAMES = 32
TINY_PREPROCESSING = {
    "input": "landmarks (T, 75, 3) float32, NaN = not detected (signlang.landmarks.layout)",
    "normalize": {"target_frames": TINY_FRAMES, "smooth_window": 5, "smooth_order": 2, "max_gap": 8},
    "feature_blocks": None,
}


TINY_TRAIN_OVERRIDES = {
    "augment": [], "data.target_frames": 12, "transformer.max_len": 16, "transformer.d_model": 8, "transformer.n_heads": 2,
    "transformer.n_layers": 1, "transformer.dim_ff": 16, "bilstm.hidden": 8, "bilstm.layers": 1, "xgboost.n_estimators": 4,
    "xgboost.max_depth": 2, "optim.epochs": 1, "optim.batch_size": 16, "ensemble.n_folds": 2,
}
"""Config overrides that make `signlang train`'s whole ensemble fit in seconds (for `merge_overrides`)."""


def tiny_clips(n_classes: int = 4, seed: int = 0):
    """The small synthetic ClipSet the tiny bundle is trained on (deterministic)."""
    from signlang.datasets.synthetic import make_synthetic_dataset

    return make_synthetic_dataset(n_classes=n_classes, n_signers=3, clips_per_signer=3, seed=seed, frames=(24, 40))


def train_tiny_ensemble(clips):
    """A fitted StackingEnsemble (transformer + bilstm + pooled XGBoost, XGBoost meta, 2 folds)."""
    import torch

    from signlang.features.normalize import NormalizeConfig, normalize_clips
    from signlang.models.ensemble import StackingEnsemble
    from signlang.models.trees import PooledXGBoostClassifier, XGBoostClassifier
    from signlang.training.estimator import NeuralSequenceClassifier

    torch.set_num_threads(1)
    torch.manual_seed(0)
    X = normalize_clips(clips.landmarks, NormalizeConfig.from_dict(TINY_PREPROCESSING["normalize"]))
    train_cfg = {"optim": {"epochs": 2, "batch_size": 16}, "seed": 0}
    bases = [
        ("transformer", NeuralSequenceClassifier(
            arch="transformer", arch_kwargs=dict(d_model=16, n_heads=2, n_layers=1, dim_feedforward=32, max_len=64),
            train_config=train_cfg, val_fraction=0.0)),
        ("bilstm", NeuralSequenceClassifier(arch="bilstm", arch_kwargs=dict(hidden=8), train_config=train_cfg, val_fraction=0.0)),
        ("xgboost", PooledXGBoostClassifier(n_estimators=8, max_depth=3, learning_rate=0.3, n_jobs=1)),
    ]
    meta = XGBoostClassifier(n_estimators=8, max_depth=2, learning_rate=0.3, n_jobs=1)
    ens = StackingEnsemble(base_estimators=bases, meta_estimator=meta, n_folds=2, random_state=0)
    return ens.fit(X, clips.y)


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder of a saved tiny stacking-ensemble bundle (classes = the synthetic sign names)."""
    from signlang.models.bundle import save_bundle

    clips = tiny_clips()
    ens = train_tiny_ensemble(clips)
    out = tmp_path_factory.mktemp("tiny") / "bundle"
    save_bundle(out, ens, classes=clips.classes, preprocessing=TINY_PREPROCESSING, report={"kind": "tiny test bundle"})
    return out


@pytest.fixture(scope="session")
def tiny_onnx(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny bundle exported to ONNX (parity-checked by the export itself)."""
    import torch

    from signlang.inference.export import export_bundle

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("tiny_onnx") / "onnx"
    export_bundle(tiny_bundle, out)
    return out


@pytest.fixture(scope="module")
def predictor(tiny_bundle: Path):
    """A torch-backend :class:`Predictor` over ``tiny_bundle`` with one thread (one per test module)."""
    import torch

    from signlang.inference.predictor import Predictor

    torch.set_num_threads(1)
    with Predictor(tiny_bundle, backend="torch", threads=1) as p:
        yield p
