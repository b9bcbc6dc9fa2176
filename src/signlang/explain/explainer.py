"""Explain one prediction: importance per input frame ``(T_in,)`` and per frame x landmark ``(T_in, 75)``.

Pipeline for a raw clip ``(T_in, 75, 3)`` (image coordinates, NaN = missing):

1. normalise it exactly as the predictor does and predict with the whole model (the stacking
   ensemble) -> the target sign (the most probable, or the one the user names), its probability;
2. **frame map** (``frame_method``, default ``"occlusion"``): hide every run of
   ``occlusion_fraction`` of the frames in turn (:func:`signlang.explain.occlusion.hide`:
   interpolated from the nearest kept frames) and predict again with the whole model; the drop
   of p(target), averaged over the runs covering a frame. ``"gradcam"`` / ``"combined"`` /
   ``"ig"`` use the neural networks' Grad-CAM and integrated gradients instead (per network
   ``w_m ∝ share_m * p_m(target)``, ``share_m`` the combiner's reliance on network ``m``), and
   ``"gradcam+occlusion"`` averages Grad-CAM and occlusion;
3. **landmark map** (``landmark_method``, default ``"occlusion"``): the 16 landmark groups of
   :data:`signlang.explain.occlusion.LANDMARK_GROUPS` hidden one at a time in windows of
   ``occlusion_fraction`` of the frames, the whole model predicting again
   (:func:`signlang.explain.occlusion.occlusion_map`); ``"ig"`` uses integrated gradients on
   the networks' features spread over the landmarks by the measured feature -> landmark matrix
   (it follows the input more than the model: see docs/explain.md);
4. the landmark map of a frame is that frame's importance split over the landmarks in proportion
   to step 3, so ``landmark_importance.sum(1) == frame_importance``; both maps are in the input's
   ``T_in`` frames (network maps are resampled back linearly) and sum to 1.

Occlusion only calls the whole model, so it sees the pooled XGBoost base model and the combiner
as well as the networks, and runs on either backend (ONNX Runtime included: forward passes only,
numpy, no torch); Grad-CAM and integrated gradients see the networks only and need the torch
backend (:class:`GradientsUnavailable` otherwise).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from signlang.explain.maps import normalise_map, resample_time
from signlang.explain.occlusion import (
    groups_to_landmarks,
    hide,
    occlusion_map,
    predict_in_chunks,
    time_windows,
    windows_to_frames,
)
from signlang.landmarks.layout import N_COORDS, N_POINTS, landmark_names

if TYPE_CHECKING:  # torch is imported only where gradients are taken: occlusion on ONNX needs numpy alone
    from signlang.models.base import NeuralSequenceModel

FRAME_METHODS = ("occlusion", "gradcam+occlusion", "combined", "gradcam", "ig")
LANDMARK_METHODS = ("occlusion", "ig")


MAX_FRAME_WINDOWS = 32
"""At most this many runs are hidden for the frame map (every start for clips up to about 40 frames)."""


def needs_networks(frame_method: str, landmark_method: str) -> bool:
    """Whether these methods read a neural network's gradients (occlusion alone only calls the model)."""
    return frame_method != "occlusion" or landmark_method != "occlusion"


class GradientsUnavailable(ValueError):
    """A gradient method (Grad-CAM, integrated gradients) asked of a model that has no gradients to give.

    Raised for a predictor on the ONNX backend (ONNX Runtime runs forward passes only) and for a
    bundle without a neural network; occlusion needs neither.
    """


def gradient_methods(frame_method: str, landmark_method: str) -> list[str]:
    """The ones of these methods that need gradients, named as the user gave them (e.g. ``["frame method 'ig'"]``)."""
    return ([f"frame method {frame_method!r}"] if frame_method != "occlusion" else []) + \
        ([f"landmark method {landmark_method!r}"] if landmark_method != "occlusion" else [])


