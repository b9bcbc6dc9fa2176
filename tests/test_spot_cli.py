"""``signlang spot``: subtitles for a real video (parsed back), JSON lines for long sequences."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from bundle_fixtures import tiny_clips


def test_spot_writes_valid_srt_and_vtt_for_a_real_video(tiny_bundle: Path, real_videos_dir: Path, tmp_path: Path) -> None:
    import srt
    import webvtt

    from signlang.cli import app

    video = real_videos_dir / "slp_pose_FOOTBALL.mp4"
    out_srt, out_vtt = tmp_path / "captions.srt", tmp_path / "captions.vtt"
    res = CliRunner().invoke(app, ["spot", "--model", str(tiny_bundle), str(video), "--json", "--threshold", "0.3",
                                   "--srt", str(out_srt), "--vtt", str(out_vtt)])
    assert res.exit_code == 0, res.output
    line = json.loads(res.stdout.strip().splitlines()[-1])
    assert line["index"] == 0 and line["input"] == str(video)
    segments = line["segments"]
    assert segments, "no sign spotted in a video of a person signing"
    classes = set(tiny_clips().classes)
    for s in segments:
        assert s["sign"] in classes and 0 <= s["start_frame"] <= s["end_frame"] < 64 and s["start_s"] < s["end_s"] <= 64 / 29.97 + 0.1

    cues = list(srt.parse(out_srt.read_text(encoding="utf-8")))
    assert [c.content for c in cues] == [s["sign"] for s in segments]
    assert [round(c.start.total_seconds(), 3) for c in cues] == [s["start_s"] for s in segments]
    vtt = webvtt.read(str(out_vtt))
    assert [c.text for c in vtt] == [s["sign"] for s in segments]
    def seconds(clock: str) -> float:
        h, m, sec = clock.split(":")
        return round(int(h) * 3600 + int(m) * 60 + float(sec), 3)

    assert [(seconds(c.start), seconds(c.end)) for c in vtt] == [(s["start_s"], s["end_s"]) for s in segments]


def test_spot_json_for_long_sequences_in_an_npz(tiny_bundle: Path, tmp_path: Path) -> None:
    from signlang.cli import app
    from signlang.landmarks.layout import to_258

    clips = tiny_clips()
    seq = np.concatenate([clips.landmarks[i] for i in (0, 9, 18)])
    X = np.zeros((2, len(seq) + 10, 258), np.float32)
    X[0, : len(seq)] = to_258(seq)
    X[1, :40] = to_258(clips.landmarks[3][:40] if len(clips.landmarks[3]) >= 40 else np.concatenate([clips.landmarks[3]] * 2)[:40])
    path = tmp_path / "long.npz"
    np.savez(path, X=X, lengths=np.array([len(seq), 40]), fps=np.float32(30))
    res = CliRunner().invoke(app, ["spot", "--model", str(tiny_bundle), str(path), "--json"])
    assert res.exit_code == 0, res.output
    lines = [json.loads(s) for s in res.stdout.strip().splitlines()]
    assert [d["index"] for d in lines] == [0, 1] and all(d["input"] == str(path) for d in lines)
    for d, n in zip(lines, (len(seq), 40)):
        for s in d["segments"]:
            assert set(s) == {"sign", "prob", "start_frame", "end_frame", "start_s", "end_s", "low_confidence", "unknown"}
            assert 0 <= s["start_frame"] <= s["end_frame"] < n

    bad = tmp_path / "bad.npz"
    np.savez(bad, X=X, lengths=np.array([5000, 40]))
    res = CliRunner().invoke(app, ["spot", "--model", str(tiny_bundle), str(bad)])
    assert res.exit_code == 2 and "bad.npz" in res.output and "lengths" in res.output
