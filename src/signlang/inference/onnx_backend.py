"""ONNX Runtime inference backend: numpy features + onnxruntime sessions, no torch needed.

Reads an export folder written by :mod:`signlang.inference.export`::

    DIR/manifest.json     format, classes, preprocessing, plan, per-model file/inputs/outputs/sha256
    DIR/<name>.onnx       one graph per base model (networks end in a softmax) and meta.onnx

Every file's sha256 is checked against the manifest before a session is created, and only the
files the manifest names are read.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from signlang._io import sha256_file
from signlang.inference.plan import EnsemblePlan, Features, final_proba, meta_input, place_columns

ONNX_FORMAT = "signlang-onnx"
ONNX_FORMAT_VERSION = 1
ONNX_MANIFEST = "manifest.json"
META_NAME = "meta"


def read_onnx_manifest(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """Load and check ``folder/manifest.json`` and every listed file's sha256.

    Raises ``ValueError`` naming the file for a missing/malformed manifest, an unknown format,
    a missing model file, a path escaping the folder or a checksum mismatch.
    """
    folder = Path(folder)
    path = folder / ONNX_MANIFEST
    if not path.is_file():
        raise ValueError(f"{folder}: not an ONNX export (no {ONNX_MANIFEST}); create one with `signlang export`")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: unreadable manifest ({exc})") from None
    check_onnx_manifest(folder, manifest)
    return manifest


def check_onnx_manifest(folder: str | os.PathLike[str], manifest: Any) -> None:
    """Validate a manifest's format and each listed file's presence and sha256 (``ValueError`` naming it)."""
    folder = Path(folder)
    path = folder / ONNX_MANIFEST
    if not isinstance(manifest, dict) or manifest.get("format") != ONNX_FORMAT:
        raise ValueError(f"{path}: unknown format {manifest.get('format') if isinstance(manifest, dict) else None!r}, expected {ONNX_FORMAT!r}")
    if int(manifest.get("format_version", -1)) != ONNX_FORMAT_VERSION:
        raise ValueError(f"{path}: format_version {manifest.get('format_version')!r} is not supported (expected {ONNX_FORMAT_VERSION})")
    models = manifest.get("models")
    if not isinstance(models, dict) or not models:
        raise ValueError(f"{path}: 'models' must list every base model (and {META_NAME!r} for an ensemble)")
    for name, entry in models.items():
        rel = str(entry.get("file", ""))
        target = (folder / rel).resolve()
        if not rel.endswith(".onnx") or target.parent != folder.resolve():
            raise ValueError(f"{path}: model {name!r} has an invalid file entry {rel!r} (must be an .onnx file inside the folder)")
        if not target.is_file():
            raise ValueError(f"{target}: model file listed in the manifest is missing")
        digest = sha256_file(target)
        if digest != entry.get("sha256"):
            raise ValueError(f"{target}: sha256 mismatch (manifest {entry.get('sha256')}, file {digest}); the export was modified or damaged")


def session_options(threads: int) -> Any:
    """onnxruntime session options with ``threads`` intra-op threads and no inter-op pool."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, int(threads))
    opts.inter_op_num_threads = 1
    # The ensemble runs several sessions one after another: spinning worker threads of the session
    # that just finished would compete with the next session's threads for the same cores.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    return opts


INPUT_SOURCES: dict[str, Callable[[Features, str], np.ndarray]] = {
    "frame_features": lambda f, key: f.frame[key][0],
    "frame_mask": lambda f, key: f.frame[key][1],
    "pooled_features": lambda f, key: f.pooled[key],
}
"""Where a base model's ONNX input comes from, by the manifest's ``source`` name."""


class OnnxBackend:
    """Runs an exported ensemble: ``run(feats) -> (probs (N, C), {name: (N, C)})``."""

    name = "onnx"

    def __init__(self, folder: str | os.PathLike[str], *, threads: int = 1, manifest: dict[str, Any] | None = None) -> None:
        """Load ``folder``'s manifest (or check the given, not yet written ``manifest``) and open sessions."""
        import onnxruntime as ort

        self.folder = Path(folder)
        if manifest is None:
            self.manifest = read_onnx_manifest(self.folder)
        else:
            check_onnx_manifest(self.folder, manifest)
            self.manifest = manifest
        self.plan = EnsemblePlan.from_json(self.manifest["plan"], source=str(self.folder / ONNX_MANIFEST))
        self.preprocessing: dict[str, Any] = dict(self.manifest.get("preprocessing", {}))
        opts = session_options(threads)
        self.sessions: dict[str, Any] = {}
        self.output: dict[str, str] = {}
        for name, entry in self.manifest["models"].items():
            self.sessions[name] = ort.InferenceSession(str(self.folder / entry["file"]), sess_options=opts, providers=["CPUExecutionProvider"])
            self.output[name] = str(entry["outputs"][0]["name"])
        self._bases = {b.name: b for b in self.plan.bases}
        for name, entry in self.manifest["models"].items():
            bad = [i.get("source") for i in entry.get("inputs", []) if name != META_NAME and i.get("source") not in INPUT_SOURCES]
            if bad:
                raise ValueError(f"{self.folder / ONNX_MANIFEST}: model {name!r} has inputs of unknown source {bad}; known: {sorted(INPUT_SOURCES)}")
        missing = [b.name for b in self.plan.bases if b.name not in self.sessions]
        if missing:
            raise ValueError(f"{self.folder / ONNX_MANIFEST}: base model(s) {missing} of the plan have no ONNX file")

    def run_base(self, name: str, feats: Features) -> np.ndarray:
        """One base model's probabilities over its own classes (inputs wired by the manifest's ``source``)."""
        base = self._bases[name]
        inputs = {i["name"]: INPUT_SOURCES[i["source"]](feats, base.blocks) for i in self.manifest["models"][name]["inputs"]}
        return np.asarray(self.sessions[name].run([self.output[name]], inputs)[0], dtype=np.float32)

    def run(self, feats: Features) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """``(probs (N, len(classes)), {base name: (N, n_ensemble)})``."""
        n = self.plan.n_ensemble
        by_model: dict[str, np.ndarray] = {}
        self.last_ms: dict[str, float] = {}
        """Milliseconds each base model took in the last :meth:`run` (``evaluate`` reports them)."""
        for b in self.plan.bases:
            t0 = time.perf_counter()
            by_model[b.name] = place_columns(self.run_base(b.name, feats), b.columns, n)
            self.last_ms[b.name] = (time.perf_counter() - t0) * 1e3
        meta = None
        if self.plan.has_meta:
            raw = self.sessions[META_NAME].run([self.output[META_NAME]], {"input": meta_input(self.plan, by_model, feats)})[0]
            meta = np.asarray(raw, dtype=np.float32)
        return final_proba(self.plan, meta, by_model), by_model
