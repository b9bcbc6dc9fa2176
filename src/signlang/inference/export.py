"""ONNX export of a whole stacking ensemble, with a built-in parity check against PyTorch.

* Networks: ``torch.onnx.export(..., dynamo=True, dynamic_shapes=...)`` with dynamic batch and
  frame axes (the legacy exporter freezes T). The exported graph ends in a softmax, so every
  base model's ONNX output is probabilities. A network whose forward does not trace well gets an
  *export adapter* (declared in its registration, ``register_model(..., export=...)``) that
  computes the same function in traceable ops; the parity check proves it.
* XGBoost base models and the meta-learner: ``onnxmltools.convert_xgboost`` on the booster cut
  at its best iteration (opset 15, the converter's newest).
* ``DIR/manifest.json`` lists every file with inputs, outputs and sha256, the classes, the
  preprocessing and the ensemble plan; it is written last and only after the parity check
  (clips of several lengths, largest probability difference <= ``tolerance``) passed.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import warnings
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from signlang import __version__
from signlang._io import atomic_write, sha256_file, write_json
from signlang._registry import Registry
from signlang.inference.onnx_backend import META_NAME, ONNX_FORMAT, ONNX_FORMAT_VERSION, ONNX_MANIFEST, OnnxBackend
from signlang.inference.plan import BasePlan, compute_features
from signlang.inference.torch_backend import TorchBackend
from signlang.models.combiners import LinearCombiner
from signlang.models.registry import MODELS

XGB_OPSET = 15
PARITY_TOLERANCE = 1e-4
PARITY_LENGTHS = (3, 17, 40, 64)  # batch 3 at T=3 too: equal symbolic sizes once exposed a buffer bug
MAX_FRAMES = 4096


class ExportParityError(RuntimeError):
    """ONNX Runtime and PyTorch disagree by more than the tolerance."""


class _WithSoftmax(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(x, mask), dim=-1)


def _max_frames(module: nn.Module) -> int:
    return int(getattr(module, "max_len", MAX_FRAMES))


def network_to_onnx(module: nn.Module, n_features: int) -> bytes:
    """Serialized ONNX of ``softmax(module(x (B, T, F), mask (B, T)))`` with dynamic B and T."""
    module = module.eval()
    name = str(getattr(module, "registry_name", ""))
    adapter = MODELS.get(name).export if name in MODELS else None
    wrapped = _WithSoftmax(adapter(module) if adapter else module).eval()
    t_max = _max_frames(module)
    batch = torch.export.Dim("batch", min=1, max=65536)
    frames = torch.export.Dim("frames", min=2, max=max(2, t_max))
    # Uncommon example sizes (batch 7, 23 frames): an example size equal to a layer width once
    # got that width annotated as "frames" in the graph, which broke ORT's buffer planning.
    t0 = min(23, max(2, t_max))
    x = torch.zeros(7, t0, n_features)
    mask = torch.ones(7, t0, dtype=torch.bool)
    mask[1, t0 // 2:] = False
    with warnings.catch_warnings(), _quiet_logs():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            wrapped, (x, mask), dynamo=True, input_names=["x", "mask"], output_names=["probs"],
            dynamic_shapes={"x": {0: batch, 1: frames}, "mask": {0: batch, 1: frames}}, optimize=True, verbose=False,
        )
    proto = program.model_proto
    # Drop the intermediate shape annotations; ORT infers them itself from the dynamic inputs.
    del proto.graph.value_info[:]
    return proto.SerializeToString()


def segmenter_to_onnx(segmenter: Any) -> bytes:
    """Serialized ONNX of the segmenter's streaming step: ``x (1, n, F)``, ``state (layers, 1, H)`` ->
    ``probs (1, n, 3)`` (softmax), ``state_out``; dynamic ``n``."""

    class _Step(nn.Module):
        def __init__(self, net: nn.Module) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            logits, new_state = self.net(x, state)
            return torch.softmax(logits, -1), new_state

    net = segmenter.net_.eval()
    x = torch.zeros(1, 7, net.config["n_features"])
    state = net.initial_state(1)
    buf = io.BytesIO()
    with warnings.catch_warnings(), _quiet_logs():
        warnings.simplefilter("ignore")
        torch.onnx.export(_Step(net).eval(), (x, state), buf, dynamo=False, input_names=["x", "state"],
                          output_names=["probs", "state_out"], dynamic_axes={"x": {1: "frames"}, "probs": {1: "frames"}},
                          opset_version=17)
    return buf.getvalue()


def check_segmenter_parity(segmenter: Any, folder: Path, entry: dict[str, Any], *, frames: int = 97, seed: int = 0) -> float:
    """Largest difference of the tag probabilities of PyTorch and ONNX Runtime on a random stream fed in uneven chunks."""
    import onnxruntime as ort

    from signlang.inference.segments import OnnxTagger, TorchTagger

    x = np.random.default_rng(seed).normal(0, 1, (frames, segmenter.net_.config["n_features"])).astype(np.float32)
    session = ort.InferenceSession(str(folder / entry["file"]), providers=["CPUExecutionProvider"])
    outs = []
    for tagger in (TorchTagger(segmenter), OnnxTagger(session, entry)):
        cuts = [0, 1, 9, 40, frames]
        outs.append(np.concatenate([tagger.step(x[a:b]) for a, b in zip(cuts[:-1], cuts[1:])] + [tagger.flush()]))
    return float(np.abs(outs[0] - outs[1]).max())


@contextlib.contextmanager
def _quiet_logs() -> Any:
    """Silence the exporter's progress prints and torch's info logs for the duration."""
    logger = logging.getLogger("torch")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)


def xgboost_to_onnx(est: Any, n_features: int) -> bytes:
    """Serialized ONNX of an :class:`~signlang.models.trees.XGBoostClassifier` (input ``input`` (N, D))."""
    from onnxmltools import convert_xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType

    booster = est.booster_[: est.best_iteration_ + 1]
    onx = convert_xgboost(booster, initial_types=[("input", FloatTensorType([None, n_features]))], target_opset=XGB_OPSET)
    return onx.SerializeToString()


def linear_to_onnx(est: LinearCombiner) -> bytes:
    """Serialized ONNX of a :class:`~signlang.models.combiners.LinearCombiner`: ``[Softmax](input @ W + b)``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = numpy_helper.from_array(np.asarray(est.weights_, dtype=np.float32), "weights")
    bias = numpy_helper.from_array(np.asarray(est.bias_, dtype=np.float32), "bias")
    nodes = [helper.make_node("MatMul", ["input", "weights"], ["scores"]),
             helper.make_node("Add", ["scores", "bias"], ["logits" if est.softmax_ else "probabilities"])]
    if est.softmax_:
        nodes.append(helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1))
    n_in, n_out = est.weights_.shape
    graph = helper.make_graph(
        nodes, f"{est.method}_combiner",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, n_in])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, n_out])],
        initializer=[weights, bias])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="signlang")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _io_entry(name: str, shape: list[Any], dtype: str, source: str | None = None) -> dict[str, Any]:
    d: dict[str, Any] = {"name": name, "shape": shape, "dtype": dtype}
    if source:
        d["source"] = source
    return d