@dataclass(frozen=True)
class Explanation:
    """What decided one prediction; all maps in the input's frame order and length ``T_in``."""

    sign: str
    target: int
    prob: float
    frame_importance: np.ndarray  # (T_in,) >= 0, sums to 1
    landmark_importance: np.ndarray  # (T_in, 75) >= 0, sums to 1
    model_frames: int  # T, the length the networks saw
    weights: dict[str, float] = field(default_factory=dict)  # network name -> combination weight
    frame_method: str = "occlusion"
    landmark_method: str = "occlusion"

    def top_frames(self, k: int) -> np.ndarray:
        """The ``k`` most important input frames, most important first."""
        return np.argsort(-self.frame_importance, kind="stable")[: max(0, int(k))]

    def to_dict(self, classes: Sequence[str] | None = None) -> dict[str, Any]:
        """JSON-able dict: sign, prob, frame_importance (T_in), landmark_importance (T_in x 75), ..."""
        part_totals = self.landmark_importance.sum(axis=0)
        return {
            "sign": self.sign,
            "target_index": int(self.target),
            "prob": float(self.prob),
            "n_frames": int(self.frame_importance.shape[0]),
            "model_frames": int(self.model_frames),
            "frame_method": self.frame_method,
            "landmark_method": self.landmark_method,
            "weights": {k: float(v) for k, v in self.weights.items()},
            "frame_importance": [float(v) for v in self.frame_importance],
            "landmark_importance": np.round(self.landmark_importance.astype(np.float64), 8).tolist(),
            "part_importance": {
                "pose": float(part_totals[:33].sum()),
                "left_hand": float(part_totals[33:54].sum()),
                "right_hand": float(part_totals[54:].sum()),
            },
            "landmark_names": list(landmark_names()),
        }


def meta_shares(ensemble: Any, names: Sequence[str]) -> dict[str, float]:
    """Share of the stacking meta-learner's total gain spent on each base model's columns.

    Reads ``ensemble.meta_.booster_`` (XGBoost) and ``ensemble.meta_feature_names_``
    (``"name:class"``); returns equal shares for ``names`` when either is unavailable.
    """
    equal = {n: 1.0 / len(names) for n in names} if names else {}
    meta = getattr(ensemble, "meta_", None)
    feat_names = getattr(ensemble, "meta_feature_names_", None)
    if hasattr(meta, "base_shares") and feat_names and names:  # a linear combiner: shares of its weights
        return meta.base_shares(feat_names, names)
    booster = getattr(meta, "booster_", None)
    if booster is None or not feat_names:
        return equal
    try:
        score = booster.get_score(importance_type="total_gain")
    except Exception:  # noqa: BLE001 - a booster without trees or feature map: fall back
        return equal
    totals = dict.fromkeys(names, 0.0)
    for key, gain in score.items():
        idx = int(key[1:]) if key.startswith("f") and key[1:].isdigit() else None
        col = feat_names[idx] if idx is not None and idx < len(feat_names) else key
        base = str(col).split(":", 1)[0]
        if base in totals:
            totals[base] += float(gain)
    total = sum(totals.values())
    return {n: v / total for n, v in totals.items()} if total > 0 else equal


