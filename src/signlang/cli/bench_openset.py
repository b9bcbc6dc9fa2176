"""``signlang benchmark openset``: open-set recognition (signs outside the vocabulary) on two protocols."""

from __future__ import annotations

from pathlib import Path

import typer

from signlang.cli._common import model_dir, pct, print_table, user_errors


def register(app: typer.Typer, benchmark_app: typer.Typer) -> None:
    @benchmark_app.command("openset")
    def openset(
        data: Path | None = typer.Option(None, "--data", help="Protocol A data (leave signs out); default: the traduttore ASL set in the shared data."),
        crowd: Path | None = typer.Option(None, "--crowd-data", help="Protocol B data (people never seen); default: asl_crowd_8signs in the shared data."),
        audit: Path | None = typer.Option(None, "--audit", help="Protocol B label audit (keep=1 cells are used); default: label_audit.csv beside the default --crowd-data, none for other data."),
        protocols: str = typer.Option("A,B", "--protocols", help="Comma-separated: A (leave signs out), B (people never seen), shipped (the --model's rules fitted on held-out people of --crowd-data, applied to the real videos)."),
        model: str = typer.Option("asl-cafe", "--model", help="shipped: a bundle folder or a pretrained model's name."),
        trained: Path | None = typer.Option(None, "--trained-data", help="shipped: data the model trained on whose people's cells (signer, sign) are left out of the held-out clips; default: asl_crowd_3signs in the shared data (with the default --model)."),
        videos: Path | None = typer.Option(None, "--videos", help="shipped: folder of .mp4 videos of signs outside the vocabulary; default: videos_real_signing in the shared data."),
        config: str = typer.Option("cpu", "--config", help="YAML config or shipped name."),
        set_: list[str] | None = typer.Option(None, "--set", help="Config override key=value (repeatable); e.g. ensemble.models=[xgboost]."),
        rounds: int = typer.Option(1, "--rounds", help="Protocol A: draws of the known signs."),
        folds: int = typer.Option(3, "--folds", help="Protocol B: grouped K-fold by signer, K."),
        target: float = typer.Option(0.05, "--target-false-rejection", help="Share of known validation clips each threshold may decline."),
        seed: int | None = typer.Option(None, "--seed", help="Seed (overrides the config's)."),
        out: Path = typer.Option(Path("docs/benchmarks/openset.md"), "--out", help="Markdown tables (a .json with every number is written beside it)."),
        quiet: bool = typer.Option(False, "--quiet", help="No progress lines."),
    ) -> None:
        """AUROC of known vs unknown signs per method, and at the threshold for --target-false-rejection the shares declined."""
        from signlang.cli.train import resolve_config

        with user_errors():
            chosen = {p.strip().upper() for p in protocols.split(",") if p.strip()}
            if not chosen or chosen - {"A", "B", "SHIPPED"}:
                raise ValueError(f"--protocols {protocols!r}: give one or more of A, B, shipped")
            if rounds < 1 or folds < 2:
                raise ValueError(f"--rounds must be >= 1 and --folds >= 2, got {rounds} and {folds}")
            cfg = resolve_config(config, set_, seed)
            from signlang.bench.accuracy import MAIN_DATA
            from signlang.bench.common import shared_data_path, write_report
            from signlang.bench.openset import CROWD8_AUDIT, CROWD8_DATA, markdown, run_openset_benchmark

            data_a = (data if data is not None else shared_data_path(*MAIN_DATA)) if "A" in chosen else None
            data_b = None
            if chosen & {"B", "SHIPPED"}:
                data_b = crowd if crowd is not None else shared_data_path(*CROWD8_DATA)
                if audit is None and crowd is None:
                    audit = shared_data_path(*CROWD8_AUDIT)
            result = run_openset_benchmark(cfg, data_a=data_a, data_b=data_b if "B" in chosen else None, audit_b=audit, rounds=rounds,
                                           folds=folds, seed=seed, target=target, progress=not quiet)
            text = markdown(result)
            if "SHIPPED" in chosen:
                from signlang.bench.accuracy import CROWD_DATA
                from signlang.bench.openset import VIDEOS, shipped_markdown, shipped_model_check

                folder = model_dir(model)
                result["shipped"] = shipped_model_check(folder, data_b, videos if videos is not None else shared_data_path(*VIDEOS),
                                                        audit=audit, target=target, seed=cfg.seed, progress=not quiet,
                                                        trained=trained if trained is not None or model != "asl-cafe" else shared_data_path(*CROWD_DATA))
                text += "\n" + shipped_markdown(result["shipped"])
            md, js = write_report(out, text, result)
        for key in ("A", "B"):
            if key in result:
                rows = [[m, f"{s['test']['auroc']:.3f}" if s["test"]["auroc"] is not None else "-", pct(s["test"]["known_declined"]),
                         pct(s["test"]["unknown_declined"])] for m, s in result[key]["summary"].items()]
                print_table(f"protocol {key} (test part)", ["method", "AUROC", "known declined", "unknown declined"], rows)
        for m, row in result.get("shipped", {}).get("methods", {}).items():
            n_dec = sum(v["declined"] for n, v in row["videos"].items() if result["shipped"]["videos"][n]["label"])
            typer.echo(f"shipped model, {m}: {n_dec} of the labelled videos outside the vocabulary declined")
        if result.get("chosen"):
            typer.echo(f"chosen on protocol A's validation part: {result['chosen']}")
        typer.echo(f"wrote {md} and {js}")