def _write_bytes(path: Path, data: bytes) -> str:
    with atomic_write(path) as fh:
        fh.write(data)
    return sha256_file(path)


def random_landmarks(n: int, t: int, rng: np.random.Generator) -> np.ndarray:
    """Plausible normalised clips ``(n, t, 75, 3)`` for parity checks: smooth motion, some missing hands."""
    base = rng.normal(0.0, 0.5, size=(n, 1, 75, 3))
    drift = np.cumsum(rng.normal(0.0, 0.03, size=(n, t, 75, 3)), axis=1)
    lm = (base + drift).astype(np.float32)
    gone = rng.random((n, t, 2)) < 0.2
    lm[:, :, 33:54][gone[..., 0]] = np.nan
    lm[:, :, 54:75][gone[..., 1]] = np.nan
    return lm


def check_parity(torch_backend: TorchBackend, onnx_backend: OnnxBackend, lengths: Sequence[int], *, seed: int = 0, batch: int = 3) -> dict[str, Any]:
    """Largest absolute probability difference (ensemble and per model) over clips of ``lengths``."""
    rng = np.random.default_rng(seed)
    worst: dict[str, float] = {}
    for t in lengths:
        X = random_landmarks(batch, int(t), rng)
        feats = compute_features(X, torch_backend.plan)
        p_t, by_t = torch_backend.run(feats)
        p_o, by_o = onnx_backend.run(feats)
        diffs = {"ensemble": float(np.abs(p_t - p_o).max())}
        diffs.update({k: float(np.abs(by_t[k] - by_o[k]).max()) for k in by_t})
        for k, v in diffs.items():
            worst[k] = max(worst.get(k, 0.0), v)
    return {"lengths": [int(t) for t in lengths], "max_abs_diff": worst, "max_abs_diff_all": max(worst.values())}


