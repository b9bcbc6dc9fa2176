"""Is an explanation faithful? Deletion of important frames, and the model-randomisation check.

* **Deletion** (:func:`deletion_drops`): hide the ``fraction`` most important input frames of a
  clip and, separately, the same number of random frames; the drop in the predicted sign's
  probability is recorded for both. A faithful frame map drops it much more than chance. A
  hidden frame is replaced by the interpolation between the nearest kept frames (held at the
  clip's ends; :func:`signlang.explain.occlusion.hide`), so it stays a plausible frame that
  carries no information of its own. Hiding by NaN ("missing") was tried first: the normaliser
  interpolates interior gaps but leaves missing frames at the clip's ends, which shortens the
  clip, shifts the first/last-frame statistics of the pooled XGBoost and drops p for *any*
  frames hidden there -- an out-of-distribution replacement that favours no map.
* **Model randomisation** (Adebayo et al., 2018; :func:`randomized_explainer`): the same
  architectures, freshly initialised at random, explain the same clips; the Spearman rank
  correlation between the trained and the random model's landmark maps should be low, otherwise
  the map reflects the input (edges, magnitudes) more than what the model learnt.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from signlang.explain.attribution import spearman
from signlang.explain.explainer import Explainer, Explanation
from signlang.explain.occlusion import hide
from signlang.models.base import NeuralSequenceModel
from signlang.models.registry import build_model


def n_hidden(t: int, fraction: float) -> int:
    """How many of ``t`` frames a ``fraction`` hides: at least 1, at most ``t - 1``."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    return int(min(max(1, round(fraction * t)), t - 1))


@dataclass(frozen=True)
class DeletionResult:
    """Per clip: p(target) on the full clip, with the top frames hidden, with random frames hidden."""

    p_full: np.ndarray  # (N,)
    p_top: np.ndarray  # (N,)
    p_random: np.ndarray  # (N,) mean over the random draws
    p_random_run: np.ndarray  # (N,) mean over random contiguous runs of the same length

    @property
    def drop_random_run(self) -> float:
        return float(np.mean(self.p_full - self.p_random_run))

    @property
    def drop_top(self) -> float:
        return float(np.mean(self.p_full - self.p_top))

    @property
    def drop_random(self) -> float:
        return float(np.mean(self.p_full - self.p_random))


def deletion_drops(
    explainer: Explainer,
    clips: Sequence[np.ndarray],
    explanations: Sequence[Explanation],
    fraction: float = 0.2,
    seed: int = 0,
    random_draws: int = 1,
) -> DeletionResult:
    """Hide the top ``fraction`` frames (by ``frame_importance``) vs random frames; predict all at once.

    Frames are hidden with :func:`signlang.explain.occlusion.hide` (interpolated from the
    nearest kept frames). ``p_random`` is the mean over ``random_draws`` independent random sets
    per clip (more draws: a steadier chance level, same expectation); ``p_random_run`` the mean
    over as many random *contiguous* runs of the same length (a harder baseline: hiding a run
    loses more than hiding scattered frames, whatever the run).
    """
    if len(clips) != len(explanations) or not clips:
        raise ValueError(f"deletion_drops: need one explanation per clip, got {len(clips)} clips and {len(explanations)} explanations")
    if random_draws < 1:
        raise ValueError(f"deletion_drops: random_draws must be >= 1, got {random_draws}")
    rng = np.random.default_rng(seed)
    top, rand, runs = [], [], []
    for clip, exp in zip(clips, explanations):
        t = clip.shape[0]
        if exp.frame_importance.shape != (t,):
            raise ValueError(f"deletion_drops: a clip of {t} frames has a frame map of shape {exp.frame_importance.shape}")
        k = n_hidden(t, fraction)
        top.append(hide(clip, exp.top_frames(k)))
        rand.extend(hide(clip, rng.choice(t, size=k, replace=False)) for _ in range(random_draws))
        runs.extend(hide(clip, s + np.arange(k)) for s in rng.integers(0, t - k + 1, size=random_draws))
    targets = np.array([e.target for e in explanations])
    rows = np.arange(len(clips))
    p_full = explainer.predict_clips(list(clips))[rows, targets]
    p_top = explainer.predict_clips(top)[rows, targets]

    def mean_draws(batch: list[np.ndarray]) -> np.ndarray:
        return explainer.predict_clips(batch).reshape(len(clips), random_draws, -1)[rows, :, targets].mean(axis=1)

    return DeletionResult(p_full=p_full, p_top=p_top, p_random=mean_draws(rand), p_random_run=mean_draws(runs))


def randomized_network(net: NeuralSequenceModel, seed: int) -> NeuralSequenceModel:
    """The same architecture as ``net`` (its registry name and ``config``), freshly initialised."""
    module = net.module_
    name = getattr(module, "registry_name", None) or net.arch
    config = dict(getattr(module, "config", {}))
    torch.manual_seed(seed)
    fresh = build_model(name, **config).eval()
    out = copy.copy(net)
    out.module_ = fresh
    return out


def randomized_explainer(explainer: Explainer, seed: int = 0) -> Explainer:
    """An explainer whose networks are re-initialised at random; same normalisation, shares and target.

    Its own probabilities come from the random networks (so ``explain(..., target=t)`` must name
    the trained model's target to compare like with like).
    """
    nets = [(name, randomized_network(net, seed + i)) for i, (name, net) in enumerate(explainer.networks)]
    return Explainer(nets, explainer.classes, explainer.normalize, None, shares=explainer.shares,
                     ig_steps=explainer.ig_steps, frame_method=explainer.frame_method,
                     landmark_method=explainer.landmark_method, occlusion_fraction=explainer.occlusion_fraction,
                     normalize_batch=explainer.normalize_batch)


def rank_correlations(
    trained: Sequence[Explanation], random: Sequence[Explanation], masks: Sequence[np.ndarray] | None = None
) -> np.ndarray:
    """Spearman correlation of the landmark maps ``(T, 75)`` of each pair ``(N,)``.

    With ``masks`` (``(T, 75)`` bool per clip, e.g. "landmark detected") only those cells count,
    so the shared zeros of undetected parts (zero features -> zero attribution for *any* model)
    do not inflate the correlation.
    """
    out = []
    for i, (a, b) in enumerate(zip(trained, random)):
        la, lb = a.landmark_importance, b.landmark_importance
        if masks is not None:
            m = np.asarray(masks[i], dtype=bool)
            la, lb = la[m], lb[m]
        out.append(spearman(la, lb) if la.size >= 2 else np.nan)
    return np.array(out, dtype=np.float64)
