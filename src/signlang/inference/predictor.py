"""The predictor: a verified model bundle (or ONNX export) turned into top-k signs.

``Predictor(model_dir, backend="torch" | "onnx")`` loads

* a bundle folder (``signlang-bundle`` manifest; every file's sha256 is checked and pickles are
  refused by :func:`signlang.models.bundle.load_bundle`), or
* an ONNX export folder (``signlang-onnx`` manifest, sha256-checked by
  :mod:`signlang.inference.onnx_backend`; runs on numpy + onnxruntime alone, torch is never
  imported). With ``backend="onnx"`` and a bundle, ``<bundle>/onnx`` is used when it was exported
  from this very bundle, otherwise the bundle is exported into a private temporary folder.

A video goes decode -> MediaPipe Holistic landmarks -> the bundle's normalisation -> features
-> models; a landmark clip skips the first two. The answer is a :class:`Prediction` with
per-stage timings. Clips in which no person or no hand is found raise :class:`DetectionError`;
files that are not decodable videos raise :class:`UnreadableVideoError`.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from signlang.inference.plan import Features, compute_features
from signlang.landmarks.layout import as_landmarks, part_present

BACKENDS = ("torch", "onnx")
STAGES = ("decode", "landmarks", "features", "model", "total")


class DetectionError(ValueError):
    """Nothing to classify: no person, or no hand, in the clip (HTTP 422)."""


class NoPersonError(DetectionError):
    """No pose and no hand was detected in any frame."""


class NoHandsError(DetectionError):
    """A person is visible but neither hand is detected in any frame."""


class UnreadableVideoError(ValueError):
    """The file is not a video that can be decoded (HTTP 415)."""


@dataclass
class Prediction:
    """One clip's answer: ``top_k`` [(sign, prob)], ``probs (C,)`` in the bundle's class order."""

    top_k: list[tuple[str, float]]
    probs: np.ndarray
    hands_detected: float
    frames: int
    timings_ms: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON answer of the HTTP service."""
        return {
            "top_k": [{"sign": s, "prob": p} for s, p in self.top_k],
            "hands_detected": self.hands_detected,
            "frames": self.frames,
            "timings_ms": {k: round(v, 3) for k, v in self.timings_ms.items()},
        }


def _top_k(probs: np.ndarray, classes: Sequence[str], k: int) -> list[tuple[str, float]]:
    k = max(1, min(int(k), len(classes)))
    idx = np.argsort(-probs, kind="stable")[:k]
    return [(classes[i], float(probs[i])) for i in idx]


def hands_fraction(lm: np.ndarray) -> float:
    """Fraction of frames of ``(T, 75, 3)`` with at least one hand."""
    return float(part_present(lm)[:, 1:].any(axis=1).mean()) if lm.shape[0] else 0.0


def check_detectable(lm: np.ndarray, name: str) -> float:
    """Raise :class:`NoPersonError`/:class:`NoHandsError` naming ``name``; return the hands fraction."""
    present = part_present(lm)
    if not present.any():
        raise NoPersonError(f"{name}: no person found in any of the {lm.shape[0]} frames")
    if not present[:, 1:].any():
        raise NoHandsError(f"{name}: a person is visible but no hand was found in any of the {lm.shape[0]} frames")
    return float(present[:, 1:].any(axis=1).mean())


def _read_format(folder: Path) -> str | None:
    path = folder / "manifest.json"
    if not path.is_file():
        return None
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: unreadable manifest ({exc})") from None
    return d.get("format") if isinstance(d, dict) else None


