"""``signlang benchmark explain``: are the explanations faithful? Model randomisation and deletion.

On ``n_clips`` clips drawn at random (``seed``) from the test part of ``split`` -- *every* clip
of it is a candidate: idle ``-`` clips and clips without a detected hand included -- for the sign
the model predicts:

* **Model randomisation** (Adebayo et al., 2018): the same clips are explained for the same sign
  by the same architectures re-initialised at random
  (:func:`signlang.explain.faithfulness.randomized_explainer`); the Spearman rank correlation
  between the trained and the random model's maps is reported for the landmark maps ``(T, 75)``
  (all cells, and only the landmarks detected in the clip) and the frame maps ``(T,)``, for
  every landmark method of :data:`signlang.explain.explainer.LANDMARK_METHODS` in the same run
  (the shipped one first). Target: < 0.3.
* **Deletion**: hide the ``fraction`` (20 %) most important frames of each clip, and
  separately ``random_draws`` sets of as many random frames; hidden frames are *missing*
  (NaN), filled by the predictor's own normalisation as it fills frames MediaPipe missed.
  Reported: the mean drop of p(predicted sign) for both and their ratio. Target: >= 2 (met when
  the top drop is positive and at least twice the random drop, a random drop <= 0 counting as
  0). Also reported: the drop for random *contiguous* runs of the same length, a harder baseline
  (a hidden run loses more than scattered frames, whatever the run).

Everything is computed by :func:`run`; :func:`render` turns its record into markdown.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from signlang.bench.common import machine_info, machine_line, shared_data_path, stopwatch

DATA_PARTS = ("traduttore_asl_mediapipe", "traduttore_asl_mediapipe.npz")
TARGET_SPEARMAN = 0.3
TARGET_RATIO = 2.0


def default_data() -> Path:
    """The main benchmark's data set under the shared data folder."""
    return shared_data_path(*DATA_PARTS)


