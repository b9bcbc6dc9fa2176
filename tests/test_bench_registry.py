"""One benchmark registry: `signlang benchmark NAME` is built from it, every benchmark returns a BenchResult,
and one writer puts OUT.md and OUT.json (with the command and the machine) on disk."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from signlang.bench.registry import BENCHMARKS, BenchResult, register_benchmark, write_result

ROOT = Path(__file__).resolve().parents[1]


def _app() -> typer.Typer:
    """A fresh command line with the benchmark commands built from the registry as it is now."""
    from signlang.cli.benchmark import register

    app, bench = typer.Typer(), typer.Typer()
    app.add_typer(bench, name="benchmark")
    register(app, bench)
    return app


def test_every_documented_benchmark_is_registered_and_answers_help() -> None:
    text = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "README.md", ROOT / "docs" / "benchmarks.md"))
    documented = set(re.findall(r"signlang benchmark ([a-z][a-z-]*)", text))
    assert documented and documented <= set(BENCHMARKS.names()), sorted(documented - set(BENCHMARKS.names()))
    from signlang.cli import app

    for name in BENCHMARKS.names():
        res = CliRunner().invoke(app, ["benchmark", name, "--help"])
        assert res.exit_code == 0 and BENCHMARKS.get(name).help.split()[0] in res.output, (name, res.output)
    # every option the docs give a documented benchmark is one it declares
    for name, opts in re.findall(r"signlang benchmark ([a-z-]+)((?: +--[a-z-]+(?:[ =][^\s`\\]+)?)*)", text):
        declared = CliRunner().invoke(app, ["benchmark", name, "--help"], terminal_width=400).output
        for opt in re.findall(r"(?:^|\s)(--[a-z-]+)", opts):
            assert opt in declared, f"docs run `signlang benchmark {name} {opt}`, which the command does not declare"


def test_no_benchmark_command_lives_outside_the_registry() -> None:
    cli = ROOT / "src" / "signlang" / "cli"
    assert not list(cli.glob("bench_*.py"))
    offenders = [p.name for p in cli.glob("*.py") if p.name != "benchmark.py" and "benchmark_app.command" in p.read_text(encoding="utf-8")]
    assert not offenders, offenders


def test_every_script_under_benchmarks_imports_what_exists() -> None:
    """A script under benchmarks/ that imports a signlang module or name that is gone is dead and must go."""
    import ast
    import importlib

    for script in sorted((ROOT / "benchmarks").glob("*.py")):
        for node in ast.walk(ast.parse(script.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("signlang"):
                mod = importlib.import_module(node.module)
                missing = [a.name for a in node.names if not hasattr(mod, a.name)]
                assert not missing, f"{script.name}: {node.module} has no {missing}"


def test_a_benchmark_registered_from_a_test_runs_and_writes_through_the_one_writer(tmp_path: Path) -> None:
    @register_benchmark("toy-bench", "A toy benchmark registered by a test.")
    def toy(
        n: int = typer.Option(3, "--n", help="How many rows."),
        fail_with: str = typer.Option("", "--fail-with", help="Raise this ValueError."),
        out: Path | None = typer.Option(None, "--out", help="Write OUT.md and OUT.json."),
    ) -> BenchResult:
        if fail_with:
            raise ValueError(fail_with)
        rows = [{"i": i, "square": i * i} for i in range(n)]
        table = "| i | i^2 |\n|---|---|\n" + "\n".join(f"| {r['i']} | {r['square']} |" for r in rows)
        return BenchResult("toy-bench", "squares", table, {"rows": rows}, out=out)

    try:
        app = _app()
        out = tmp_path / "reports" / "toy.md"
        res = CliRunner().invoke(app, ["benchmark", "toy-bench", "--n", "4", "--out", str(out)])
        assert res.exit_code == 0, res.output
        assert "| 3 | 9 |" in res.output and f"wrote {out}" in res.output.replace("\n", "")
        doc = json.loads(out.with_suffix(".json").read_text())
        assert doc["rows"][3] == {"i": 3, "square": 9} and doc["benchmark"] == "toy-bench" and doc["title"] == "squares"
        assert doc["command"] == f"signlang benchmark toy-bench --n 4 --out {out}" and doc["machine"]["cpus"] >= 1
        md = out.read_text()
        assert md.startswith("| i | i^2 |") and "Command: `signlang benchmark toy-bench --n 4 --out" in md and "Machine:" in md
        res = CliRunner().invoke(app, ["benchmark", "toy-bench", "--fail-with", "the data is missing"])
        assert res.exit_code == 2 and "the data is missing" in res.output and "Traceback" not in res.output
    finally:
        BENCHMARKS.unregister("toy-bench")
    assert "toy-bench" not in BENCHMARKS


def test_write_result_keeps_the_benchmarks_own_keys_and_needs_a_target(tmp_path: Path) -> None:
    r = BenchResult("x", "t", "Machine: described by the benchmark itself.", {"machine": {"cpus": 64}, "value": 1.5})
    md, js = write_result(r, tmp_path / "x.json")
    assert md == tmp_path / "x.md" and json.loads(js.read_text())["machine"] == {"cpus": 64}
    assert md.read_text().count("Machine:") == 1  # not said twice
    with pytest.raises(ValueError, match="'x': no --out"):
        write_result(r)


def test_the_recorded_command_line_reads_back_as_given() -> None:
    """Values that look like options (``--serve-arg --workers``) are recorded as ``--serve-arg=--workers``,
    the only form the command line parses back, and the form the docs check reads."""
    import typer
    from typer.testing import CliRunner

    from signlang.cli.benchmark import command_line

    app = typer.Typer()
    seen: list[str] = []

    @app.command()
    def load(ctx: typer.Context, serve_arg: list[str] = typer.Option([], "--serve-arg"), users: int = typer.Option(50, "--users")) -> None:
        seen.append(command_line(ctx))

    res = CliRunner().invoke(app, ["--serve-arg=--workers", "--serve-arg=0", "--users", "8"])
    assert res.exit_code == 0, res.output
    assert seen and seen[0].endswith("--serve-arg=--workers --serve-arg 0 --users 8"), seen
