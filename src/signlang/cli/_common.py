"""Helpers shared by the train / evaluate / predict / demo / benchmark commands.

Kept light (no torch, no sklearn at import) so that ``signlang --help`` stays fast.

Exit status, the same for every command: 0 done; **2 bad input or usage** (a missing or unreadable
file, a bad option, an unknown model: nothing was done), reported as one ``error: ...`` line on
stderr, on its own line (any progress bar is cleared first), never a traceback; **1 a failure while
running** (some items of a batch failed, each named on its own line, or a step such as the ONNX
parity check failed).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

import typer

EXIT_USAGE = 2
"""Bad input or usage: nothing was done."""
EXIT_FAILURE = 1
"""The command ran and something failed (items of a batch, a runtime check)."""


def _clear_progress() -> bool:
    """Close every live tqdm bar (they clear their line); True when one was drawn."""
    tqdm_std = sys.modules.get("tqdm.std")
    if tqdm_std is None:
        return False
    bars = [b for b in list(getattr(tqdm_std.tqdm, "_instances", ())) if not getattr(b, "disable", True)]
    for bar in bars:
        bar.leave = False
        bar.close()
    return bool(bars)


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print ``error: message`` to stderr on a line of its own and exit with ``code``."""
    if _clear_progress() and not sys.stderr.isatty():
        sys.stderr.write("\n")  # a captured stream keeps the bar's text: end its line
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn ``ValueError``/``FileNotFoundError`` raised by the stages into a clean ``error:`` exit."""
    try:
        yield
    except (ValueError, FileNotFoundError) as exc:
        fail(str(exc))


def parse_overrides(items: Sequence[str] | None) -> dict[str, Any]:
    """``["optim.lr=3e-4", "ensemble.models=[xgboost]"]`` -> ``{"optim.lr": 0.0003, ...}``.

    Values are parsed as YAML (numbers, booleans, null, lists); a bad item raises ``ValueError``
    naming it. The keys are validated later against the config schema.
    """
    import yaml

    from signlang._io import load_yaml

    out: dict[str, Any] = {}
    for item in items or ():
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--set {item!r}: expected KEY=VALUE, e.g. --set optim.epochs=5")
        try:
            value = load_yaml(raw) if raw.strip() else ""
        except yaml.YAMLError as exc:
            raise ValueError(f"--set {item!r}: the value is not valid YAML ({exc})") from exc
        out[key] = value
    return out


# Options of the streaming recognizer, shared by `signlang spot` and `signlang live`; None leaves
# the value to inference.streaming.StreamConfig, the one place for its defaults.
BACKEND_HELP = "auto (onnx for an ONNX export folder, torch for a bundle) | torch | onnx (ONNX Runtime; a bundle is exported once into RUN_DIR/onnx)."
MODEL_OPTION = typer.Option(None, "--model", help="Run folder written by `signlang train`, an ONNX export folder, or a pretrained name (default: the pretrained asl-cafe).")
"""``--model`` of the commands that predict: resolved by :func:`model_dir`."""
MODEL_REQUIRED = typer.Option(..., "--model", help="Run folder written by `signlang train`, or a pretrained name (e.g. asl-cafe).")
"""``--model`` of the commands that need one named (evaluate, export, calibrate, benchmarks): resolved by :func:`model_dir`."""


def model_dir(model: str | Path | None, *, writes: bool = False) -> Path:
    """The folder a ``--model`` value names, for every command: an existing path as given, a
    pretrained name (``asl-cafe``), or, for ``None``, the shipped default; anything else is an
    ``error:`` exit 2 naming it. ``writes``: the command changes the bundle, so the read-only
    pretrained models inside the package are refused (copy the folder first).
    """
    from signlang.inference.pretrained import PRETRAINED_DIR, PretrainedError, resolve_model

    try:
        path = resolve_model(None if model is None else str(model))
    except PretrainedError as exc:
        fail(str(exc))
    if writes and path.resolve().is_relative_to(PRETRAINED_DIR):
        fail(f"--model {model}: the pretrained model inside the package is not changed in place; copy its folder ({path}) "
             "and use the copy")
    return path

WINDOW_OPTION = typer.Option(None, "--window", help="Window length in seconds (default: the recognizer's, StreamConfig.window_s).")
HOP_OPTION = typer.Option(None, "--hop", help="Hop between windows in seconds (default: StreamConfig.hop_s).")
THRESHOLD_OPTION = typer.Option(None, "--threshold", help="Minimum probability of a window's sign (default: StreamConfig.threshold).")


UNKNOWN_CUE = "[unknown sign]"
"""The subtitle text of a segment whose sign is not one the model knows (``unknown``): spot's subtitles and live's transcript."""


def cue_text(segment: Any) -> str:
    """A segment's subtitle: its sign, or :data:`UNKNOWN_CUE`."""
    return UNKNOWN_CUE if getattr(segment, "unknown", False) else segment.sign


def stream_config(**given: Any) -> Any:
    """A ``StreamConfig`` from the options that were given (``None`` = the recognizer's default)."""
    from signlang.inference.streaming import StreamConfig

    return StreamConfig(**{k: v for k, v in given.items() if v is not None})


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A rich table on stdout (numbers formatted by the caller)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for i, col in enumerate(columns):
        table.add_column(str(col), justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*[str(v) for v in row])
    Console(file=sys.stdout, width=max(100, 14 * len(columns))).print(table)


def pct(x: float | None) -> str:
    """``0.9953 -> '99.53%'``; ``None``/NaN -> ``'-'``."""
    if x is None or x != x:
        return "-"
    return f"{100.0 * float(x):.2f}%"


AUDIT_OPTION = typer.Option(None, "--audit", "--exclude-cells", help="Label audit CSV (signer,label,...,keep): clips of cells with keep=0 are left out and listed. Default: label_audit.csv beside the data, if present (signlang.datasets.audit).")
ALL_CELLS_OPTION = typer.Option(False, "--all-cells", help="Use every clip, ignoring a label audit beside the data.")


def cells_choice(audit: Any, all_cells: bool) -> Any:
    """The ``cells`` argument of the stages from ``--audit FILE`` / ``--all-cells`` ("auto" when neither is given)."""
    from signlang.datasets.audit import ALL_CELLS, AUTO

    if audit is not None and all_cells:
        raise ValueError("--audit/--exclude-cells and --all-cells contradict each other; give one")
    return ALL_CELLS if all_cells else (audit if audit is not None else AUTO)


def echo_audit(source: dict[str, Any] | None) -> None:
    """Print what the label audit of a data source excluded (or that one beside the data was ignored)."""
    from signlang.datasets.audit import describe_audit

    source = source or {}
    if source.get("audit") is not None or source.get("audit_ignored"):
        typer.echo(describe_audit(source.get("audit"), ignored=source.get("audit_ignored")))
