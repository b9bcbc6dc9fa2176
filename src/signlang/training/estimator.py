"""``NeuralSequenceClassifier``: the trainable sklearn estimator around a registry network.

It is :class:`signlang.models.base.NeuralSequenceModel` plus ``fit``: ``fit(X (N, T, 75, 3), y)``
builds the network with ``models.registry.build_model(arch, n_features=F, n_classes=C,
**arch_kwargs)`` and trains it with :func:`signlang.training.trainer.train_network`, featurising
every batch after augmentation. After ``fit`` it is an ordinary ``NeuralSequenceModel``
(``module_``, ``classes_``, ``n_features_in_``) that ``models.bundle`` can save, plus
``history_`` and ``best_epoch_``. All ``__init__`` parameters are stored unchanged, so
``sklearn.base.clone`` works (the stacking ensemble clones it per fold).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from signlang.features.engineering import feature_dim
from signlang.models.base import NeuralSequenceModel
from signlang.models.featurize import check_landmarks
from signlang.models.registry import MODELS, build_model
from signlang.training.config import TrainConfig, config_from_dict, config_to_dict, default_config, resolve_device
from signlang.training.trainer import CallbackLike, MetricsTracker, TrainResult, train_network

def arch_kwargs_from_config(cfg: TrainConfig, arch: str) -> dict[str, Any]:
    """Constructor kwargs of network ``arch``: its config section (the registry's one schema)."""
    return MODELS.get(arch).kwargs(cfg.section(arch))


def _as_config(train_config: TrainConfig | dict[str, Any] | None) -> TrainConfig:
    if train_config is None:
        return default_config()
    if isinstance(train_config, TrainConfig):
        return train_config
    if isinstance(train_config, dict):
        return config_from_dict(train_config)
    raise ValueError(f"train_config: expected a TrainConfig, a dict or None, got {type(train_config).__name__}")


def stratified_holdout(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(fit_idx, val_idx)``: about ``fraction`` of every class held out (at least one per class
    with >= 2 clips; classes with a single clip stay in the fit part)."""
    rng = np.random.default_rng(seed)
    y = np.asarray(y)
    order = rng.permutation(len(y))
    ys = y[order]
    sort = np.argsort(ys, kind="stable")
    idx_sorted, ys_sorted = order[sort], ys[sort]
    _, starts, counts = np.unique(ys_sorted, return_index=True, return_counts=True)
    n_val = np.where(counts >= 2, np.maximum(1, np.round(counts * fraction)).astype(np.int64), 0)
    n_val = np.minimum(n_val, counts - 1)
    rank_in_class = np.arange(len(ys_sorted)) - np.repeat(starts, counts)
    is_val = rank_in_class < np.repeat(n_val, counts)
    return np.sort(idx_sorted[~is_val]), np.sort(idx_sorted[is_val])


class NeuralSequenceClassifier(NeuralSequenceModel):
    """Trainable ``NeuralSequenceModel`` (same parameters; ``fit`` reads the training ones).

    Training parameters: ``train_config`` (a :class:`TrainConfig` or its dict; None =
    :func:`default_config`; its ``optim``, ``augment`` and ``seed`` are used), ``val_fraction``
    (stratified share of ``X`` held out for early stopping when ``fit`` gets no validation set),
    ``checkpoint_dir`` (safetensors checkpoints; None = none), ``quiet`` (no progress bars).
    ``device`` may be ``"auto"``.
    """

    @classmethod
    def from_config(cls, cfg: TrainConfig, arch: str = "transformer", **params: Any) -> "NeuralSequenceClassifier":
        """An estimator whose architecture, feature blocks and training follow ``cfg``."""
        blocks = cfg.data.feature_blocks
        params.setdefault("device", cfg.device)
        return cls(
            arch=arch, arch_kwargs=arch_kwargs_from_config(cfg, arch),
            feature_blocks=None if blocks is None else tuple(blocks), train_config=config_to_dict(cfg), **params,
        )

    def _device(self) -> torch.device:
        dev = resolve_device(self.device)  # plain "cuda": this process's GPU (a DDP rank's, set by init_distributed)
        return torch.device(f"cuda:{torch.cuda.current_device()}" if dev == "cuda" else dev)

    def _encode(self, y: Any, name: str) -> np.ndarray:
        y = np.asarray(y)
        pos = np.searchsorted(self.classes_, y)
        pos = np.clip(pos, 0, len(self.classes_) - 1)
        bad = self.classes_[pos] != y
        if bad.any():
            raise ValueError(f"{type(self).__name__}.fit: {name} has labels not in the training labels: {sorted(set(y[bad].tolist()))[:5]}")
        return pos.astype(np.int64)

    def fit(
        self,
        X: Any,
        y: Any,
        X_val: Any = None,
        y_val: Any = None,
        *,
        callbacks: Sequence[CallbackLike] | None = None,
        tracker: MetricsTracker | None = None,
        max_steps: int | None = None,
        resume: bool = False,
    ) -> "NeuralSequenceClassifier":
        """Train on landmarks ``X (N, T, 75, 3)`` with labels ``y (N,)``.

        Without ``X_val``/``y_val`` a stratified ``val_fraction`` of ``X`` is held out for early
        stopping (``val_fraction=0``: no validation, train to the last epoch).
        """
        name = type(self).__name__
        cfg = _as_config(self.train_config)
        X = check_landmarks(X, f"{name}.fit: X")
        y = np.asarray(y)
        if y.ndim != 1 or len(y) != len(X):
            raise ValueError(f"{name}.fit: y must have one label per clip ({len(X)}), got shape {y.shape}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"{name}: val_fraction must be in [0, 1), got {self.val_fraction}")
        self.classes_ = np.unique(y)
        if len(self.classes_) < 2:
            raise ValueError(f"{name}.fit: need at least 2 classes, got {self.classes_.tolist()}")
        y_idx = self._encode(y, "y")
        if X_val is not None and y_val is not None:
            Xv = check_landmarks(X_val, f"{name}.fit: X_val")
            yv = self._encode(y_val, "y_val")
            Xf, yf = X, y_idx
        elif self.val_fraction > 0:
            fit_idx, val_idx = stratified_holdout(y_idx, self.val_fraction, cfg.seed)
            Xf, yf, Xv, yv = X[fit_idx], y_idx[fit_idx], X[val_idx], y_idx[val_idx]
        else:
            Xf, yf, Xv, yv = X, y_idx, None, None

        n_features = feature_dim(self.feature_blocks)
        torch.manual_seed(cfg.seed)  # a seeded initialisation
        kwargs = dict(self.arch_kwargs or {})
        module = build_model(self.arch, n_features=n_features, n_classes=len(self.classes_), **kwargs)
        augment = None
        if cfg.augment:
            from signlang.features.augment import build_augmentation

            augment = build_augmentation(cfg.augment)
        result: TrainResult = train_network(
            module, Xf, yf, Xv, yv, cfg, featurize=self.featurize, augment=augment, callbacks=callbacks,
            checkpoint_dir=None if self.checkpoint_dir is None else Path(self.checkpoint_dir), resume=resume,
            tracker=tracker, max_steps=max_steps, device=self._device(), quiet=self.quiet,
        )
        self.module_ = module.eval()
        self.n_features_in_ = n_features
        self.history_ = result.history
        self.best_epoch_ = result.best_epoch
        self.train_result_ = result
        return self
