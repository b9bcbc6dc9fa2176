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
from signlang.inference.plan import EnsemblePlan, Features, run_plan

ONNX_FORMAT = "signlang-onnx"
ONNX_FORMAT_VERSION = 1
ONNX_MANIFEST = "manifest.json"
META_NAME = "meta"
ONEGRAPH_FILE = "model.onnx"
"""The one graph, raw landmarks -> probabilities (:mod:`signlang.inference.onegraph`), beside the split files."""
ONEGRAPH_INPUTS = ("landmarks", "lengths")
ONEGRAPH_OUTPUT = "probabilities"


def pad_clips(clips: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Clips ``[(T_i, 75, 3)]`` -> ``landmarks (N, max T_i, 75, 3)`` float32 (NaN after each clip's end) and ``lengths (N,)`` int64."""
    lengths = np.array([len(c) for c in clips], dtype=np.int64)
    out = np.full((len(clips), max(int(lengths.max()), 2), 75, 3), np.nan, dtype=np.float32)
    for i, c in enumerate(clips):
        out[i, : len(c)] = c
    return out, lengths


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

    def __init__(self, folder: str | os.PathLike[str], *, threads: int = 1, manifest: dict[str, Any] | None = None,
                 use_onegraph: bool = True) -> None:
        """Load ``folder``'s manifest (or check the given, not yet written ``manifest``) and open sessions
        (``model.onnx`` too when the manifest lists it and ``use_onegraph``: then :meth:`run_clips` runs raw clips
        through it; :meth:`run` always runs the split per-model graphs on given features)."""
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
        self.onegraph: OneGraphRunner | None = None
        """The one graph (``model.onnx``: raw landmarks -> probabilities) when the export has one; :meth:`run_clips` uses it."""
        entry = self.manifest.get("onegraph") or {}
        if entry.get("file"):  # checked whether or not it runs here: the export is one whole
            path = self.folder / ONEGRAPH_FILE
            if entry["file"] != ONEGRAPH_FILE or not path.is_file():
                raise ValueError(f"{self.folder / ONNX_MANIFEST}: 'onegraph' names {entry['file']!r}, but {path} is missing")
            digest = sha256_file(path)
            if digest != entry.get("sha256"):
                raise ValueError(f"{path}: sha256 mismatch (manifest {entry.get('sha256')}, file {digest}); the export was modified or damaged")
            if use_onegraph:
                self.onegraph = OneGraphRunner(path, entry, opts)

    def run_base(self, name: str, feats: Features) -> np.ndarray:
        """One base model's probabilities over its own classes (inputs wired by the manifest's ``source``)."""
        base = self._bases[name]
        inputs = {i["name"]: INPUT_SOURCES[i["source"]](feats, base.blocks) for i in self.manifest["models"][name]["inputs"]}
        return np.asarray(self.sessions[name].run([self.output[name]], inputs)[0], dtype=np.float32)

    def run(self, feats: Features) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """``(probs (N, len(classes)), {base name: (N, n_ensemble)})``; ``last_ms``: each base model's milliseconds."""
        def run_meta(z: np.ndarray) -> np.ndarray:
            return self.sessions[META_NAME].run([self.output[META_NAME]], {"input": z})[0]

        probs, by_model, self.last_ms = run_plan(self.plan, feats, lambda b: self.run_base(b.name, feats), run_meta)
        return probs, by_model

    def run_clips(self, clips: list[np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Raw clips ``[(T_i, 75, 3)]`` -> ``(probs (N, C), {base name: (N, n_ensemble)})`` through ``model.onnx``
        (normalisation and features inside the graph); ``ValueError`` when the export has no one graph."""
        if self.onegraph is None:
            raise ValueError(f"{self.folder}: this export has no {ONEGRAPH_FILE}; re-export it with `signlang export`")
        t0 = time.perf_counter()
        out = self.onegraph.run(clips)
        self.last_ms = {ONEGRAPH_FILE: (time.perf_counter() - t0) * 1e3}
        return out


class OneGraphRunner:
    """An ONNX Runtime session of ``model.onnx``: ``run(clips) -> (probs (N, C), {base name: (N, n_ensemble)})``."""

    CHUNK = 32
    """Most clips per session call (more run slower per clip on this CPU: the graph's temporaries leave the cache)."""
    CHUNK_FRAMES = 8192
    """Most padded frames (clips x longest clip) per session call: bounds the graph's temporaries (the smoothing
    gathers window x frames samples of 225 series per clip, about 160 MB at 8192 frames and window 11)."""

    def __init__(self, path: str | Path, entry: dict[str, Any], options: Any) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        self.session = ort.InferenceSession(str(self.path), sess_options=options, providers=["CPUExecutionProvider"])
        self.by_model: dict[str, str] = dict(entry["by_model"])
        self._names = [ONEGRAPH_OUTPUT, *self.by_model.values()]

    def run(self, clips: list[np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        probs, by = [], {k: [] for k in self.by_model}
        order = np.argsort([len(c) for c in clips], kind="stable")  # similar lengths share a chunk: less padding
        chunks, start = [], 0
        while start < len(order):
            stop = start + 1
            while stop < len(order) and stop - start < self.CHUNK and (stop + 1 - start) * len(clips[order[stop]]) <= self.CHUNK_FRAMES:
                stop += 1
            chunks.append(order[start:stop])
            start = stop
        for idx in chunks:
            landmarks, lengths = pad_clips([clips[i] for i in idx])
            outs = self.session.run(self._names, {"landmarks": landmarks, "lengths": lengths})
            probs.append(outs[0])
            for k, o in zip(self.by_model, outs[1:]):
                by[k].append(o)
        inv = np.empty_like(order)
        inv[order] = np.arange(len(order))
        return np.concatenate(probs)[inv], {k: np.concatenate(v)[inv] for k, v in by.items()}
