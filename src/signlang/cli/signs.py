"""``signlang signs``: what a model recognises, and the pretrained models this installation ships.

``signlang signs [--model M] [--json]``: the pretrained models with their one-line descriptions
(``signlang/pretrained/index.json``), then the vocabulary of M (default: the shipped model),
read from its manifest without loading it. Anything outside that list is answered with the
nearest sign it knows, or ``unknown`` where the model has an open-set rule (``meta.open_set``) and
its score falls below the rule's threshold, so the list is what to check first.
"""

from __future__ import annotations

import json

import typer

from signlang.cli._common import MODEL_OPTION, model_dir, user_errors


def register(app: typer.Typer, benchmark_app: typer.Typer) -> None:
    @app.command("signs")
    def signs(
        model: str | None = MODEL_OPTION,
        as_json: bool = typer.Option(False, "--json", help="One JSON object: model, description, signs, no_sign, pretrained."),
    ) -> None:
        """List the signs a model recognises (default: the shipped asl-cafe) and the pretrained models."""
        from signlang.inference.policy import no_sign_class
        from signlang.inference.pretrained import DEFAULT_PRETRAINED, PRETRAINED_DIR, model_vocabulary, pretrained_index

        path = model_dir(model)
        with user_errors():
            index = pretrained_index()
            vocabulary = model_vocabulary(path)
        name = next((n for n in index if path.resolve() == (PRETRAINED_DIR / n).resolve()), None)
        description = index[name].get("description", "") if name else ""
        no_sign = no_sign_class(vocabulary)
        if as_json:
            typer.echo(json.dumps({"model": name or str(path), "description": description, "signs": vocabulary,
                                   "count": len(vocabulary), "no_sign": no_sign,
                                   "pretrained": {n: e.get("description", "") for n, e in sorted(index.items())}}))
            return
        typer.echo("pretrained models:")
        for n, entry in sorted(index.items()):
            default = " (default)" if n == DEFAULT_PRETRAINED else ""
            typer.echo(f"  {n}{default}: {entry.get('description', '')}")
        typer.echo("")
        typer.echo(f"{name or path}: {len(vocabulary)} signs" + (f" ({description})" if description else ""))
        typer.echo("  " + ", ".join(f"{s} (no sign: idle or hands down)" if s == no_sign else s for s in vocabulary))
        manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
        rule = (manifest.get("meta") or {}).get("open_set") if isinstance(manifest.get("meta"), dict) else None
        if rule:
            typer.echo(f"Signs outside this list are not recognised: the model says 'unknown' when its {rule.get('method')} score is "
                       f"below {float(rule.get('threshold', 0)):.4g}, else it answers the nearest sign it knows (docs: model card).")
        else:
            typer.echo("Signs outside this list are not recognised: the model answers them with the nearest sign it knows.")