def export_model(
    model: Any,
    out_dir: str | os.PathLike[str],
    *,
    classes: Sequence[str],
    preprocessing: dict[str, Any],
    source: dict[str, Any] | None = None,
    lengths: Sequence[int] | None = None,
    tolerance: float = PARITY_TOLERANCE,
    segmenter: Any = None,
    onegraph: bool = False,
) -> dict[str, Any]:
    """Export every model of a fitted ensemble (or single estimator) to ONNX in ``out_dir``.

    ``classes`` are the names ``model.classes_`` index. Returns the manifest. Raises
    :class:`ExportParityError` (and writes no manifest) when ONNX Runtime and PyTorch differ by
    more than ``tolerance`` on random clips of ``lengths`` frames. A ``segmenter`` is exported as
    ``segmenter.onnx`` (its streaming step) and parity-checked the same way. ``onegraph``: also write
    ``model.onnx``, raw landmarks -> probabilities in one graph (:mod:`signlang.inference.onegraph`),
    parity-checked against normalisation + features + PyTorch on raw clips; a bundle whose preprocessing
    the graph does not implement gets ``"onegraph": {"unsupported": reason}`` in the manifest instead.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch_be = TorchBackend(model, classes)
    plan = torch_be.plan
    probe = compute_features(random_landmarks(1, 8, np.random.default_rng(1)), plan)
    models: dict[str, Any] = {}
    t_max = MAX_FRAMES
    if META_NAME in {b.name for b in plan.bases}:
        raise ValueError(f"a base model may not be called {META_NAME!r} (reserved for the meta-learner)")
    for i, base in enumerate(plan.bases):
        est = torch_be._estimators[base.name]
        file = f"base{i}_{re.sub(r'[^A-Za-z0-9_-]', '_', base.name)}.onnx"  # names never become paths as-is
        models[base.name] = EXPORTERS[base.kind](est, base, probe, out / file)
        models[base.name]["outputs"] = [_io_entry("probs" if base.kind == "network" else "probabilities", ["batch", len(base.columns)], "float32")]
        if base.kind == "network":
            t_max = min(t_max, _max_frames(est.module_))
    if plan.has_meta:
        n_meta = len(plan.bases) * plan.n_ensemble + (probe.pooled[plan.passthrough_blocks].shape[1] if plan.passthrough_pooled else 0)
        linear = isinstance(model.meta_, LinearCombiner)
        models[META_NAME] = {
            "file": f"{META_NAME}.onnx",
            "kind": "linear_meta" if linear else "xgboost_meta",
            "sha256": _write_bytes(out / f"{META_NAME}.onnx",
                                   linear_to_onnx(model.meta_) if linear else xgboost_to_onnx(model.meta_, n_meta)),
            "inputs": [_io_entry("input", ["batch", n_meta], "float32", "meta_input")],
            "outputs": [_io_entry("probabilities", ["batch", len(plan.meta_columns)], "float32")],
            "feature_names": list(getattr(model, "meta_feature_names_", None) or []),
        }
    manifest: dict[str, Any] = {
        "format": ONNX_FORMAT,
        "format_version": ONNX_FORMAT_VERSION,
        "signlang_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "classes": list(plan.classes),
        "preprocessing": dict(preprocessing),
        "plan": plan.to_json(),
        "models": models,
        "max_frames": t_max,
        "source": dict(source or {}),
        "opsets": {"xgboost": XGB_OPSET},
    }
    lengths = sorted({int(min(t, t_max)) for t in (lengths or PARITY_LENGTHS)})
    onnx_be = OnnxBackend(out, threads=1, manifest=manifest)
    parity = check_parity(torch_be, onnx_be, lengths)
    parity["tolerance"] = tolerance
    if not parity["max_abs_diff_all"] <= tolerance:
        raise ExportParityError(
            f"ONNX Runtime and PyTorch disagree: largest probability difference {parity['max_abs_diff_all']:.3g} > {tolerance:g} "
            f"(by model: {parity['max_abs_diff']}); no manifest written to {out}"
        )
    manifest["parity"] = parity
    if segmenter is not None:
        seg_entry, _ = segmenter.to_entry()
        seg_entry = {k: v for k, v in seg_entry.items() if k != "history"}
        seg_entry.update(file="segmenter.onnx", sha256=_write_bytes(out / "segmenter.onnx", segmenter_to_onnx(segmenter)))
        diff = check_segmenter_parity(segmenter, out, seg_entry)
        if not diff <= tolerance:
            raise ExportParityError(f"segmenter: ONNX Runtime and PyTorch tag probabilities differ by {diff:.3g} > {tolerance:g}; no manifest written to {out}")
        manifest["segmenter"] = {**seg_entry, "parity": {"max_abs_diff": diff, "tolerance": tolerance}}
    if onegraph:
        _add_onegraph(out, manifest, torch_be, tolerance)
    write_json(out / ONNX_MANIFEST, manifest)
    return manifest


def _add_onegraph(out: Path, manifest: dict[str, Any], torch_be: TorchBackend, tolerance: float) -> None:
    from signlang.inference.onegraph import OneGraphUnsupported, write_onegraph

    try:
        entry = write_onegraph(out, manifest, torch_be)
    except OneGraphUnsupported as exc:
        manifest["onegraph"] = {"unsupported": str(exc)}
        return
    diff = entry["parity"]["max_abs_diff"]
    if not diff <= tolerance:
        raise ExportParityError(f"{out / entry['file']}: the one graph and normalisation + features + PyTorch differ by {diff:.3g} > "
                                f"{tolerance:g} on raw clips; no manifest written to {out}")
    entry["parity"]["tolerance"] = tolerance
    manifest["onegraph"] = entry


def export_bundle(bundle_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str], **kwargs: Any) -> dict[str, Any]:
    """Load (and sha256-verify) a model bundle and export it with :func:`export_model`."""
    from signlang.models.bundle import load_bundle

    bundle = load_bundle(bundle_dir)
    source = {"bundle": str(Path(bundle_dir).resolve()), "bundle_manifest_sha256": sha256_file(Path(bundle_dir) / "manifest.json")}
    return export_model(bundle.model, out_dir, classes=bundle.classes, preprocessing=bundle.preprocessing, source=source,
                        segmenter=bundle.segmenter, **kwargs)


def _export_network(est: Any, base: BasePlan, probe: Any, path: Path) -> dict[str, Any]:
    n_features = int(probe.frame[base.blocks][0].shape[-1])
    return {
        "file": path.name,
        "kind": "network",
        "arch": str(getattr(est, "arch", "")),
        "sha256": _write_bytes(path, network_to_onnx(est.module_, n_features)),
        "inputs": [
            _io_entry("x", ["batch", "frames", n_features], "float32", "frame_features"),
            _io_entry("mask", ["batch", "frames"], "bool", "frame_mask"),
        ],
        "feature_blocks": base.blocks,
    }


def _export_pooled_xgb(est: Any, base: BasePlan, probe: Any, path: Path) -> dict[str, Any]:
    n_features = int(probe.pooled[base.blocks].shape[-1])
    return {
        "file": path.name,
        "kind": "xgboost_pooled",
        "sha256": _write_bytes(path, xgboost_to_onnx(est, n_features)),
        "inputs": [_io_entry("input", ["batch", n_features], "float32", "pooled_features")],
        "feature_blocks": base.blocks,
    }


EXPORTERS: Registry[Callable[[Any, BasePlan, Any, Path], dict[str, Any]]] = Registry("ONNX exporter")
"""Plan kind -> function writing that base model's ONNX file and returning its manifest entry."""
EXPORTERS.register("network", _export_network)
EXPORTERS.register("xgboost_pooled", _export_pooled_xgb)
