"""``signlang benchmark pretrained``: rebuild the pretrained model shipped inside the package."""

from __future__ import annotations

from pathlib import Path

import typer

from signlang.cli._common import user_errors


def register(app: typer.Typer, benchmark_app: typer.Typer) -> None:
    @benchmark_app.command("pretrained")
    def pretrained(
        out: Path = typer.Option(Path("src/signlang/pretrained"), "--out", help="Folder of the pretrained models (index.json + one folder per model)."),
        name: str = typer.Option("asl-cafe", "--name", help="Name of the model (its folder)."),
        config: str = typer.Option("cpu", "--config", help="Shipped config the model is trained with."),
        combiner: str | None = typer.Option(None, "--combiner", help="Override ensemble.combiner (default: the config's)."),
        models: str | None = typer.Option(None, "--models", help="Comma-separated base models, overriding ensemble.models."),
        temperature_from: Path | None = typer.Option(None, "--temperature-from", help="The *_joint_proba.npz of `signlang benchmark accuracy --parts joint` (same recipe): calibrate the model with the temperature fitted on its held-out probabilities."),
        calibrate_only: bool = typer.Option(False, "--calibrate-only", help="Do not train: write the --temperature-from temperature into the existing OUT/NAME and re-pin it."),
        open_set: str | None = typer.Option(None, "--open-set", help="With --temperature-from: also fit this open-set score (max_prob, margin, entropy, energy, mahalanobis) on the same held-out probabilities, the left-out crowd signs as unknowns, and store it as meta.open_set."),
        false_rejection: float = typer.Option(0.05, "--false-rejection", help="Share of held-out known clips the open-set threshold may decline."),
        segmenter_only: bool = typer.Option(False, "--segmenter-only", help="Do not retrain the classifier: train the temporal segmenter for continuous signing (the config's segmenter section, on the same data) into the existing OUT/NAME and re-pin it."),
    ) -> None:
        """Train the joint model (traduttore + the kept cells of asl_crowd_8signs, signs with >= 20 people or a traduttore class) from ../shared/data and pin it by sha256."""
        with user_errors():
            from signlang.bench.pretrained import build_pretrained, calibrate_pretrained, pin_pretrained

            if segmenter_only:
                from signlang.bench.pretrained import add_segmenter

                rec = add_segmenter(out, name, config=config)
                v = rec.get("validation") or {}
                typer.echo(f"{out / name}: segmenter added ({rec['fitted_on']}; validation F1 {v.get('f1', float('nan')):.3f}, "
                           f"decoder {rec['decoder']}, {rec['fit_s'] / 60:.1f} min); re-pinned in {out / 'index.json'}")
                return
            if calibrate_only:
                if temperature_from is None:
                    raise ValueError("--calibrate-only needs --temperature-from")
                c = calibrate_pretrained(out / name, temperature_from, open_set=(open_set, false_rejection) if open_set else None)
                from signlang.inference.pretrained import pretrained_index

                pin_pretrained(out, name, pretrained_index(out).get(name, {}).get("description", name))
                typer.echo(f"{out / name}: temperature {c['temperature']:.3f} (held-out NLL {c['nll_before']:.4f} -> {c['nll_after']:.4f}, "
                           f"ECE {c['ece_before']:.4f} -> {c['ece_after']:.4f} on {c['n_clips']} clips); re-pinned in {out / 'index.json'}")
                if c.get("open_set"):
                    typer.echo(f"open set: {c['open_set']['method']} threshold {c['open_set']['threshold']:.4f}; record: "
                               + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in c["open_set"].items()
                                           if k not in ("method", "threshold")))
                return
            r = build_pretrained(out, name=name, config=config, combiner=combiner,
                                 models=[m.strip() for m in models.split(",") if m.strip()] if models else None,
                                 temperature_from=temperature_from)
        typer.echo(f"wrote {out / name} ({r['bytes'] / 1e6:.2f} MB, {len(r['classes'])} signs, trained in {r['fit_s'] / 60:.1f} min)")
