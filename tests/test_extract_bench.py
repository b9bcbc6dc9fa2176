"""The extraction benchmark: its arithmetic and table, and (slow) one real run through the CLI."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from signlang.bench.extract import ExtractTimings, markdown_table


def test_ratio_speedup_and_table() -> None:
    r = ExtractTimings(n_videos=7, raw_frames=400, raw_seconds=16.0, pipe_frames=400, pipe1_seconds=16.4,
                    pipe1_busy_seconds=16.24, pipe2_seconds=8.2, max_side=None)
    assert r.raw_ms == pytest.approx(40.0) and r.pipe1_ms == pytest.approx(41.0)
    assert r.ratio == pytest.approx(1.025) and r.speedup == pytest.approx(2.0)
    assert r.busy_ratio == pytest.approx(1.015)
    table = markdown_table(r)
    assert "pipeline/raw = 1.025 (target <= 1.05)" in table
    assert "speed-up = 2.00x (target >= 1.8x)" in table
    rows = [line for line in table.splitlines() if line.startswith("|")]
    assert len(rows) == 6  # header, rule, raw, 1 worker (wall, in worker), 2 workers
    assert "pipeline/raw = 1.015 without pool start-up" in table
    assert {line.count("|") for line in rows} == {6}


@pytest.mark.slow
@pytest.mark.video
def test_benchmark_command_on_two_real_videos(real_videos_dir: Path, tmp_path: Path) -> None:
    from signlang.cli import app

    for name in ("slp_pose_SOUP", "wlasl_00339"):
        shutil.copy(real_videos_dir / f"{name}.mp4", tmp_path / f"{name}.mp4")
    result = CliRunner().invoke(app, ["benchmark", "extract", "--videos", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "| raw Holistic loop (1 process) | 101 |" in result.output
    assert "| extract, 2 workers (max-side none) | 101 |" in result.output
    assert "pipeline/raw = " in result.output and "speed-up = " in result.output
