"""The one benchmark registry, the one result type and the one writer.

Every benchmark is a :class:`Benchmark` in :data:`BENCHMARKS` (registered with
:func:`register_benchmark`; the built-in ones live in :mod:`signlang.bench.commands`). Its ``run``
takes the command-line options (typer-annotated keyword arguments) and returns a
:class:`BenchResult`; ``signlang benchmark NAME`` (``cli/benchmark.py``) is built from this registry
alone and hands the result to :func:`emit`, which prints it and writes it through :func:`write_result`
(``OUT.md`` + ``OUT.json``, with the command and the machine it ran on). A benchmark with several
reports emits each part as it finishes, so hours of work are on disk before the next part starts.

This module stays light (no numpy, no torch): the command line imports it to list the benchmarks.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from signlang._io import atomic_write
from signlang._registry import Registry
from signlang.bench.common import machine_info, machine_line


@dataclass
class BenchResult:
    """What every benchmark returns.

    ``title``: one line; ``markdown``: the report (tables and text); ``data``: every number, JSON-able;
    ``command``: how to rerun it (filled in by the command line); ``machine``: :func:`machine_info` of
    the machine it ran on; ``out``: where :func:`write_result` puts ``OUT.md`` and ``OUT.json`` (None:
    printed only); ``show``: print the markdown (False when the benchmark printed its own summary).
    """

    name: str
    title: str
    markdown: str
    data: dict[str, Any]
    out: Path | None = None
    command: str = ""
    machine: dict[str, Any] = field(default_factory=machine_info)
    show: bool = True

    def document(self) -> dict[str, Any]:
        """The JSON written: ``data`` with ``benchmark``, ``title``, ``command`` and ``machine`` added (its own keys win)."""
        doc = dict(self.data)
        for key, value in (("benchmark", self.name), ("title", self.title), ("command", self.command), ("machine", self.machine)):
            doc.setdefault(key, value)
        return doc

    def report(self) -> str:
        """The markdown written: the report, then the command and (when the report does not say it) the machine."""
        tail = [f"Command: `{self.command}`."] if self.command else []
        if "Machine:" not in self.markdown:
            tail.append(machine_line(self.machine))
        return self.markdown.rstrip() + ("\n\n" + " ".join(tail) if tail else "") + "\n"


def write_result(result: BenchResult, out: str | os.PathLike[str] | None = None) -> tuple[Path, Path]:
    """Write ``OUT.md`` and ``OUT.json`` (``out`` or ``result.out``, with or without a suffix), atomically."""
    target = out if out is not None else result.out
    if target is None:
        raise ValueError(f"benchmark {result.name!r}: no --out to write to")
    base = Path(target)
    base = base.with_suffix("") if base.suffix in {".md", ".json"} else base
    md, js = base.with_suffix(".md"), base.with_suffix(".json")
    with atomic_write(md, "w") as fh:
        fh.write(result.report())
    with atomic_write(js, "w") as fh:
        json.dump(result.document(), fh, indent=2, default=str)
        fh.write("\n")
    return md, js


COMMAND: ContextVar[str] = ContextVar("signlang_benchmark_command", default="")
"""The command line being run (set by ``cli/benchmark.py``), stamped on every result emitted."""


def emit(result: BenchResult, echo: Callable[[str], None] = print) -> tuple[Path, Path] | None:
    """Print ``result`` (unless it printed its own summary) and write it when it has an ``out``."""
    result.command = result.command or COMMAND.get()
    if result.show:
        echo(result.markdown.rstrip())
    if result.out is None:
        return None
    md, js = write_result(result)
    echo(f"wrote {md} and {js}")
    return md, js


@dataclass(frozen=True)
class Benchmark:
    """One ``signlang benchmark NAME``: ``help`` (one line) and ``run(**options) -> BenchResult``."""

    name: str
    help: str
    run: Callable[..., BenchResult]


BENCHMARKS: Registry[Benchmark] = Registry("benchmark", builtins=("signlang.bench.commands",))


def register_benchmark(name: str, help: str) -> Callable[[Callable[..., BenchResult]], Callable[..., BenchResult]]:
    """Decorator adding ``run`` to :data:`BENCHMARKS` as ``signlang benchmark NAME``."""

    def deco(run: Callable[..., BenchResult]) -> Callable[..., BenchResult]:
        BENCHMARKS.register(name, Benchmark(name, help, run))
        return run

    return deco
