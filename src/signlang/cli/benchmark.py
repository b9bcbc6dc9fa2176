"""``signlang benchmark NAME``: one command per entry of the benchmark registry (:data:`signlang.bench.registry.BENCHMARKS`).

The options are the benchmark's own (declared with it in ``bench/``); this module only runs it with
the command line's errors convention (:func:`~signlang.cli._common.user_errors`) and hands its
:class:`~signlang.bench.registry.BenchResult` to the one writer (:func:`~signlang.bench.registry.emit`).
"""

from __future__ import annotations

import functools
import inspect
import shlex
from collections.abc import Callable
from typing import Any

import typer

from signlang.cli._common import user_errors


def command_line(ctx: typer.Context) -> str:
    """``signlang benchmark NAME --opt value ...`` with the options given on the command line (for the report)."""
    words = ctx.command_path.split()
    words[0] = "signlang"
    for param in ctx.command.params:
        source = ctx.get_parameter_source(param.name or "")
        if getattr(source, "name", None) != "COMMANDLINE" or not param.opts:
            continue
        value = ctx.params.get(param.name or "")
        if getattr(param, "is_flag", False):
            words.append(param.opts[0] if value else (param.secondary_opts or param.opts)[0])
            continue
        for v in value if isinstance(value, (list, tuple)) else [value]:
            text = str(getattr(v, "value", v))  # a value that looks like an option is only read back as --opt=value
            words += [f"{param.opts[0]}={text}"] if text.startswith("-") else [param.opts[0], text]
    return shlex.join(words)


def _command(bench: Any) -> Callable[..., None]:
    """The command of ``bench``: its own options plus the context (for the command line in the report)."""

    @functools.wraps(bench.run)
    def command(_ctx: typer.Context, **options: Any) -> None:
        from signlang.bench.registry import COMMAND, emit

        token = COMMAND.set(command_line(_ctx))
        try:
            with user_errors():
                result = bench.run(**options)
                emit(result, typer.echo)
        finally:
            COMMAND.reset(token)

    own = inspect.signature(bench.run)
    ctx = inspect.Parameter("_ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context)
    command.__signature__ = own.replace(parameters=[ctx, *own.parameters.values()], return_annotation=None)  # type: ignore[attr-defined]
    return command


def register(app: typer.Typer, benchmark_app: typer.Typer) -> None:
    from signlang.bench.registry import BENCHMARKS

    for bench in BENCHMARKS.values():
        benchmark_app.command(bench.name, help=bench.help)(_command(bench))
