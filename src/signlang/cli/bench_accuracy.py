"""``signlang benchmark accuracy``: our models and the ensemble beside LR and MiniRocket baselines, the
combiners compared on validation, the cross-signer table (grouped K-fold by signer) and transfer."""

from __future__ import annotations

from pathlib import Path

import typer

from signlang.cli._common import ALL_CELLS_OPTION, cells_choice, echo_audit, pct, print_table, user_errors

PARTS = ("main", "combiners", "cross-signer", "transfer", "joint")


def register(app: typer.Typer, benchmark_app: typer.Typer) -> None:
    @benchmark_app.command("accuracy")
    def accuracy(
        data: Path | None = typer.Option(None, "--data", help="Dataset (.npz or landmark store); default: the traduttore ASL set in the shared data ($SIGNLANG_SHARED_DATA or ../shared/data)."),
        split: str = typer.Option("blocked:0.2", "--split", help="Main protocol (blocked:P, random:P, signer, include50:...)."),
        optimistic_split: str = typer.Option("random:0.2", "--optimistic-split", help="Extra protocol reported as optimistic; 'none' to skip."),
        out: Path = typer.Option(Path("docs/benchmarks/accuracy.md"), "--out", help="Markdown table (a .json with every number is written beside it)."),
        config: str | None = typer.Option(None, "--config", help="YAML config or shipped name (default: by hardware)."),
        set_: list[str] | None = typer.Option(None, "--set", help="Config override key=value (repeatable)."),
        baselines: str = typer.Option("lr,minirocket", "--baselines", help="Comma-separated baselines (lr, minirocket) or 'none'."),
        single: bool = typer.Option(True, "--single/--no-single", help="Also train each base model alone."),
        seed: int | None = typer.Option(None, "--seed", help="Seed (overrides the config's)."),
        keep: Path | None = typer.Option(None, "--keep", help="Keep the trained bundles in this folder (e.g. for `benchmark latency`)."),
        quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
        parts: str = typer.Option(",".join(PARTS), "--parts", help=f"Comma-separated parts to run: {', '.join(PARTS)}."),
        crowd: Path | None = typer.Option(None, "--crowd-data", help="Cross-signer data for cross-signer, transfer and joint; default: asl_crowd_8signs in the shared data (its label_audit.csv applies)."),
        folds: int = typer.Option(5, "--folds", help="Cross-signer: grouped K-fold by signer, K."),
        ablations: bool = typer.Option(True, "--ablations/--no-ablations", help="Cross-signer: ablation rows (the XGBoost base model alone per change)."),
        ablation: list[str] | None = typer.Option(None, "--ablation", help="Cross-signer: run only this ablation row (repeatable; names in bench_accuracy.ABLATIONS, e.g. 'shipped normalisation')."),
        ensemble: bool = typer.Option(True, "--ensemble/--no-ensemble", help="Cross-signer: also the ensemble and its base models (5 ensemble fits; --no-ensemble: baselines and ablation rows only)."),
        audit: Path | None = typer.Option(None, "--audit", "--exclude-cells", help="Label audit of --crowd-data (signer,label,...,keep): models train on kept cells, figures over kept cells, all-cells figures beside them. Default: label_audit.csv beside it."),
        all_cells: bool = ALL_CELLS_OPTION,
    ) -> None:
        """Accuracy, macro-F1, training time and inference ms/clip of baselines, each model and the ensemble."""
        from signlang.cli.train import resolve_config

        with user_errors():
            cfg = resolve_config(config, set_, seed)
            from signlang.bench.accuracy import CROWD_DATA, MAIN_DATA, run_accuracy_benchmark, write_results
            from signlang.bench.common import shared_data_path

            data = data if data is not None else shared_data_path(*MAIN_DATA)

            names = () if baselines.strip().lower() == "none" else tuple(b.strip() for b in baselines.split(",") if b.strip())
            chosen = [q.strip() for q in parts.split(",") if q.strip()]
            bad = sorted(set(chosen) - set(PARTS))
            if bad:
                raise ValueError(f"--parts: unknown part(s) {bad}; known: {', '.join(PARTS)}")
            if crowd is None and {"cross-signer", "transfer", "joint"} & set(chosen):
                crowd = shared_data_path(*CROWD_DATA)
            rows = _ablation_rows(ablations, ablation)
            _extra_parts(chosen, data, crowd, cfg, split, folds, names, rows, keep, out, quiet, ensemble, cells_choice(audit, all_cells))
            if "main" not in chosen:
                return
            result = run_accuracy_benchmark(
                data, cfg, split=split, optimistic_split=None if optimistic_split.lower() == "none" else optimistic_split,
                baselines=names, single_models=single, keep_bundles=keep, progress=not quiet,
            )
            md, js = write_results(result, out)
        echo_audit(result["setup"]["data"])
        rows = [[r["model"], r["split"] + (" (optimistic)" if r.get("optimistic") else ""), pct(r["accuracy"]),
                 pct(r["macro_f1"]), "-" if r["train_s"] is None else f"{r['train_s']:.1f} s", f"{r['infer_ms_per_clip']:.3f}"]
                for r in result["rows"]]
        print_table(f"accuracy benchmark ({result['setup']['n_clips']} clips, {result['setup']['n_classes']} classes)",
                    ["model", "split", "accuracy", "macro-F1", "train", "ms/clip"], rows)
        typer.echo(f"wrote {md} and {js}")