class Predictor:
    """Loads a model once and classifies videos, landmark clips and batches of clips.

    ``threads``: intra-op threads of ONNX Runtime (and of torch when given for the torch backend).
    """

    def __init__(self, model_dir: str | os.PathLike[str], *, backend: str = "torch", threads: int | None = None,
                 onnx_dir: str | os.PathLike[str] | None = None, top_k: int = 5) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.model_dir = Path(model_dir)
        if not self.model_dir.is_dir():
            raise FileNotFoundError(f"model folder not found: {self.model_dir}")
        self.backend = backend
        self.default_k = int(top_k)
        self._tmp_export: Path | None = None
        self._graphs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        fmt = _read_format(self.model_dir)
        if fmt == "signlang-onnx":
            if backend != "onnx":
                raise ValueError(f"{self.model_dir}: is an ONNX export; use backend='onnx' (or point at the bundle for 'torch')")
            self._load_onnx(self.model_dir, threads or 1)
        elif fmt == "signlang-bundle":
            if backend == "torch":
                self._load_torch(threads)
            else:
                self._load_onnx(self._onnx_for_bundle(onnx_dir), threads or 1)
        else:
            raise ValueError(f"{self.model_dir}: not a signlang bundle or ONNX export (manifest format {fmt!r}); train one with `signlang train`")
        from signlang.features.normalize import NormalizeConfig

        if "normalize" not in self.preprocessing:
            raise ValueError(f"{self.model_dir}: preprocessing has no 'normalize' settings (keys: {sorted(self.preprocessing)})")
        self.normalize_config = NormalizeConfig.from_dict(dict(self.preprocessing["normalize"]))
        self.classes: tuple[str, ...] = tuple(self.runner.plan.classes)

    # --- loading ------------------------------------------------------------------------------
    def _load_torch(self, threads: int | None) -> None:
        import torch

        from signlang.inference.torch_backend import TorchBackend
        from signlang.models.bundle import load_bundle

        if threads:
            torch.set_num_threads(int(threads))
        bundle = load_bundle(self.model_dir)
        self.runner: Any = TorchBackend(bundle.model, bundle.classes)
        self.preprocessing: dict[str, Any] = dict(bundle.preprocessing)
        self.model_info = {"path": str(self.model_dir), "format": "signlang-bundle", "backend": "torch",
                           "created": bundle.manifest.get("created_utc"), "models": [b.name for b in self.runner.plan.bases]}

    def _onnx_for_bundle(self, onnx_dir: str | os.PathLike[str] | None) -> Path:
        """An ONNX export of this bundle: ``onnx_dir``, ``<bundle>/onnx`` if it matches, or a fresh one."""
        from signlang._io import sha256_file

        bundle_sha = sha256_file(self.model_dir / "manifest.json")
        for cand in ([Path(onnx_dir)] if onnx_dir else []) + [self.model_dir / "onnx"]:
            if _read_format(cand) == "signlang-onnx":
                src = json.loads((cand / "manifest.json").read_text(encoding="utf-8")).get("source", {})
                if src.get("bundle_manifest_sha256") == bundle_sha:
                    return cand
                if onnx_dir and cand == Path(onnx_dir):
                    raise ValueError(f"{cand}: this ONNX export was not made from {self.model_dir} (bundle manifest sha256 differs)")
        from signlang.inference.export import export_bundle

        self._tmp_export = Path(tempfile.mkdtemp(prefix="signlang-onnx-"))
        export_bundle(self.model_dir, self._tmp_export)
        return self._tmp_export

    def _load_onnx(self, folder: Path, threads: int) -> None:
        from signlang.inference.onnx_backend import OnnxBackend

        self.runner = OnnxBackend(folder, threads=threads)
        self.preprocessing = dict(self.runner.preprocessing)
        self.model_info = {"path": str(self.model_dir), "format": "signlang-onnx", "backend": "onnx", "onnx_dir": str(folder),
                           "created": self.runner.manifest.get("created"), "models": [b.name for b in self.runner.plan.bases]}

    def close(self) -> None:
        """Release MediaPipe graphs and a temporary ONNX export."""
        while not self._graphs.empty():
            self._graphs.get_nowait().close()
        if self._tmp_export is not None:
            shutil.rmtree(self._tmp_export, ignore_errors=True)
            self._tmp_export = None

    def __enter__(self) -> "Predictor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- core ---------------------------------------------------------------------------------
    def features(self, clips: Sequence[np.ndarray]) -> Features:
        """Normalise clips ``[(T_i, 75, 3)]`` with the bundle's settings and compute every feature table."""
        from signlang.features.normalize import normalize_clips

        X = normalize_clips(list(clips), self.normalize_config)
        return compute_features(X, self.runner.plan)

    def proba(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        """Probabilities ``(N, C)`` in the bundle's class order for raw clips ``[(T_i, 75, 3)]``."""
        return self.runner.run(self.features(clips))[0]

    def proba_by_model(self, clips: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        """Each base model's probabilities ``(N, C)`` in the bundle's class order."""
        from signlang.inference.plan import place_columns

        plan = self.runner.plan
        by_model = self.runner.run(self.features(clips))[1]
        return {k: place_columns(v, plan.output_columns, len(plan.classes)) for k, v in by_model.items()}

    def _predict_arrays(self, clips: list[np.ndarray], hands: list[float], k: int,
                        pre_ms: list[dict[str, float]]) -> list[Prediction]:
        t0 = time.perf_counter()
        feats = self.features(clips)
        t1 = time.perf_counter()
        probs = self.runner.run(feats)[0]
        t2 = time.perf_counter()
        n = len(clips)
        out = []
        for i in range(n):
            timings = {"decode": pre_ms[i].get("decode", 0.0), "landmarks": pre_ms[i].get("landmarks", 0.0),
                       "features": (t1 - t0) * 1e3 / n, "model": (t2 - t1) * 1e3 / n}
            timings["total"] = sum(timings.values())
            out.append(Prediction(_top_k(probs[i], self.classes, k), probs[i], hands[i], int(clips[i].shape[0]), timings))
        return out

    # --- public API ---------------------------------------------------------------------------
    def predict_landmarks(self, landmarks: Any, top_k: int | None = None, *, name: str = "landmarks") -> Prediction:
        """Classify one clip: ``(T, 75, 3)``, ``(T, 225)`` or ``(T, 258)`` (NaN or 0 = not detected)."""
        lm = as_landmarks(landmarks, name=name)
        if lm.shape[0] < 1:
            raise ValueError(f"{name}: the clip has no frames")
        if np.isinf(lm).any():
            raise ValueError(f"{name}: contains infinite values (use NaN for points that were not detected)")
        hands = check_detectable(lm, name)
        return self._predict_arrays([lm], [hands], top_k or self.default_k, [{}])[0]

    def predict_batch(self, clips: Sequence[Any], top_k: int | None = None) -> tuple[list[Prediction | None], dict[int, str]]:
        """Classify many clips in one pass. Returns (predictions with None for bad clips, {index: error})."""
        good: list[np.ndarray] = []
        hands: list[float] = []
        where: list[int] = []
        errors: dict[int, str] = {}
        for i, c in enumerate(clips):
            try:
                lm = as_landmarks(c, name=f"clip {i}")
                if lm.shape[0] < 1 or np.isinf(lm).any():
                    raise ValueError(f"clip {i}: empty or contains infinite values")
                hands.append(check_detectable(lm, f"clip {i}"))
                good.append(lm)
                where.append(i)
            except ValueError as exc:
                errors[i] = str(exc)
        results: list[Prediction | None] = [None] * len(clips)
        if good:
            for i, p in zip(where, self._predict_arrays(good, hands, top_k or self.default_k, [{}] * len(good))):
                results[i] = p
        return results, errors

    def extract(self, path: str | os.PathLike[str]) -> tuple[np.ndarray, dict[str, float]]:
        """Decode a video and run MediaPipe Holistic: ``(T, 75, 3)`` and decode/landmarks times (ms)."""
        from signlang.landmarks.extract import new_holistic, results_to_frame
        from signlang.landmarks.video import VideoReader, VideoReadError

        p = Path(path)
        try:
            graph = self._graphs.get_nowait()
        except queue.Empty:
            graph = new_holistic()
        t_decode = t_lm = 0.0
        frames: list[np.ndarray] = []
        try:
            graph.reset()
            with VideoReader(p) as reader:
                it = reader.frames(max_side=640)
                while True:
                    t0 = time.perf_counter()
                    item = next(it, None)
                    t1 = time.perf_counter()
                    t_decode += t1 - t0
                    if item is None:
                        break
                    frames.append(results_to_frame(graph.process(item[1])))
                    t_lm += time.perf_counter() - t1
        except VideoReadError as exc:
            raise UnreadableVideoError(str(exc)) from None
        finally:
            self._graphs.put(graph)
        if not frames:
            raise UnreadableVideoError(f"{p}: no frames could be decoded")
        return np.stack(frames), {"decode": t_decode * 1e3, "landmarks": t_lm * 1e3}

    def predict_video(self, path: str | os.PathLike[str], top_k: int | None = None) -> Prediction:
        """Classify one video file (any container FFmpeg reads)."""
        lm, pre = self.extract(path)
        hands = check_detectable(lm, str(path))
        return self._predict_arrays([lm], [hands], top_k or self.default_k, [pre])[0]

    def predict_videos(self, paths: Sequence[str | os.PathLike[str]], top_k: int | None = None) -> tuple[list[Prediction | None], dict[int, str]]:
        """Classify many videos; a bad one is reported in the errors and never stops the rest."""
        results: list[Prediction | None] = []
        errors: dict[int, str] = {}
        for i, p in enumerate(paths):
            try:
                results.append(self.predict_video(p, top_k))
            except ValueError as exc:
                results.append(None)
                errors[i] = str(exc)
        return results, errors