class Explainer:
    """Occlusion over the whole model, Grad-CAM and integrated gradients over its networks (module doc).

    ``networks``: ``(name, NeuralSequenceModel)`` pairs (fitted, ``classes_`` are label ids
    indexing ``classes``); ``classes``: the class names; ``normalize``: raw ``(T_in, 75, 3)`` ->
    normalised ``(T, 75, 3)`` (the predictor's own normalisation); ``predict_proba``: normalised
    ``(N, T, 75, 3)`` -> ``(N, len(classes))`` (the whole model; defaults to the networks'
    weighted mean); ``shares``: reliance on each network (defaults to equal); ``frame_method`` /
    ``landmark_method``: see :data:`FRAME_METHODS` / :data:`LANDMARK_METHODS`;
    ``occlusion_fraction``: the share of the frames one occlusion window hides;
    ``normalize_batch``: raw clips -> ``(N, T, 75, 3)`` in one vectorised call (occlusion predicts
    hundreds of perturbed clips; defaults to ``normalize`` clip by clip).
    """

    def __init__(
        self,
        networks: Sequence[tuple[str, NeuralSequenceModel]],
        classes: Sequence[str],
        normalize: Callable[[np.ndarray], np.ndarray],
        predict_proba: Callable[[np.ndarray], np.ndarray] | None = None,
        shares: Mapping[str, float] | None = None,
        ig_steps: int = 32,
        frame_method: str = "occlusion",
        landmark_method: str = "occlusion",
        occlusion_fraction: float = 0.2,
        normalize_batch: Callable[[Sequence[np.ndarray]], np.ndarray] | None = None,
    ) -> None:
        if frame_method not in FRAME_METHODS:
            raise ValueError(f"Explainer: frame_method must be one of {FRAME_METHODS}, got {frame_method!r}")
        if landmark_method not in LANDMARK_METHODS:
            raise ValueError(f"Explainer: landmark_method must be one of {LANDMARK_METHODS}, got {landmark_method!r}")
        if not 0.0 < occlusion_fraction < 1.0:
            raise ValueError(f"Explainer: occlusion_fraction must be in (0, 1), got {occlusion_fraction}")
        if not networks and needs_networks(frame_method, landmark_method):
            raise GradientsUnavailable(f"Explainer: {' and '.join(gradient_methods(frame_method, landmark_method))} need a neural "
                                       "network's gradients (Grad-CAM, IG); with none, use occlusion for both")
        if not networks and predict_proba is None:
            raise ValueError("Explainer: without neural networks, predict_proba (the whole model) is required")
        self.landmark_method = landmark_method
        self.occlusion_fraction = float(occlusion_fraction)
        self.networks = list(networks)
        self.classes = tuple(str(c) for c in classes)
        self.normalize = normalize
        self.normalize_batch = normalize_batch
        self._predict_proba = predict_proba
        names = [n for n, _ in self.networks]
        self.shares = dict(shares) if shares is not None else {n: 1.0 / len(names) for n in names}
        self.ig_steps = int(ig_steps)
        self.frame_method = frame_method
        self._assignments: dict[Any, np.ndarray] = {}

    @classmethod
    def from_predictor(cls, predictor: Any, **kwargs: Any) -> "Explainer":
        """An explainer for a loaded :class:`signlang.inference.predictor.Predictor`, either backend.

        Uses the predictor's own normalisation settings and whole-model probabilities (its
        runner: PyTorch or ONNX Runtime); on the torch backend also the bundle's neural base
        networks (Grad-CAM, integrated gradients) and the meta-learner's gain shares as reliance.
        The ONNX backend gives forward passes only, so it explains with occlusion alone; a
        gradient method raises :class:`GradientsUnavailable` naming it.
        """
        from signlang.features.normalize import normalize_clips
        from signlang.inference.plan import compute_features

        frame_method, landmark_method = kwargs.get("frame_method", "occlusion"), kwargs.get("landmark_method", "occlusion")
        backend = getattr(predictor, "backend", "torch")
        runner = predictor.runner
        networks: list[tuple[str, NeuralSequenceModel]] = []
        shares = None
        if backend == "torch":
            from signlang.models.base import NeuralSequenceModel
            from signlang.models.ensemble import StackingEnsemble

            model = runner.model
            ens = model if isinstance(model, StackingEnsemble) else None
            members = list(ens.estimators_) if ens is not None else [(runner.plan.bases[0].name, model)]
            # private copies: hooks and eval/train switches never touch the predictor's own networks
            networks = [(n, copy.deepcopy(e)) for n, e in members if isinstance(e, NeuralSequenceModel)]
            if not networks and needs_networks(frame_method, landmark_method):
                raise GradientsUnavailable(
                    f"{predictor.model_dir}: {' and '.join(gradient_methods(frame_method, landmark_method))} need a neural "
                    f"network's gradients (Grad-CAM, integrated gradients) and the bundle has none ({[n for n, _ in members]}); "
                    "use occlusion (frame and landmark method 'occlusion'), which needs only the model's probabilities")
            shares = meta_shares(ens, [n for n, _ in networks]) if ens is not None else None
        elif needs_networks(frame_method, landmark_method):
            raise GradientsUnavailable(
                f"{' and '.join(gradient_methods(frame_method, landmark_method))}: Grad-CAM and integrated gradients need the "
                f"gradients of the torch networks, and this model runs on {backend} (ONNX Runtime computes forward passes "
                "only); use occlusion (frame and landmark method 'occlusion'), or load the bundle with the torch backend")
        cfg = predictor.normalize_config

        def normalize(clip: np.ndarray) -> np.ndarray:
            return normalize_clips([clip], cfg)[0]

        def normalize_batch(clips: Sequence[np.ndarray]) -> np.ndarray:
            return normalize_clips(list(clips), cfg)

        def predict(X: np.ndarray) -> np.ndarray:
            return runner.run(compute_features(np.asarray(X, dtype=np.float32), runner.plan))[0]

        kwargs.setdefault("normalize_batch", normalize_batch)
        return cls(networks, predictor.classes, normalize, predict, shares=shares, **kwargs)

    # --- prediction ------------------------------------------------------------------------
    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Probabilities ``(N, C)`` over ``classes`` for normalised ``X (N, T, 75, 3)``."""
        if self._predict_proba is not None:
            return np.asarray(self._predict_proba(X), dtype=np.float32)
        total = np.zeros((X.shape[0], len(self.classes)), dtype=np.float32)
        for name, net in self.networks:
            total[:, np.asarray(net.classes_, dtype=np.int64)] += self.shares.get(name, 0.0) * net.predict_proba(X)
        return total / max(sum(self.shares.values()), 1e-12)

    def predict_clips(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        """Probabilities ``(N, C)`` for raw clips, through the same normalisation as :meth:`explain`."""
        if self.normalize_batch is not None:
            return self.predict_proba(np.asarray(self.normalize_batch(list(clips)), dtype=np.float32))
        return self.predict_proba(np.stack([self.normalize(c) for c in clips]))

    def resolve_target(self, target: int | str | None, proba: np.ndarray) -> int:
        """Class index for ``target`` (a name, an index, or None = the most probable)."""
        if target is None:
            return int(np.argmax(proba))
        if isinstance(target, str) and target in self.classes:
            return self.classes.index(target)
        if isinstance(target, (int, np.integer)) and 0 <= int(target) < len(self.classes):
            return int(target)
        shown = ", ".join(self.classes[:10]) + (" ..." if len(self.classes) > 10 else "")
        raise ValueError(f"target: unknown sign {target!r}; the model knows {len(self.classes)} signs: {shown}")

    # --- attribution -----------------------------------------------------------------------
    def assignment(self, net: NeuralSequenceModel) -> np.ndarray:
        """The measured feature -> landmark matrix ``(F, 75)`` for ``net``'s feature blocks (cached)."""
        from signlang.explain.attribution import feature_landmark_matrix
        from signlang.models.featurize import frame_table

        key = None if net.feature_blocks is None else tuple(net.feature_blocks)
        if key not in self._assignments:
            self._assignments[key] = feature_landmark_matrix(lambda lm: frame_table(lm, key, name="probe")[0])
        return self._assignments[key]

    def network_maps(self, net: NeuralSequenceModel, X: np.ndarray, target: int, with_ig: bool = True) -> tuple[np.ndarray, np.ndarray, float]:
        """One network on normalised ``X (T, 75, 3)``: ``cam (T,)``, ``ig (T, 75)``, its p(target).

        ``ig`` is zeros unless ``with_ig``. Returns zeros and p = 0 when the network does not know
        the target class.
        """
        import torch

        from signlang.explain.attribution import features_to_landmarks, gradcam, integrated_gradients

        t = X.shape[0]
        cols = np.flatnonzero(np.asarray(net.classes_) == target)
        if cols.size == 0:
            return np.zeros(t, np.float32), np.zeros((t, N_POINTS), np.float32), 0.0
        feats, mask = net.featurize(X[None])
        col = int(cols[0])
        with torch.no_grad():
            p = float(torch.softmax(net.module_.eval()(feats, mask), dim=-1)[0, col])
        cam = gradcam(net.module_, feats, mask, col)[0]
        ig = np.zeros((t, N_POINTS), np.float32)
        if with_ig:
            attr = integrated_gradients(net.module_, feats, mask, col, steps=self.ig_steps)[0]
            ig = features_to_landmarks(attr, self.assignment(net))
        return cam, ig, p

    def _network_frame_map(self, cam: np.ndarray, ig: np.ndarray) -> np.ndarray:
        if self.frame_method in ("gradcam", "gradcam+occlusion"):
            return normalise_map(cam)
        if self.frame_method == "ig":
            return normalise_map(ig.sum(axis=1))
        return 0.5 * normalise_map(cam) + 0.5 * normalise_map(ig.sum(axis=1))

    def frame_occlusion(self, clip: np.ndarray, target: int, p_full: float) -> np.ndarray:
        """Drop of p(target) when runs of frames are missing, per input frame ``(T_in,)`` >= 0.

        Runs of ``occlusion_fraction`` of the clip (every start, at most :data:`MAX_FRAME_WINDOWS`
        starts evenly spaced), hidden as the deletion check
        hides frames (:func:`signlang.explain.occlusion.hide`), averaged over the runs
        covering a frame; all runs predicted in one batch by the whole model.
        """
        t = clip.shape[0]
        width = max(1, round(self.occlusion_fraction * t))
        windows = time_windows(t, width, max(1, -(-(t - width + 1) // MAX_FRAME_WINDOWS)))
        probs = predict_in_chunks(self.predict_clips, lambda j: hide(clip, np.arange(*windows[j])), len(windows), t)[:, target]
        return windows_to_frames(p_full - probs[:, None], windows, t)[:, 0]

    def explain(self, clip: np.ndarray, target: int | str | None = None) -> Explanation:
        """Explain a raw clip ``(T_in, 75, 3)``: maps of length ``T_in`` in the clip's frame order."""
        clip = np.asarray(clip, dtype=np.float32)
        if clip.ndim != 3 or clip.shape[1:] != (N_POINTS, N_COORDS) or clip.shape[0] < 1:
            raise ValueError(f"explain: expected a clip of landmarks (T, {N_POINTS}, {N_COORDS}), got {clip.shape}")
        X = self.normalize(clip)
        proba = self.predict_proba(X[None])[0]
        tgt = self.resolve_target(target, proba)
        t, t_in = X.shape[0], clip.shape[0]
        need_ig = self.landmark_method == "ig" or self.frame_method in ("combined", "ig")
        frame = np.zeros(t, np.float32)
        ig_total = np.zeros((t, N_POINTS), np.float32)
        raw_w: dict[str, float] = {}
        for name, net in self.networks:
            cam, ig, p = self.network_maps(net, X, tgt, with_ig=need_ig)
            w = self.shares.get(name, 0.0) * p
            raw_w[name] = w
            frame += w * self._network_frame_map(cam, ig)
            ig_total += w * normalise_map(ig)
        wsum = sum(raw_w.values())
        weights = {n: (w / wsum if wsum > 0 else 0.0) for n, w in raw_w.items()}
        frame_in = normalise_map(resample_time(frame, t_in))
        if self.frame_method in ("occlusion", "gradcam+occlusion"):
            occ = normalise_map(self.frame_occlusion(clip, tgt, float(proba[tgt])))
            if self.frame_method == "gradcam+occlusion":
                frame_in = normalise_map(0.5 * frame_in + 0.5 * occ)
            elif occ.sum() > 0:  # else: hiding no run of frames lowers p; Grad-CAM's map stands in
                frame_in = occ
        if frame_in.sum() <= 0:  # no signal from any method: every frame alike
            frame_in = np.full(t_in, 1.0 / t_in, np.float32)
        if self.landmark_method == "occlusion":
            per_landmark = groups_to_landmarks(occlusion_map(self.predict_clips, clip, tgt, p_full=float(proba[tgt]),
                                                             fraction=self.occlusion_fraction))
        else:
            per_landmark = np.clip(resample_time(ig_total, t_in), 0.0, None)
        lm_in = normalise_map(frame_in[:, None] * split_rows(per_landmark, ~np.isnan(clip[..., 0])))
        return Explanation(
            sign=self.classes[tgt], target=tgt, prob=float(proba[tgt]), frame_importance=frame_in,
            landmark_importance=lm_in, model_frames=t, weights=weights, frame_method=self.frame_method,
            landmark_method=self.landmark_method,
        )


def split_rows(per_landmark: np.ndarray, detected: np.ndarray) -> np.ndarray:
    """Each row of ``per_landmark (T, 75)`` >= 0 as shares summing to 1 -> ``(T, 75)``.

    A row without any signal is split evenly over the landmarks ``detected (T, 75)`` in that
    frame (over all 75 when none is), so the landmark map's rows always sum to the frame map.
    """
    m = np.clip(np.nan_to_num(np.asarray(per_landmark, dtype=np.float32)), 0.0, None)
    row = m.sum(axis=1, keepdims=True)
    fallback = np.where(detected.any(axis=1, keepdims=True), detected, True).astype(np.float32)
    fallback /= fallback.sum(axis=1, keepdims=True)
    return np.where(row > 0, m / np.where(row > 0, row, 1.0), fallback)
