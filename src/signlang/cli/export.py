"""``signlang export``: the whole ensemble as ONNX files, parity-checked against PyTorch."""

from __future__ import annotations

from pathlib import Path

import typer

from signlang.cli._common import MODEL_REQUIRED, fail, model_dir, user_errors


def register(app: typer.Typer, benchmark_app: typer.Typer) -> None:
    @app.command("export")
    def export(
        model: str = MODEL_REQUIRED,
        out: Path = typer.Option(..., "--out", help="Folder for the .onnx files and manifest.json."),
        tolerance: float = typer.Option(1e-4, "--tolerance", help="Largest allowed probability difference ONNX vs PyTorch."),
        onegraph: bool = typer.Option(True, "--onegraph/--no-onegraph",
                                      help="Also write model.onnx: raw landmarks -> probabilities in one graph."),
    ) -> None:
        """Export networks (dynamic batch and frames), XGBoost models and meta-learner to ONNX, and the one graph model.onnx."""
        from signlang.inference.export import ExportParityError, export_bundle

        with user_errors():
            try:
                manifest = export_bundle(model_dir(model), out, tolerance=tolerance, onegraph=onegraph)
            except ExportParityError as exc:
                fail(str(exc), code=1)
        for name, entry in manifest["models"].items():
            typer.echo(f"{name:>14}  {entry['file']}  ({entry['kind']})")
        parity = manifest["parity"]
        typer.echo(f"parity on {parity['lengths']}-frame clips: max |p_onnx - p_torch| = {parity['max_abs_diff_all']:.2e} "
                   f"(<= {parity['tolerance']:g})")
        one = manifest.get("onegraph")
        if one and "file" in one:
            typer.echo(f"one graph {one['file']} (landmarks -> probabilities): max |p_onegraph - p_torch| = "
                       f"{one['parity']['max_abs_diff']:.2e} on raw clips of {one['parity']['clip_lengths']} frames")
        elif one:
            typer.echo(f"no one graph: {one['unsupported']}")
        typer.echo(f"wrote {out / 'manifest.json'}")
