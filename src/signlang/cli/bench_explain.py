"""``signlang benchmark explain``: are the explanations faithful? (deletion + model randomisation).

On ``--n-clips`` held-out clips (the test side of ``--split``, default ``blocked:0.2`` on the
traduttore data; clips without any detected hand are skipped, the predictor refuses them), for the
predicted sign:

* hide the top ``--fraction`` (20 %) most important frames (NaN = missing, filled by the
  predictor's own normalisation) and, separately, as many random frames -> mean drop of p(sign);
* explain the same clips with the same architectures re-initialised at random -> Spearman rank
  correlation with the trained model's landmark maps (and frame maps).

Prints a markdown table (and writes it plus a JSON record with ``--out``). Targets: top-frame
drop >= 2 x random drop, rank correlation < 0.3.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import typer

from signlang.cli._common import user_errors

DEFAULT_DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "traduttore_asl_mediapipe" / "traduttore_asl_mediapipe.npz"


def pick_clips(n_total: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` of the candidate indices, spread evenly over them (sorted, deterministic per ``seed``)."""
    if len(n_total) <= n:
        return np.sort(n_total)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_total, size=n, replace=False))


def register(app: typer.Typer, benchmark_app: typer.Typer) -> None:
    @benchmark_app.command("explain")
    def bench_explain(
        model: Path = typer.Option(..., "--model", help="Run folder (model bundle) trained on --data."),
        data: Path = typer.Option(DEFAULT_DATA, "--data", help="Dataset (.npz or store) the model was trained on."),
        split: str = typer.Option("blocked:0.2", "--split", help="Held-out protocol; its test side is used."),
        n_clips: int = typer.Option(60, "--n-clips", min=2, help="How many held-out clips to explain."),
        fraction: float = typer.Option(0.2, "--fraction", min=0.01, max=0.99, help="Share of frames to hide."),
        steps: int = typer.Option(32, "--steps", min=1, help="Integration steps of integrated gradients."),
        frame_method: str = typer.Option("combined", "--frame-method", help="combined | gradcam | ig"),
        seed: int = typer.Option(0, "--seed"),
        out: Path | None = typer.Option(None, "--out", help="Folder for explain_benchmark.md and .json."),
    ) -> None:
        """Faithfulness of the explanations: deletion of top vs random frames, model randomisation."""
        import torch

        from signlang._io import atomic_write, write_json
        from signlang.datasets.loaders import load_dataset
        from signlang.datasets.splits import split_indices
        from signlang.explain.explainer import Explainer
        from signlang.explain.faithfulness import deletion_drops, randomized_explainer, rank_correlations
        from signlang.explain.attribution import spearman
        from signlang.inference.predictor import Predictor
        from signlang.landmarks.layout import part_present

        torch.set_num_threads(max(1, min(4, torch.get_num_threads())))
        t0 = time.perf_counter()
        with user_errors():
            clips = load_dataset(data)
            _, test = split_indices(clips, split, seed=seed)
            has_hand = np.array([part_present(clips.landmarks[i])[:, 1:].any() for i in test], dtype=bool)
            chosen = pick_clips(test[has_hand], n_clips, seed)
            if len(chosen) < 2:
                raise ValueError(f"{data}: only {len(chosen)} held-out clips with a detected hand under {split}")
            raws = [clips.landmarks[i] for i in chosen]
            with Predictor(model, backend="torch") as predictor:
                explainer = Explainer.from_predictor(predictor, ig_steps=steps, frame_method=frame_method)
                trained = [explainer.explain(c) for c in raws]
                deletion = deletion_drops(explainer, raws, trained, fraction=fraction, seed=seed)
                rand_exp = randomized_explainer(explainer, seed=seed + 1)
                randomised = [rand_exp.explain(c, target=e.target) for c, e in zip(raws, trained)]
        rho_lm = rank_correlations(trained, randomised)
        rho_det = rank_correlations(trained, randomised, [~np.isnan(c[..., 0]) for c in raws])
        rho_fr = np.array([spearman(a.frame_importance, b.frame_importance) for a, b in zip(trained, randomised)])
        correct = float(np.mean([e.target == clips.y[i] for e, i in zip(trained, chosen)]))
        ratio = deletion.drop_top / deletion.drop_random if deletion.drop_random > 0 else float("nan")
        ratio_ok = deletion.drop_top > 0 and deletion.drop_top >= 2.0 * max(deletion.drop_random, 0.0)
        elapsed = time.perf_counter() - t0
        rows = [
            ("clips explained (held-out, with a hand)", f"{len(chosen)}"),
            ("accuracy of the model on them", f"{100 * correct:.1f}%"),
            ("mean p(predicted sign), full clip", f"{float(deletion.p_full.mean()):.3f}"),
            (f"mean drop, top {100 * fraction:.0f}% frames hidden", f"{deletion.drop_top:.3f}"),
            (f"mean drop, random {100 * fraction:.0f}% frames hidden", f"{deletion.drop_random:.3f}"),
            ("ratio top / random (target >= 2)", f"{ratio:.2f}" if np.isfinite(ratio) else "n/a (random drop <= 0)"),
            ("Spearman, landmark maps, trained vs randomised (target < 0.3)", f"{float(rho_lm.mean()):.3f}"),
            ("Spearman, landmark maps, detected landmarks only", f"{float(np.nanmean(rho_det)):.3f}"),
            ("Spearman, frame maps, trained vs randomised", f"{float(rho_fr.mean()):.3f}"),
            ("time", f"{elapsed:.0f} s"),
        ]
        table = "\n".join(
            [f"Explanation faithfulness: `{model}` on `{data.name}` ({split}, frame method {frame_method}, IG steps {steps})", "",
             "| measure | value |", "|---|---|"] + [f"| {a} | {b} |" for a, b in rows]
        )
        typer.echo(table)
        if out is not None:
            with atomic_write(out / "explain_benchmark.md", "w") as fh:
                fh.write(table + "\n")
            write_json(out / "explain_benchmark.json", {
                "model": str(model), "data": str(data), "split": split, "n_clips": int(len(chosen)), "fraction": fraction,
                "frame_method": frame_method, "ig_steps": steps, "seed": seed, "accuracy": correct,
                "p_full": deletion.p_full.tolist(), "p_top_hidden": deletion.p_top.tolist(),
                "p_random_hidden": deletion.p_random.tolist(), "drop_top": deletion.drop_top,
                "drop_random": deletion.drop_random, "ratio": ratio if np.isfinite(ratio) else None, "spearman_landmarks": rho_lm.tolist(),
                "spearman_detected": rho_det.tolist(), "spearman_frames": rho_fr.tolist(), "seconds": elapsed,
            })
        rho_ok = float(rho_lm.mean()) < 0.3
        typer.echo(f"deletion target (top >= 2x random) {'met' if ratio_ok else 'NOT met'}: drop top {deletion.drop_top:.3f} "
                   f"vs random {deletion.drop_random:.3f}")
        typer.echo(f"randomisation target (landmark-map Spearman < 0.3) {'met' if rho_ok else 'NOT met'}: {float(rho_lm.mean()):.3f}")
