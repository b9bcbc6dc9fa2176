"""``signlang calibrate``: fit a bundle's probability temperature on clips it never saw."""

from __future__ import annotations

from pathlib import Path

import typer

from signlang.cli._common import ALL_CELLS_OPTION, AUDIT_OPTION, cells_choice, echo_audit, model_dir, user_errors


def register(app: typer.Typer, benchmark_app: typer.Typer) -> None:
    @app.command("calibrate")
    def calibrate(
        model: str = typer.Option(..., "--model", help="Run folder written by `signlang train` (a stacking ensemble); the pretrained models are read-only: calibrate a copy."),
        data: Path = typer.Option(..., "--data", help="Held-out clips (.npz or landmark store): people or sessions the bundle never trained on."),
        split: str = typer.Option("all", "--split", help="Which clips of --data: 'all' (default) or a protocol whose test part is used."),
        allow_overlap: bool = typer.Option(False, "--allow-overlap", help="Use clips the bundle trained on too (refused by default: they make it overconfident)."),
        audit: Path | None = AUDIT_OPTION,
        all_cells: bool = ALL_CELLS_OPTION,
        open_set: str | None = typer.Option(None, "--open-set", help="Fit an open-set rule (answer 'unknown' for signs outside the vocabulary) with this score: max_prob, margin, entropy, energy, mahalanobis; 'none' removes it. Default: refit the bundle's own rule, if it has one."),
        false_rejection: float | None = typer.Option(None, "--false-rejection", help="Share of these known clips the open-set threshold may decline (default: the rule's own target, else 0.05)."),
    ) -> None:
        """Rescale the ensemble's probabilities so that its confidence matches how often it is right.

        Temperature scaling: one number T, softmax(log(p) / T), fitted on held-out clips; the top-1 answer never changes.

        Only the bundle's manifest is rewritten. Score the bundle on other clips than these afterwards.
        """
        path = model_dir(model, writes=True)
        with user_errors():
            from signlang.training.pipeline import calibrate_bundle

            r = calibrate_bundle(path, data, split, allow_overlap=allow_overlap, open_set=open_set,
                                 target_false_rejection=false_rejection, cells=cells_choice(audit, all_cells))
        echo_audit(r.get("data"))
        typer.echo(f"{model}: temperature {r['temperature']:.3f} (was {r['previous_temperature']:.3f}), fitted on {r['n_clips']} clips")
        typer.echo(f"  on those clips: negative log-likelihood {r['nll_before']:.4f} -> {r['nll_after']:.4f}, "
                   f"expected calibration error {r['ece_before']:.4f} -> {r['ece_after']:.4f}")
        o = r.get("open_set")
        if o and o["method"] == "none":
            typer.echo("  open set: rule removed (the bundle never answers 'unknown')")
        elif o:
            typer.echo(f"  open set: {o['method']} threshold {o['threshold']:.4g}, declines {100 * o['false_rejection']:.1f} % of these "
                       f"{o['n_known']} known clips (target {100 * o['target_false_rejection']:.1f} %)")
        for note in r.get("notes", []):
            typer.echo(f"note: {note}")
