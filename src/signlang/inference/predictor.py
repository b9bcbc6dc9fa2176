"""The predictor: a verified model bundle (or ONNX export) turned into top-k signs.

``Predictor(model_dir, backend="torch" | "onnx")`` loads

* a bundle folder (``signlang-bundle`` manifest; every file's sha256 is checked and pickles are
  refused by :func:`signlang.models.bundle.load_bundle`), or
* an ONNX export folder (``signlang-onnx`` manifest, sha256-checked by
  :mod:`signlang.inference.onnx_backend`; runs on numpy + onnxruntime alone, torch is never
  imported). With ``backend="onnx"`` and a bundle, ``<bundle>/onnx`` is used when it was exported
  from this very bundle, otherwise the bundle is exported into a private temporary folder.

The Predictor receives landmarks ``(T, 75, 3)``: the bundle's normalisation -> features -> models.
Videos are turned into landmarks before it, by the one extraction function
(:class:`signlang.landmarks.extract.Landmarker`), and inputs are read by
:mod:`signlang.datasets.formats`. The answer is a :class:`Prediction` with per-stage timings. This
is the one way from landmarks to top-k signs: ``signlang predict``, ``evaluate``, ``explain``, the
HTTP service and the demo all go through it.

What the answer is besides the model's probabilities (nobody in the clip, no hands, the
no-sign class, unsure, unknown) is decided by the :class:`~signlang.inference.policy.DecisionPolicy`
(``Predictor.policy``), the one place for those rules.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from signlang.datasets.formats import Item
from signlang.inference.plan import Features, compute_features
from signlang.inference.policy import (  # noqa: F401 - DetectionError & co. are part of what predict raises
    MIN_CONFIDENCE, NO_HANDS_RULE, NO_PERSON_RULE, DecisionPolicy, DetectionError, NoHandsError, NoPersonError, Screen,
    error_code,
)

BACKENDS = ("torch", "onnx")


def torch_installed() -> bool:
    """Whether torch can be imported here (not the case in the lean, ONNX Runtime-only install)."""
    import importlib.util

    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        return False


@dataclass
class Prediction:
    """One clip's answer: ``top_k`` [(sign, prob)], ``probs (C,)`` in the bundle's class order."""

    top_k: list[tuple[str, float]]
    probs: np.ndarray
    hands_detected: float
    frames: int
    timings_ms: dict[str, float] = field(default_factory=dict)
    rule: str | None = None
    """None: the model answered; :data:`NO_PERSON_RULE` / :data:`NO_HANDS_RULE`: nobody / no hand in any frame,
    the no-sign class answered."""
    low_confidence: bool = False
    """The top sign's probability is below the policy's ``min_confidence``: the model is unsure, say so."""
    unknown: bool = False
    """The bundle's open-set rule says the sign is not one the model knows (False without a rule)."""
    by_model: dict[str, np.ndarray] | None = None
    """Each base model's probabilities ``(C,)`` under the same rules (only when asked for: ``evaluate``)."""

    def to_dict(self) -> dict[str, Any]:
        """The JSON answer of the HTTP service (``rule`` only when a rule, not the model, answered)."""
        out: dict[str, Any] = {
            "top_k": [{"sign": s, "prob": p} for s, p in self.top_k],
            "hands_detected": self.hands_detected,
            "frames": self.frames,
            "timings_ms": {k: round(v, 3) for k, v in self.timings_ms.items()},
            "low_confidence": bool(self.low_confidence),
            "unknown": bool(self.unknown),
        }
        if self.rule:
            out["rule"] = self.rule
        return out

    def verdict(self) -> dict[str, Any]:
        """The answer without timings: ``top_k``, ``low_confidence``, ``unknown`` (and ``rule``), as ``explain`` reports it."""
        doc = self.to_dict()
        return {k: doc[k] for k in ("top_k", "low_confidence", "unknown", "rule") if k in doc}


