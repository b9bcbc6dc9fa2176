"""An sklearn-style wrapper around a registry network, for inference on landmark arrays.

:class:`NeuralSequenceModel` takes normalised landmarks ``X (N, T, 75, 3)``, turns them into
per-frame features and a frame mask (:mod:`signlang.features.engineering`) and runs the network in
batches in eval mode. It has no ``fit``: the trainer subclasses it
(``training.estimator.NeuralSequenceClassifier``) and a model bundle rebuilds it with
:meth:`NeuralSequenceModel.from_module`.

This file also declares the ``neural`` model kind (every registered network): its bundle entry
(``<name>.safetensors`` + arch and constructor kwargs), its runner on per-frame features and its
ONNX exporter (:func:`network_to_onnx`).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import NotFittedError
from torch import nn

from signlang.models.featurize import frame_table
from signlang.models.registry import MODELS, SEQUENCE, ModelKind, build_model, register_kind

MAX_FRAMES = 4096
"""The longest clip an exported network takes when it declares no ``max_len`` of its own."""


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


# --- the "neural" model kind ----------------------------------------------------------------------
def _classes_list(classes: Any) -> list[Any]:
    return [c.item() if isinstance(c, np.generic) else c for c in np.asarray(classes).tolist()]


def _save_neural(est: NeuralSequenceModel, name: str) -> tuple[dict[str, Any], dict[str, bytes]]:
    import safetensors.torch

    module = est.module_
    config = dict(module.config)
    arch = getattr(type(module), "registry_name", est.arch)
    tensors = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    fname = f"{name}.safetensors"
    entry = {
        "name": name, "kind": "neural", "arch": arch, "config": config, "file": fname,
        "feature_blocks": None if est.feature_blocks is None else list(est.feature_blocks),
        "classes": _classes_list(est.classes_), "batch_size": int(est.batch_size),
    }
    # one metadata key: safetensors writes a map of several keys in a random order, so the same weights
    # would give different bytes from build to build (the pretrained model's rebuild is checked byte for byte)
    metadata = {"signlang": json.dumps({"arch": arch, "name": name}, sort_keys=True)}
    return entry, {fname: safetensors.torch.save(tensors, metadata=metadata)}


def _load_neural(entry: dict[str, Any], files: dict[str, bytes], where: str) -> NeuralSequenceModel:
    import safetensors.torch

    config = dict(entry["config"])
    module = build_model(entry["arch"], **config)
    try:
        state = safetensors.torch.load(files[entry["file"]])
        module.load_state_dict(state, strict=True)
    except Exception as exc:  # safetensors and torch raise several types for a bad file
        raise ValueError(f"{where}/{entry['file']}: cannot load the weights of model {entry['name']!r}: {exc}") from None
    arch_kwargs = {k: v for k, v in config.items() if k not in ("n_features", "n_classes")}
    blocks = entry.get("feature_blocks")
    return NeuralSequenceModel.from_module(
        module, entry["arch"], arch_kwargs, np.asarray(entry["classes"]),
        None if blocks is None else tuple(blocks), batch_size=int(entry.get("batch_size", 256)),
    )


def run_network(est: NeuralSequenceModel, inputs: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Softmax of the network on features ``x (N, T, F)`` float32 and ``mask (N, T)`` bool -> ``(N, C)`` float32."""
    from signlang.models.combine import softmax

    x, mask = inputs
    module = est.module_.eval()
    with torch.inference_mode():
        logits = module(torch.from_numpy(x), torch.from_numpy(mask)).float().numpy()
    return softmax(logits)


class _WithSoftmax(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(x, mask), dim=-1)


def max_frames(module: nn.Module) -> int:
    """The longest clip ``module`` takes (its ``max_len``, else :data:`MAX_FRAMES`)."""
    return int(getattr(module, "max_len", MAX_FRAMES))


@contextlib.contextmanager
def quiet_logs() -> Iterator[None]:
    """Silence the ONNX exporter's progress prints and torch's info logs for the duration."""
    logger = logging.getLogger("torch")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)


def network_to_onnx(module: nn.Module, n_features: int) -> bytes:
    """Serialized ONNX of ``softmax(module(x (B, T, F), mask (B, T)))`` with dynamic B and T.

    A network whose forward does not trace well declares an export adapter in its registration
    (``register_model(..., export=...)``), used here; the export's parity check proves it."""
    module = module.eval()
    name = str(getattr(module, "registry_name", ""))
    adapter = MODELS.get(name).export if name in MODELS else None
    wrapped = _WithSoftmax(adapter(module) if adapter else module).eval()
    t_max = max_frames(module)
    batch = torch.export.Dim("batch", min=1, max=65536)
    frames = torch.export.Dim("frames", min=2, max=max(2, t_max))
    # Uncommon example sizes (batch 7, 23 frames): an example size equal to a layer width once
    # got that width annotated as "frames" in the graph, which broke ORT's buffer planning.
    t0 = min(23, max(2, t_max))
    x = torch.zeros(7, t0, n_features)
    mask = torch.ones(7, t0, dtype=torch.bool)
    mask[1, t0 // 2:] = False
    with warnings.catch_warnings(), quiet_logs():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            wrapped, (x, mask), dynamo=True, input_names=["x", "mask"], output_names=["probs"],
            dynamic_shapes={"x": {0: batch, 1: frames}, "mask": {0: batch, 1: frames}}, optimize=True, verbose=False,
        )
    proto = program.model_proto
    # Drop the intermediate shape annotations; ORT infers them itself from the dynamic inputs.
    del proto.graph.value_info[:]
    return proto.SerializeToString()


def _fit_network(est: Any, X: Any, y: Any, X_val: Any = None, y_val: Any = None) -> Any:
    return est.fit(X, y, X_val, y_val)


register_kind(ModelKind(
    "neural", NeuralSequenceModel, SEQUENCE, save=_save_neural, load=_load_neural, run=run_network,
    to_onnx=lambda est, n_features: network_to_onnx(est.module_, n_features), fit=_fit_network, plan_name="network",
    distributed=True,
))
