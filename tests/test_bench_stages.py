"""``bench/stages.py``: per-clip compute by stage on real clips, and the before/after comparison that
runs a baseline checkout's code in a subprocess (here: this very checkout, so both sides agree)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from signlang.bench import stages

SRC = Path(stages.__file__).resolve().parents[2]


def test_real_clips_have_hands_and_the_asked_length(traduttore_npz) -> None:
    clips = stages.real_clips(traduttore_npz, 5, 16)
    assert len(clips) == 5 and all(c.shape == (16, 75, 3) and c.dtype == np.float32 for c in clips)
    assert all(np.isfinite(c[:, 33:]).any() for c in clips)  # a hand somewhere in every clip


def test_stage_times_and_the_comparison_table(tiny_bundle: Path, tiny_onnx: Path, traduttore_npz) -> None:
    kw = {"frames": 16, "batches": (1, 3), "repeats": 3, "budget_s": 0.05, "table_frames": 16}
    report = stages.compare(tiny_bundle, tiny_onnx, traduttore_npz, SRC, rounds=2, **kw)
    assert report["rounds"] == 2
    for side in ("before", "after"):
        r = report[side]
        assert set(r["batches"]) == {"1", "3"} and r["normalize"]["target_frames"] == 32
        for row in r["batches"].values():
            assert set(row) == set(stages.STAGES) and all(v > 0 for v in row.values())
        assert r["table_at"]["frames"] == 16 and r["table_at"]["1"] > 0 and r["table_at"]["3"] > 0
    from signlang.features.engineering import FEATURE_BLOCKS

    for side in ("before", "after"):  # where the time goes: every normalisation step and feature block
        b = report["blocks"][side]
        assert b["table_frames"] == 16 and set(b["batches"]) == {"1", "3"}
        for row in b["batches"].values():
            assert set(stages.BLOCK_STEPS) | set(FEATURE_BLOCKS) <= set(row) and all(v >= 0 for v in row.values())
            assert row["frame table (all blocks)"] > 0 and row["pooling"] > 0
    md = stages.markdown(report)
    stage_md, block_md = md.split("CPU ms per clip by step")
    assert "| stage | batch 1 before | batch 1 after | batch 3 before | batch 3 after |" in stage_md
    assert stage_md.count("\n| ") == len(stages.STAGES) + 3  # header, stages, their sum, the 16-frame table
    assert "| hand_shape |" in block_md and "| smoothing |" in block_md and block_md.count("\n| ") == 1 + len(report["blocks"]["after"]["batches"]["1"])
    only_after = stages.markdown({"after": report["after"]})
    assert "| stage | batch 1 | batch 3 |" in only_after and "before" not in only_after


def test_cli_stages_only(tiny_bundle: Path, tiny_onnx: Path, traduttore_npz, tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from signlang.cli import app

    base = ["benchmark", "latency", "--model", str(tiny_bundle), "--onnx", str(tiny_onnx), "--stages-only", "--data", str(traduttore_npz)]
    res = CliRunner().invoke(app, [*base, "--baseline-src", str(tmp_path)])
    assert res.exit_code != 0 and "not a src folder with a signlang package" in res.output
    res = CliRunner().invoke(app, [*base, "--repeats", "3", "--budget-s", "0.05", "--out", str(tmp_path / "stages.json")])
    assert res.exit_code == 0, res.output
    assert "| stage | batch 1 | batch 256 |" in res.output and "| predictor |" in res.output
    saved = json.loads((tmp_path / "stages.json").read_text())
    assert set(saved["after"]["batches"]) == {"1", "256"} and "before" not in saved
    res = CliRunner().invoke(app, [*base, "--batches", "1,x"])
    assert res.exit_code != 0 and "--batches: expected comma-separated positive integers" in res.output
    res = CliRunner().invoke(app, [*base, "--batches", "2", "--repeats", "3", "--budget-s", "0.05"])
    assert res.exit_code == 0 and "| stage | batch 2 |" in res.output, res.output


def test_rounds_keep_the_smallest_of_each_cell() -> None:
    a = {"after": {"batches": {"1": {"table": 2.0, "pool": 0.5}}, "frames": 64}, "note": "x"}
    b = {"after": {"batches": {"1": {"table": 1.5, "pool": 0.7}}, "frames": 64}, "note": "y"}
    assert stages._smallest(a, b) == {"after": {"batches": {"1": {"table": 1.5, "pool": 0.5}}, "frames": 64}, "note": "x"}
