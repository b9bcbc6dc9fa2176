"""``signlang live`` on a real video played at its own speed: frames dropped (counted), never queued
without bound; events as JSON lines; the fps/lag report."""

from __future__ import annotations

import json
import re
from pathlib import Path

from typer.testing import CliRunner


def test_live_capture_accounts_for_every_frame(real_videos_dir: Path) -> None:
    from signlang.landmarks.capture import LiveLandmarks

    video = real_videos_dir / "wlasl_00336.mp4"  # 65 frames at 30 fps
    with LiveLandmarks(str(video), queue_size=4) as live:
        items = list(live)
    s = live.stats()
    assert live.error is None
    assert s["captured"] >= 60 and s["processed"] == len(items) + s["dropped_queue"] >= 1
    assert s["processed"] + s["dropped_capture"] == s["captured"]  # each frame is either processed or dropped
    assert all(b.t > a.t for a, b in zip(items, items[1:])) and all(it.landmarks.shape == (75, 3) for it in items)
    assert 0 < s["wall_s"] < 60 and s["lag_ms_median"] > 0


def test_live_command_json_and_report(tiny_bundle: Path, real_videos_dir: Path) -> None:
    from signlang.cli import app

    res = CliRunner().invoke(app, ["live", str(real_videos_dir / "slp_pose_FOOTBALL.mp4"), "--model", str(tiny_bundle), "--json"])
    assert res.exit_code == 0, res.output
    events = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    assert all(set(e) == {"sign", "prob", "top_k", "start_s", "end_s", "low_confidence", "unknown"} for e in events)
    assert re.search(r"captured \d+ frames .*processed \d+ .*dropped \d+ at capture \+ \d+ in the queue; lag median \d+ ms", " ".join(res.output.split()))


def test_live_refuses_a_source_it_cannot_open(tiny_bundle: Path, tmp_path: Path) -> None:
    from signlang.cli import app

    res = CliRunner().invoke(app, ["live", str(tmp_path / "missing.mp4"), "--model", str(tiny_bundle)])
    assert res.exit_code == 2 and "missing.mp4" in res.output and "not a camera index" in res.output