def pick_clips(candidates: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` of ``candidates`` drawn without replacement with ``seed`` (all of them when fewer), sorted."""
    candidates = np.asarray(candidates, dtype=np.int64)
    if len(candidates) <= n:
        return np.sort(candidates)
    return np.sort(np.random.default_rng(seed).choice(candidates, size=n, replace=False))


def randomisation_scores(trained: Sequence[Any], randomised: Sequence[Any], clips: Sequence[np.ndarray]) -> dict[str, list[float]]:
    """Per clip Spearman of trained vs random maps: landmark maps (all cells, detected cells), frame maps."""
    from signlang.explain.attribution import spearman
    from signlang.explain.faithfulness import rank_correlations

    detected = [~np.isnan(np.asarray(c)[..., 0]) for c in clips]
    return {
        "landmarks": rank_correlations(trained, randomised).tolist(),
        "landmarks_detected": rank_correlations(trained, randomised, detected).tolist(),
        "frames": [spearman(a.frame_importance, b.frame_importance) for a, b in zip(trained, randomised)],
    }


def run(
    model: str | Path,
    data: str | Path | None = None,
    split: str = "blocked:0.2",
    n_clips: int = 30,
    fraction: float = 0.2,
    seed: int = 0,
    random_draws: int = 10,
    frame_method: str = "occlusion",
    landmark_methods: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Measure both checks on ``n_clips`` random test clips; returns a JSON-able record (see :func:`render`)."""
    import torch

    from signlang.datasets.formats import load_dataset
    from signlang.datasets.splits import split_indices
    from signlang.explain.explainer import LANDMARK_METHODS, Explainer
    from signlang.explain.faithfulness import deletion_drops, randomized_explainer
    from signlang.inference.predictor import Predictor
    from signlang.landmarks.layout import part_present

    methods = list(landmark_methods or LANDMARK_METHODS)
    torch.set_num_threads(max(1, min(4, torch.get_num_threads())))
    data = Path(data) if data is not None else default_data()
    with stopwatch() as elapsed:
        clips = load_dataset(data)
        _, test = split_indices(clips, split, seed=seed)
        chosen = pick_clips(test, n_clips, seed)
        if len(chosen) < 2:
            raise ValueError(f"{data}: only {len(chosen)} test clips under {split}; need at least 2")
        raws = [np.asarray(clips.landmarks[i], dtype=np.float32) for i in chosen]
        names = [str(clips.classes[clips.y[i]]) for i in chosen]
        with Predictor(model, backend="torch") as predictor:
            by_method: dict[str, dict[str, Any]] = {}
            deletion = None
            for method in methods:
                explainer = Explainer.from_predictor(predictor, frame_method=frame_method, landmark_method=method,
                                                     occlusion_fraction=fraction)
                trained = [explainer.explain(c) for c in raws]
                random_model = randomized_explainer(explainer, seed=seed + 1)
                randomised = [random_model.explain(c, target=e.target) for c, e in zip(raws, trained)]
                by_method[method] = randomisation_scores(trained, randomised, raws)
                if deletion is None:  # the frame map does not depend on the landmark method
                    deletion = deletion_drops(explainer, raws, trained, fraction=fraction, seed=seed, random_draws=random_draws)
                    predicted = [e.sign for e in trained]
        seconds = elapsed()
    assert deletion is not None
    idle = np.array([n == "-" for n in names])
    no_hand = np.array([not part_present(c)[:, 1:].any() for c in raws])
    drop_top, drop_random = deletion.p_full - deletion.p_top, deletion.p_full - deletion.p_random

    def ratio(top: np.ndarray, rand: np.ndarray) -> float | None:
        return float(top.mean() / rand.mean()) if rand.size and rand.mean() > 0 else None

    def met(top: np.ndarray, rand: np.ndarray) -> bool:
        """top >= 2 x random, with a positive top drop (a random drop <= 0 counts as 0)."""
        return bool(top.mean() > 0 and top.mean() >= TARGET_RATIO * max(float(rand.mean()), 0.0))

    return {
        "model": str(model), "data": str(data), "split": split, "seed": seed, "n_clips": int(len(chosen)),
        "clip_indices": chosen.tolist(), "clip_signs": names, "n_idle": int(idle.sum()), "n_without_hand": int(no_hand.sum()),
        "fraction": fraction, "random_draws": random_draws, "frame_method": frame_method, "landmark_methods": methods,
        "accuracy": float(np.mean([p == n for p, n in zip(predicted, names)])),
        "p_full": deletion.p_full.tolist(), "p_top_hidden": deletion.p_top.tolist(), "p_random_hidden": deletion.p_random.tolist(),
        "drop_top": deletion.drop_top, "drop_random": deletion.drop_random, "ratio": ratio(drop_top, drop_random),
        "deletion_met": met(drop_top, drop_random), "median_drop_top": float(np.median(drop_top)),
        "median_drop_random": float(np.median(drop_random)), "clips_top_beats_random": int(np.sum(drop_top > drop_random)), "p_random_run_hidden": deletion.p_random_run.tolist(),
        "drop_random_run": deletion.drop_random_run, "ratio_run": ratio(drop_top, deletion.p_full - deletion.p_random_run),
        "ratio_signs": ratio(drop_top[~idle], drop_random[~idle]), "ratio_idle": ratio(drop_top[idle], drop_random[idle]),
        "spearman": by_method, "seconds": seconds, "machine": machine_info(),
    }


def render(rec: dict[str, Any]) -> str:
    """Markdown table of a :func:`run` record, with the targets and whether they are met."""
    def mean(v: Sequence[float]) -> float:
        return float(np.nanmean(np.asarray(v, dtype=np.float64)))

    def fmt_ratio(r: float | None) -> str:
        return f"{r:.2f}" if r is not None else "inf (random drop <= 0)"

    pct = f"{100 * rec['fraction']:.0f} %"
    ratio = rec["ratio"]
    lines = [
        f"Explanation faithfulness: `{rec['model']}` on `{Path(rec['data']).name}`, test part of `{rec['split']}`: "
        f"{rec['n_clips']} clips drawn at random with seed {rec['seed']} ({rec['n_idle']} idle `-`, "
        f"{rec['n_without_hand']} without any hand), frame method `{rec['frame_method']}`, {rec['seconds']:.0f} s.",
        "",
        "| measure | value | target |",
        "|---|---:|---|",
        f"| model accuracy on these clips | {100 * rec['accuracy']:.1f} % | |",
        f"| mean p(predicted sign), whole clip | {mean(rec['p_full']):.3f} | |",
        f"| mean drop, top {pct} frames hidden | {rec['drop_top']:.4f} | |",
        f"| mean drop, random {pct} frames hidden ({rec['random_draws']} draws per clip) | {rec['drop_random']:.4f} | |",
        f"| ratio top / random | **{fmt_ratio(ratio)}** | >= {TARGET_RATIO:g}: {'met' if rec['deletion_met'] else 'NOT met'} |",
        f"| ratio, sign clips only / idle clips only | {fmt_ratio(rec['ratio_signs'])} / {fmt_ratio(rec['ratio_idle'])} | |",
        f"| median drop, top / random (the mean is carried by the few clips whose p moves at all) | "
        f"{rec['median_drop_top']:.4f} / {rec['median_drop_random']:.4f} | |",
        f"| clips where hiding the top frames lowers p more than hiding random ones | {rec['clips_top_beats_random']} of {rec['n_clips']} | |",
        f"| mean drop, a random contiguous run of {pct} of the frames hidden (harder baseline) | {rec['drop_random_run']:.4f} | |",
        f"| ratio top / random run | {fmt_ratio(rec['ratio_run'])} | |",
    ]
    for i, method in enumerate(rec["landmark_methods"]):
        s = rec["spearman"][method]
        rho = mean(s["landmarks"])
        tag = "shipped" if i == 0 else "for comparison"
        lines += [
            f"| Spearman trained vs randomised, landmark maps, `{method}` ({tag}) | **{rho:.3f}** | < {TARGET_SPEARMAN:g}: {'met' if rho < TARGET_SPEARMAN else 'NOT met'} |",
            f"| ... detected landmarks only, `{method}` | {mean(s['landmarks_detected']):.3f} | |",
        ]
    first = rec["spearman"][rec["landmark_methods"][0]]
    rho_f = mean(first["frames"])
    lines.append(f"| Spearman trained vs randomised, frame maps | **{rho_f:.3f}** | < {TARGET_SPEARMAN:g}: {'met' if rho_f < TARGET_SPEARMAN else 'NOT met'} |")
    lines += ["", machine_line(rec.get("machine"))]
    return "\n".join(lines)
