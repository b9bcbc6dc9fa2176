"""ONNX export of a whole stacking ensemble, with a built-in parity check against PyTorch.

Every base model and the meta-learner are exported by their model kind's ``to_onnx``
(:data:`signlang.models.registry.MODEL_KINDS`, declared in each estimator's own file); this module
wires their inputs (:func:`export_base`), writes the manifest and checks parity. The built-in kinds:

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

import io
import os
import re
import warnings
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from signlang import __version__
from signlang._io import atomic_write, sha256_file, write_json
from signlang.inference.onnx_backend import META_NAME, ONNX_FORMAT, ONNX_FORMAT_VERSION, ONNX_MANIFEST, OnnxBackend
from signlang.inference.plan import SEQUENCE, BasePlan, compute_features
from signlang.inference.torch_backend import TorchBackend
from signlang.models.base import MAX_FRAMES, max_frames, quiet_logs
from signlang.models.registry import kind_for
from signlang.models.trees import XGB_OPSET

PARITY_TOLERANCE = 1e-4
PARITY_LENGTHS = (3, 17, 40, 64)  # batch 3 at T=3 too: equal symbolic sizes once exposed a buffer bug


class ExportParityError(RuntimeError):
    """ONNX Runtime and PyTorch disagree by more than the tolerance."""


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
    with warnings.catch_warnings(), quiet_logs():
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
        models[base.name] = export_base(est, base, probe, out / file)
        if base.inputs == SEQUENCE:
            t_max = min(t_max, max_frames(est.module_) if hasattr(est, "module_") else MAX_FRAMES)
    if plan.has_meta:
        models[META_NAME] = export_meta(model, plan, probe, out / f"{META_NAME}.onnx")
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


def add_onegraph(bundle_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str], tolerance: float = 1e-4) -> dict[str, Any]:
    """Write ``model.onnx`` into the existing export ``out_dir`` of the bundle ``bundle_dir`` (its split files are
    kept as they are), parity-checked like :func:`export_model` does, and rewrite its manifest; returns it."""
    from signlang.inference.onnx_backend import read_onnx_manifest
    from signlang.models.bundle import load_bundle

    out = Path(out_dir)
    manifest = read_onnx_manifest(out)
    if manifest.get("source", {}).get("bundle_manifest_sha256") != sha256_file(Path(bundle_dir) / "manifest.json"):
        raise ValueError(f"{out / ONNX_MANIFEST}: this export was not made from {bundle_dir} (bundle_manifest_sha256 differs)")
    bundle = load_bundle(bundle_dir)
    _add_onegraph(out, manifest, TorchBackend(bundle.model, bundle.classes), tolerance)
    write_json(out / ONNX_MANIFEST, manifest)
    return manifest


def export_bundle(bundle_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str], **kwargs: Any) -> dict[str, Any]:
    """Load (and sha256-verify) a model bundle and export it with :func:`export_model`."""
    from signlang.models.bundle import load_bundle

    bundle = load_bundle(bundle_dir)
    source = {"bundle": str(Path(bundle_dir).resolve()), "bundle_manifest_sha256": sha256_file(Path(bundle_dir) / "manifest.json")}
    return export_model(bundle.model, out_dir, classes=bundle.classes, preprocessing=bundle.preprocessing, source=source,
                        segmenter=bundle.segmenter, **kwargs)


def export_base(est: Any, base: BasePlan, probe: Any, path: Path) -> dict[str, Any]:
    """Write base model ``est``'s ONNX graph (its kind's ``to_onnx``) to ``path``; returns its manifest entry.

    ``probe``: :class:`~signlang.inference.plan.Features` of any clip (gives the feature widths)."""
    kind = kind_for(est, f"base model {base.name!r}")
    if base.inputs == SEQUENCE:
        n_features = int(probe.frame[base.blocks][0].shape[-1])
        inputs = [_io_entry("x", ["batch", "frames", n_features], "float32", "frame_features"),
                  _io_entry("mask", ["batch", "frames"], "bool", "frame_mask")]
    else:
        n_features = int(probe.pooled[base.blocks].shape[-1])
        inputs = [_io_entry("input", ["batch", n_features], "float32", "pooled_features")]
    entry: dict[str, Any] = {"file": path.name, "kind": base.kind}
    if hasattr(est, "arch"):
        entry["arch"] = str(est.arch)
    entry.update(sha256=_write_bytes(path, kind.to_onnx(est, n_features)), inputs=inputs, feature_blocks=base.blocks,
                 outputs=[_io_entry(kind.onnx_output, ["batch", len(base.columns)], "float32")])
    return entry


def export_meta(model: Any, plan: Any, probe: Any, path: Path) -> dict[str, Any]:
    """Write a stacking ensemble's meta-learner (its kind's ``to_onnx``) to ``path``; returns its manifest entry."""
    n_meta = len(plan.bases) * plan.n_ensemble + (probe.pooled[plan.passthrough_blocks].shape[1] if plan.passthrough_pooled else 0)
    kind = kind_for(model.meta_, "meta-learner")
    return {
        "file": path.name,
        "kind": f"{kind.plan_name}_meta",
        "sha256": _write_bytes(path, kind.to_onnx(model.meta_, n_meta)),
        "inputs": [_io_entry("input", ["batch", n_meta], "float32", "meta_input")],
        "outputs": [_io_entry(kind.onnx_output, ["batch", len(plan.meta_columns)], "float32")],
        "feature_names": list(getattr(model, "meta_feature_names_", None) or []),
    }