def _top_k(probs: np.ndarray, classes: Sequence[str], k: int) -> list[tuple[str, float]]:
    k = max(1, min(int(k), len(classes)))
    idx = np.argsort(-probs, kind="stable")[:k]
    return [(classes[i], float(probs[i])) for i in idx]


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
    """Loads a model once and classifies landmark clips ``(T, 75, 3)`` and batches of them.

    ``threads``: intra-op threads of ONNX Runtime (and of torch when given for the torch backend).
    ``backend="auto"``: onnx for an ONNX export folder, torch for a bundle (onnx, through the
    bundle's ``onnx/`` export, where torch is not installed: the lean install). ``progress``: called
    with a line of text for slow one-off steps (the first ONNX export of a bundle).
    ``one_graph``: with the onnx backend, run clips through the export's ``model.onnx`` (normalisation
    and features inside the graph, parity-checked at export) instead of numpy features + the per-model
    graphs. ``None`` (the default): the one graph when the export has one, else the split path; ``True``:
    the one graph or a ``ValueError``; ``False``: the split path (its files stay for the explainer).
    Timings of both in docs/benchmarks.md.
    """

    def __init__(self, model_dir: str | os.PathLike[str], *, backend: str = "torch", threads: int | None = None,
                 onnx_dir: str | os.PathLike[str] | None = None, top_k: int = 5,
                 progress: Callable[[str], None] | None = None,
                 min_confidence: float | None = None, one_graph: bool | None = None) -> None:
        if backend not in (*BACKENDS, "auto"):
            raise ValueError(f"backend must be one of {(*BACKENDS, 'auto')}, got {backend!r}")
        self.model_dir = Path(model_dir)
        if not self.model_dir.is_dir():
            raise FileNotFoundError(f"model folder not found: {self.model_dir}")
        self.default_k = int(top_k)
        self.bundle_manifest: dict[str, Any] = {}
        """The bundle's manifest (its split, training clips, ...); empty for an ONNX export folder."""
        self._want_one_graph = one_graph
        self._progress = progress or (lambda _msg: None)
        self._tmp_export: Path | None = None
        fmt = _read_format(self.model_dir)
        if backend == "auto":
            backend = "onnx" if fmt == "signlang-onnx" or not torch_installed() else "torch"
        self.backend = backend
        if fmt == "signlang-onnx":
            if backend != "onnx":
                raise ValueError(f"{self.model_dir}: is an ONNX export; use backend='onnx' (or point at the bundle for 'torch')")
            self._load_onnx(self.model_dir, threads or 1)
        elif fmt == "signlang-bundle":
            if backend == "torch":
                self._load_torch(threads)
            else:
                self._load_onnx(self._onnx_for_bundle(onnx_dir), threads or 1)
                self.bundle_manifest = json.loads((self.model_dir / "manifest.json").read_text(encoding="utf-8"))
        else:
            raise ValueError(f"{self.model_dir}: not a signlang bundle or ONNX export (manifest format {fmt!r}); train one with `signlang train`")
        if one_graph and not self.one_graph:  # asked for explicitly: never a silent fall-back to the split path
            raise ValueError(f"{self.model_dir}: one_graph needs the onnx backend and an export holding model.onnx "
                             f"(backend {backend!r}); write one with `signlang export`")
        from signlang.features.normalize import NormalizeConfig

        if "normalize" not in self.preprocessing:
            raise ValueError(f"{self.model_dir}: preprocessing has no 'normalize' settings (keys: {sorted(self.preprocessing)})")
        self.normalize_config = NormalizeConfig.from_dict(dict(self.preprocessing["normalize"]))
        self.classes: tuple[str, ...] = tuple(self.runner.plan.classes)
        self.segmenter = self._load_segmenter(threads or 1)
        """The bundle's temporal segmenter (:class:`~signlang.inference.segments.SegmenterRunner`), or None: the
        streaming recognizer decodes in two stages with it, with its window gate without."""
        self.policy = DecisionPolicy.for_model(self.classes, self.preprocessing, self.runner.plan.open_set,
                                               min_confidence=min_confidence, source=str(self.model_dir))
        """The decision rules (nobody, no hands, the no-sign class, unsure, unknown): :mod:`signlang.inference.policy`."""

    @property
    def min_confidence(self) -> float:
        """The policy's bar for ``low_confidence`` (settable: the service applies its own)."""
        return self.policy.min_confidence

    @min_confidence.setter
    def min_confidence(self, value: float) -> None:
        self.policy = DecisionPolicy(self.classes, min_confidence=value, open_set=self.policy.open_set)

    @property
    def no_sign(self) -> str | None:
        """The vocabulary's no-sign class (the answer when nobody signs), or None."""
        return self.policy.no_sign

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
        self.bundle_manifest = dict(bundle.manifest)
        self.model_info = {"path": str(self.model_dir), "format": "signlang-bundle", "backend": "torch",
                           "created": bundle.manifest.get("created_utc"), "models": [b.name for b in self.runner.plan.bases]}

    def _load_segmenter(self, threads: int) -> Any:
        from signlang.inference.segments import load_segmenter_runner

        onnx_dir = self.model_info.get("onnx_dir")
        if onnx_dir and json.loads((Path(onnx_dir) / "manifest.json").read_text(encoding="utf-8")).get("segmenter"):
            return load_segmenter_runner(onnx_dir, threads)
        if _read_format(self.model_dir) == "signlang-bundle":
            return load_segmenter_runner(self.model_dir, threads)
        return None

    def _onnx_for_bundle(self, onnx_dir: str | os.PathLike[str] | None) -> Path:
        """An ONNX export of this bundle: ``onnx_dir``, ``<bundle>/onnx`` if it was made from this very
        bundle (manifest sha256), else a fresh export written once into ``<bundle>/onnx`` and reused
        by every later start (a private temporary folder when the bundle folder is read-only)."""
        from signlang._io import sha256_file

        bundle_sha = sha256_file(self.model_dir / "manifest.json")
        for cand in ([Path(onnx_dir)] if onnx_dir else []) + [self.model_dir / "onnx"]:
            if _read_format(cand) == "signlang-onnx":
                src = json.loads((cand / "manifest.json").read_text(encoding="utf-8")).get("source", {})
                if src.get("bundle_manifest_sha256") == bundle_sha:
                    return cand
                if onnx_dir and cand == Path(onnx_dir):
                    raise ValueError(f"{cand}: this ONNX export was not made from {self.model_dir} (bundle manifest sha256 differs)")
        from signlang.inference.pretrained import PRETRAINED_DIR

        if self.model_dir.resolve().is_relative_to(PRETRAINED_DIR):  # the package's models ship their export
            raise ValueError(f"{self.model_dir}: the shipped ONNX export ({self.model_dir / 'onnx'}) is missing or was not made "
                             "from this bundle; rebuild it with `signlang benchmark pretrained` (it is never exported at start)")
        if not torch_installed():
            raise ValueError(f"{self.model_dir}: has no ONNX export made from it, and exporting needs torch, which is not "
                             "installed here; export it where torch is (`signlang export --model RUN_DIR --out RUN_DIR/onnx`)")
        return self._export_into_bundle()

    def _export_into_bundle(self) -> Path:
        from signlang._io import atomic_dir
        from signlang.inference.export import export_bundle

        target = self.model_dir / "onnx"
        t0 = time.perf_counter()
        if not os.access(self.model_dir, os.W_OK):  # a read-only bundle: export privately for this process only
            self._progress(f"exporting {self.model_dir} to ONNX (once per start: the bundle folder is read-only) ...")
            self._tmp_export = Path(tempfile.mkdtemp(prefix="signlang-onnx-"))
            export_bundle(self.model_dir, self._tmp_export)
            return self._tmp_export
        self._progress(f"exporting {self.model_dir} to ONNX once, into {target} (reused while the bundle is unchanged) ...")
        with atomic_dir(target) as staging:
            export_bundle(self.model_dir, staging)
        self._progress(f"exported in {time.perf_counter() - t0:.1f} s")
        return target

    def _load_onnx(self, folder: Path, threads: int) -> None:
        from signlang.inference.onnx_backend import OnnxBackend

        self.runner = OnnxBackend(folder, threads=threads, use_onegraph=self._want_one_graph is not False)
        self.preprocessing = dict(self.runner.preprocessing)
        self.model_info = {"path": str(self.model_dir), "format": "signlang-onnx", "backend": "onnx", "onnx_dir": str(folder),
                           "created": self.runner.manifest.get("created"), "models": [b.name for b in self.runner.plan.bases]}

    def close(self) -> None:
        """Release a temporary ONNX export."""
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

    @property
    def one_graph(self) -> bool:
        """Whether clips run through the export's ``model.onnx`` (landmarks -> probabilities in one ONNX graph)."""
        return getattr(self.runner, "onegraph", None) is not None

    def _run(self, clips: Sequence[np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """``(probs (N, C), {base: (N, n_ensemble)})`` of raw clips: the one graph when there is one, else
        numpy normalisation and features, then the backend's models."""
        if self.one_graph:
            return self.runner.run_clips(list(clips))
        return self.runner.run(self.features(clips))

    def proba(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        """Probabilities ``(N, C)`` in the bundle's class order for raw clips ``[(T_i, 75, 3)]``."""
        return self._run(clips)[0]

    def proba_by_model(self, clips: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        """Each base model's probabilities ``(N, C)`` in the bundle's class order."""
        from signlang.inference.plan import place_columns

        plan = self.runner.plan
        by_model = self._run(clips)[1]
        return {k: place_columns(v, plan.output_columns, len(plan.classes)) for k, v in by_model.items()}

    def screen(self, lm: np.ndarray, name: str) -> Screen:
        """The policy's verdict before the model (:meth:`DecisionPolicy.screen`)."""
        return self.policy.screen(lm, name)

    def _predict_arrays(self, clips: list[np.ndarray], screens: list[Screen], k: int,
                        pre_ms: list[dict[str, float]], by_model: bool = False) -> list[Prediction]:
        n = len(clips)
        ruled = np.array([s.rule is not None for s in screens], dtype=bool)
        run = [i for i in range(n) if not ruled[i]]
        probs = np.zeros((n, len(self.classes)), dtype=np.float32)
        per_model: dict[str, np.ndarray] = {}
        t0 = t1 = t2 = time.perf_counter()
        if run and self.one_graph:  # features are computed inside the graph: their time is in "model"
            model_probs, model_by = self.runner.run_clips([clips[i] for i in run])
            t2 = time.perf_counter()
        elif run:
            feats = self.features([clips[i] for i in run])
            t1 = time.perf_counter()
            model_probs, model_by = self.runner.run(feats)
            t2 = time.perf_counter()
        if run:
            probs[run] = model_probs
            if by_model:
                from signlang.inference.plan import place_columns

                plan = self.runner.plan
                for name, p in model_by.items():
                    per_model[name] = np.zeros_like(probs)
                    per_model[name][run] = place_columns(p, plan.output_columns, len(plan.classes))
        if ruled.any():
            probs[ruled] = self.policy.rule_proba(int(ruled.sum()))
            for p in per_model.values():
                p[ruled] = probs[ruled]
        low = self.policy.low_confidence(probs)
        unknown = self.policy.unknown(probs, ruled)
        out = []
        for i in range(n):
            share = 0.0 if ruled[i] else 1e3 / len(run)
            timings = {"decode": pre_ms[i].get("decode", 0.0), "landmarks": pre_ms[i].get("landmarks", 0.0),
                       "features": (t1 - t0) * share, "model": (t2 - t1) * share}
            timings["total"] = sum(timings.values())
            out.append(Prediction(_top_k(probs[i], self.classes, k), probs[i], screens[i].hands, int(clips[i].shape[0]), timings,
                                  rule=screens[i].rule, low_confidence=bool(low[i]), unknown=bool(unknown[i]),
                                  by_model={m: p[i] for m, p in per_model.items()} if by_model else None))
        return out

    # --- public API ---------------------------------------------------------------------------
    def predict_landmarks(self, landmarks: Any, top_k: int | None = None, *, name: str = "landmarks",
                          timings_ms: dict[str, float] | None = None) -> Prediction:
        """Classify one clip: ``(T, 75, 3)``, ``(T, 225)`` or ``(T, 258)`` (NaN or 0 = not detected).
        ``timings_ms``: the decode / landmarks times of a video, reported with the answer's."""
        lm = self.policy.check_clip(landmarks, name)
        return self._predict_arrays([lm], [self.screen(lm, name)], top_k or self.default_k, [dict(timings_ms or {})])[0]

    def predict_batch(self, clips: Sequence[Any], top_k: int | None = None, *, names: Sequence[str] | None = None,
                      by_model: bool = False) -> tuple[list[Prediction | None], dict[int, ValueError]]:
        """Classify many clips in one pass. Returns (predictions with None for bad clips, {index: error});
        an error's message names the clip and its :func:`error_code` tells its kind (e.g. ``nothing_detected``).
        ``by_model``: each prediction also carries every base model's probabilities."""
        return self._batch(clips, top_k, names, by_model=by_model)

    def _batch(self, clips: Sequence[Any], top_k: int | None, names: Sequence[str] | None,
               pre_ms: Sequence[dict[str, float]] | None = None,
               by_model: bool = False) -> tuple[list[Prediction | None], dict[int, ValueError]]:
        good: list[np.ndarray] = []
        screens: list[Screen] = []
        where: list[int] = []
        errors: dict[int, ValueError] = {}
        for i, c in enumerate(clips):
            name = names[i] if names is not None else f"clip {i}"
            try:
                lm = self.policy.check_clip(c, name)
                screens.append(self.screen(lm, name))
                good.append(lm)
                where.append(i)
            except ValueError as exc:
                errors[i] = exc
        results: list[Prediction | None] = [None] * len(clips)
        if good:
            pre = [dict(pre_ms[i]) for i in where] if pre_ms is not None else [{}] * len(good)
            for i, p in zip(where, self._predict_arrays(good, screens, top_k or self.default_k, pre, by_model)):
                results[i] = p
        return results, errors

    def predict_items(self, items: Iterable[Item], top_k: int | None = None,
                      batch_size: int = 256) -> Iterator[tuple[Item, Prediction | None, ValueError | None]]:
        """``(item, prediction, None)`` or ``(item, None, error)`` per item, in order. Items carry landmarks
        (a video's are filled in before, by :func:`signlang.datasets.formats.with_landmarks`); landmark clips
        go in batches of ``batch_size``, a video's alone (its answer comes at once); a bad item never stops the rest."""
        pending: list[Item] = []

        def flush() -> Iterator[tuple[Item, Prediction | None, ValueError | None]]:
            preds, errors = self._batch([it.landmarks for it in pending], top_k, [it.name for it in pending],
                                        [it.timings_ms for it in pending])
            for j, it in enumerate(pending):
                yield it, preds[j], errors.get(j)
            pending.clear()

        for item in items:
            if item.error is not None or item.landmarks is None:
                yield from flush()
                yield item, None, item.error or ValueError(f"{item.name}: no landmarks (a video must be read first, "
                                                           "through signlang.datasets.formats.with_landmarks)")
                continue
            pending.append(item)
            if item.video is not None or len(pending) >= batch_size:
                yield from flush()
        yield from flush()