def _with_blocks(*extra: str) -> dict[str, list[str]]:
    """Overrides that add optional feature blocks to the default table (read from the registry)."""
    from signlang.features.engineering import FEATURE_BLOCKS

    return {"data.feature_blocks": [*FEATURE_BLOCKS, *extra]}


ABLATIONS = {
    "shipped normalisation": {},
    "without canonical hand": {"data.canonical_hand": False},
    "plus level shoulders": {"data.level_shoulders": True},
    "plus face_relative features": _with_blocks("face_relative"),
    "plus finger_straightness features": _with_blocks("finger_straightness"),
    "plus face_relative and finger_straightness": _with_blocks("face_relative", "finger_straightness"),
}
"""Cross-signer ablation rows: label -> config overrides (each run with the XGBoost base model alone)."""


def _ablation_rows(enabled: bool, names: list[str] | None) -> dict[str, dict] | None:
    """The ablation rows to run: all of ABLATIONS, the ``--ablation`` names (an unknown one is named), or none."""
    if not enabled:
        return None
    if not names:
        return ABLATIONS
    unknown = [n for n in names if n not in ABLATIONS]
    if unknown:
        raise ValueError(f"--ablation: unknown row(s) {unknown}; known: {', '.join(ABLATIONS)}")
    return {n: ABLATIONS[n] for n in names}


def _extra_parts(parts: list[str], data: Path, crowd: Path, cfg, split: str, folds: int, baselines: tuple[str, ...],
                 ablations: dict[str, dict] | None, keep: Path | None, out: Path, quiet: bool, ensemble: bool = True, cells: object = "auto") -> None:
    """The combiner comparison, the cross-signer table and transfer, each written beside ``out``."""
    from signlang.bench import accuracy as bench
    from signlang.bench.common import write_report

    stem = out.with_suffix("")
    if "combiners" in parts or "transfer" in parts:
        bundle = (keep or stem.parent / "bundles") / "main-chosen-combiner"
        res = bench.compare_combiners(data, cfg, split=split, keep=bundle)
        md, _ = write_report(f"{stem}_combiners", bench.combiner_markdown(res), res)
        typer.echo(bench.combiner_markdown(res))
        typer.echo(f"wrote {md}")
        if "transfer" in parts:
            zs = bench.zero_shot(bundle, crowd)
            text = (f"Zero-shot: the bundle trained on {data.name} ({split} training part, combiner {res['chosen']}) on "
                    f"{zs['n_clips']} clips of {crowd.name} ({', '.join(zs['signs'])}): right one of the shared signs "
                    f"{pct(zs['two_way_accuracy'])}, argmax over the whole vocabulary {pct(zs['accuracy'])}; answers: {zs['predicted']}.")
            md, _ = write_report(f"{stem}_transfer", text, zs)
            typer.echo(text)
            typer.echo(f"wrote {md}")
    if "joint" in parts:
        res = bench.joint_heldout(data, crowd, cfg, split=split, k=folds, progress=not quiet, save_proba=f"{stem}_joint_proba.npz", cells=cells)
        echo_audit(res["crowd"])
        md, _ = write_report(f"{stem}_joint", bench.joint_markdown(res), res)
        typer.echo(bench.joint_markdown(res))
        typer.echo(f"wrote {md}")
    if "cross-signer" in parts:
        res = bench.cross_signer(crowd, cfg, k=folds, baselines=baselines, ablations=ablations,
                                 progress=not quiet, ours=ensemble, cells=cells)
        md, _ = write_report(f"{stem}_cross_signer", bench.cross_signer_markdown(res), res)
        typer.echo(bench.cross_signer_markdown(res))
        typer.echo(f"wrote {md}")
