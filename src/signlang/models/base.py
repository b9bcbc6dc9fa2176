"""An sklearn-style wrapper around a registry network, for inference on landmark arrays.

:class:`NeuralSequenceModel` takes normalised landmarks ``X (N, T, 75, 3)``, turns them into
per-frame features and a frame mask (:mod:`signlang.features.engineering`) and runs the network in
batches in eval mode. It has no ``fit``: the trainer subclasses it
(``training.estimator.NeuralSequenceClassifier``) and a model bundle rebuilds it with
:meth:`NeuralSequenceModel.from_module`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import NotFittedError
from torch import nn

from signlang.models.featurize import frame_table


class NeuralSequenceModel(BaseEstimator, ClassifierMixin):
    """Inference wrapper: ``predict_proba(X (N, T, 75, 3)) -> (N, C)`` through ``module_``.

    Parameters: ``arch`` (a registry name), ``arch_kwargs`` (constructor hyper-parameters besides
    ``n_features``/``n_classes``), ``feature_blocks`` (None = the default feature blocks), ``batch_size``
    and ``device`` for inference. Fitted attributes: ``module_``, ``classes_``, ``n_features_in_``
    (features per frame, F). ``train_config``, ``val_fraction``, ``checkpoint_dir`` and ``quiet``
    are the training parameters that :class:`signlang.training.estimator.NeuralSequenceClassifier`
    (this class plus ``fit``) reads; sklearn wants every parameter in one signature, so they live
    here once and a model loaded from a bundle keeps their defaults.
    """

    def __init__(
        self,
        arch: str = "transformer",
        arch_kwargs: dict[str, Any] | None = None,
        feature_blocks: tuple[str, ...] | None = None,
        batch_size: int = 256,
        device: str = "cpu",
        train_config: Any = None,
        val_fraction: float = 0.15,
        checkpoint_dir: str | None = None,
        quiet: bool = True,
    ) -> None:
        self.arch = arch
        self.arch_kwargs = arch_kwargs
        self.feature_blocks = feature_blocks
        self.batch_size = batch_size
        self.device = device
        self.train_config = train_config
        self.val_fraction = val_fraction
        self.checkpoint_dir = checkpoint_dir
        self.quiet = quiet

    @classmethod
    def from_module(
        cls,
        module: nn.Module,
        arch: str,
        arch_kwargs: dict[str, Any] | None,
        classes: Sequence[Any] | np.ndarray,
        feature_blocks: tuple[str, ...] | None = None,
        **params: Any,
    ) -> "NeuralSequenceModel":
        """Wrap an already trained ``module`` (its ``config`` gives ``n_features``/``n_classes``)."""
        classes_arr = np.asarray(classes)
        config = getattr(module, "config", None)
        if not isinstance(config, dict) or "n_features" not in config or "n_classes" not in config:
            raise ValueError(f"{cls.__name__}.from_module: the module must carry a config dict with n_features and n_classes, got {config!r}")
        if classes_arr.ndim != 1 or len(classes_arr) != int(config["n_classes"]):
            raise ValueError(f"{cls.__name__}.from_module: {len(classes_arr)} classes given but the module has n_classes={config['n_classes']}")
        est = cls(arch=arch, arch_kwargs=None if arch_kwargs is None else dict(arch_kwargs),
                  feature_blocks=None if feature_blocks is None else tuple(feature_blocks), **params)
        est.module_ = module.eval()
        est.classes_ = classes_arr
        est.n_features_in_ = int(config["n_features"])
        return est

    def _device(self) -> torch.device:
        return torch.device(self.device)

    def featurize(self, X: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Features ``(N, T, F)`` torch.float32 and mask ``(N, T)`` torch.bool from landmarks ``(N, T, 75, 3)``."""
        feats, mask = frame_table(X, self.feature_blocks, name=f"{type(self).__name__}: X")
        return torch.from_numpy(np.ascontiguousarray(feats)), torch.from_numpy(np.ascontiguousarray(mask))

    def predict_logits(self, X: Any) -> np.ndarray:
        """Raw network outputs ``(N, C)`` float32, computed in batches of ``batch_size`` without gradients."""
        if not hasattr(self, "module_"):
            raise NotFittedError(f"{type(self).__name__}: no network yet; fit it or build it with from_module")
        feats, mask = self.featurize(X)
        if feats.shape[-1] != self.n_features_in_:
            raise ValueError(f"{type(self).__name__}: the features have {feats.shape[-1]} values per frame, the network expects {self.n_features_in_} (feature_blocks={self.feature_blocks})")
        if self.batch_size < 1:
            raise ValueError(f"{type(self).__name__}: batch_size must be >= 1, got {self.batch_size}")
        device = self._device()
        module = self.module_.to(device)
        was_training = module.training
        module.eval()
        out = []
        try:
            with torch.no_grad():
                for start in range(0, feats.shape[0], self.batch_size):
                    xb = feats[start:start + self.batch_size].to(device)
                    mb = mask[start:start + self.batch_size].to(device)
                    out.append(module(xb, mb).float().cpu())
        finally:
            module.train(was_training)
        if not out:
            return np.zeros((0, len(self.classes_)), dtype=np.float32)
        return torch.cat(out).numpy()

    def predict_proba(self, X: Any) -> np.ndarray:
        """Softmax probabilities ``(N, C)`` float32 over ``classes_``."""
        logits = torch.from_numpy(self.predict_logits(X))
        return torch.softmax(logits, dim=-1).numpy()

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class per clip ``(N,)``."""
        return np.asarray(self.classes_)[np.argmax(self.predict_proba(X), axis=1)]
