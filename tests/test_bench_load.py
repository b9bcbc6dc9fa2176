"""``signlang benchmark load``: the report maths on known records, and (slow) a short real Locust run."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest


def test_summarize_counts_status_codes_and_percentiles(tmp_path: Path) -> None:
    from signlang.bench.load import summarize

    records = tmp_path / "r.csv"
    with open(records, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["time", "name", "status", "ms", "clips"])
        for i in range(100):
            w.writerow([1000 + i * 0.1, "landmarks npy", 200, i + 1, 1])
        w.writerow([1005, "landmarks npy", 503, 1, 1])
        w.writerow([1006, "landmarks npy", 0, 1, 1])  # a transport error
        w.writerow([1007, "batch", 200, 50, 32])
    s = summarize(records, duration_s=10)
    npy = s["landmarks npy"]
    assert npy["requests"] == 102 and npy["status"] == {"0": 1, "200": 100, "503": 1} and npy["errors"] == 1
    assert npy["p50_ms"] == pytest.approx(50.5) and npy["p99_ms"] == pytest.approx(99.01)
    assert s["batch"]["clips_per_s"] == pytest.approx(3.2)


def test_replace_section_keeps_the_other_sections(tmp_path: Path) -> None:
    from signlang.bench.load import replace_section

    doc = tmp_path / "b.md"
    doc.write_text("# Benchmarks\n\n## Other\n\nkeep me\n")
    replace_section(doc, "Service under load (Locust)", "first")
    replace_section(doc, "Service under load (Locust)", "second")
    text = doc.read_text()
    assert "keep me" in text and "second" in text and "first" not in text and text.count("## Service under load") == 1


@pytest.mark.slow
@pytest.mark.data
def test_short_real_load_run(tiny_onnx: Path, tmp_path: Path) -> None:
    import importlib.util

    if importlib.util.find_spec("locust") is None:  # (never import locust here: it monkey-patches the process with gevent)
        pytest.skip("locust is not installed (pip install 'signlang[load]')")
    from signlang.bench.load import markdown, run_load

    report = run_load(tiny_onnx, scenarios=("npy", "batch"), users=4, duration_s=4, batch=8, batch_users=2,
                      serve_args=["--backend", "onnx"], plot_png=tmp_path / "p.png")
    npy = report["scenarios"]["npy"]["by_route"]["landmarks npy"]
    assert npy["requests"] > 4 and npy["errors"] == 0 and npy["status"].get("200", 0) > 0
    assert report["scenarios"]["batch"]["by_route"]["landmarks npy batch"]["clips_per_s"] > 0
    assert (tmp_path / "p.png").stat().st_size > 1000
    assert "| npy | 4 | landmarks npy |" in markdown(report)
