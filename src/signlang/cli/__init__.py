"""The ``signlang`` command line: a typer app assembled from one small module per command.

Each module in this package defines ``register(app, benchmark_app)`` and keeps its heavy imports
inside the command functions, so ``signlang --help`` stays fast. Commands are thin: they parse
arguments, call the stage's Python API and print.
"""

from __future__ import annotations

import importlib
import pkgutil

import typer

app = typer.Typer(
    name="signlang",
    help="Isolated sign-language recognition: video -> landmarks -> ensemble -> top-k signs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        from signlang import __version__

        typer.echo(f"signlang {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True, help="Print the signlang version and exit."),
) -> None:
    """Isolated sign-language recognition: video -> landmarks -> ensemble -> top-k signs."""
benchmark_app = typer.Typer(help="Reproducible benchmarks whose results go to docs/benchmarks.md.", no_args_is_help=True)
app.add_typer(benchmark_app, name="benchmark")


@app.command()
def version() -> None:
    """Print the signlang version."""
    from signlang import __version__

    typer.echo(__version__)


for _mod in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if not _mod.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_mod.name}").register(app, benchmark_app)


TRAINING_STACK = ("torch", "sklearn", "xgboost", "safetensors", "matplotlib")
"""Modules of the ``train`` extra: absent in the lean install (ONNX Runtime only)."""


def main() -> None:
    """The console entry point: the app, with a missing training stack said in one line (exit 2)."""
    try:
        app(prog_name="signlang")
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in TRAINING_STACK:
            raise
        typer.echo(f"error: this command needs {exc.name}, which this installation lacks (the lean install runs the shipped "
                   "model on ONNX Runtime only); install the training stack: pip install \"signlang[train]\"", err=True)
        raise SystemExit(2) from None
