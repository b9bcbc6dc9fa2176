"""``signlang spot``: every sign in a whole recording, offline, with the streaming recognizer.

INPUT is a video (landmarks extracted with MediaPipe Holistic), a ``.pose`` file, a ``.npy``
clip ``(T, 75, 3)`` / ``(T, 225)`` / ``(T, 258)``, a landmark-store clip ``.npz`` (key
``landmarks``) or a ``.npz`` whose ``X`` holds long sequences, one per row (``lengths`` optional,
``fps`` optional). Outputs a table, ``--json`` (one line per input:
``{"index": i, "input": ..., "segments": [{"sign", "prob", "start_frame", "end_frame", "start_s",
"end_s", "low_confidence", "unknown"}, ...]}``, frames counted in the input's own frames) and
subtitles ``--srt`` / ``--vtt``. A sign the model's open-set rule calls unknown keeps its cue, with
the text :data:`~signlang.cli._common.UNKNOWN_CUE` (``[unknown sign]``) instead of a sign the model does not know (the viewer sees that
something was signed, and no wrong word).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import typer

from signlang.cli._common import (
    BACKEND_HELP, HOP_OPTION, MODEL_OPTION, THRESHOLD_OPTION, WINDOW_OPTION, cue_text, fail, model_dir, stream_config, user_errors,
)


@dataclass
class Recording:
    """One long sequence to spot: landmarks ``(T, 75, 3)`` at ``fps``."""

    input: str
    landmarks: np.ndarray
    fps: float


def read_recordings(path: Path, default_fps: float) -> list[Recording]:
    """The recordings in ``path``, read through the one format registry (:mod:`signlang.datasets.formats`;
    a video through the one extraction function); ``ValueError`` naming the file when it cannot be used."""
    from signlang.datasets.formats import read_inputs, with_landmarks
    from signlang.landmarks.extract import Landmarker

    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    with Landmarker(quiet=True) as landmarker:  # MediaPipe's C++ log lines are not for the user
        items = list(with_landmarks(read_inputs(path), landmarker))
    for item in items:
        if item.error is not None:
            raise item.error
    return [Recording(item.input, item.landmarks, item.fps or default_fps) for item in items]


def _clock(seconds: float, sep: str) -> str:
    ms = max(0, int(round(seconds * 1000)))
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def to_srt(segments: list[Any]) -> str:
    """SubRip text, one cue per segment (``sign``, ``start_s``, ``end_s``)."""
    cues = [f"{i}\n{_clock(s.start_s, ',')} --> {_clock(s.end_s, ',')}\n{cue_text(s)}\n" for i, s in enumerate(segments, 1)]
    return "\n".join(cues)


def to_vtt(segments: list[Any]) -> str:
    """WebVTT text, one cue per segment."""
    cues = [f"{_clock(s.start_s, '.')} --> {_clock(s.end_s, '.')}\n{cue_text(s)}\n" for s in segments]
    return "WEBVTT\n\n" + "\n".join(cues)


def register(app: typer.Typer, benchmark_app: typer.Typer) -> None:
    @app.command()
    def spot(
        input: Path = typer.Argument(..., help="Video, .pose, .npy clip, store clip .npz, or .npz with X = long sequences."),
        model: str | None = MODEL_OPTION,
        as_json: bool = typer.Option(False, "--json", help="One JSON line per input instead of a table."),
        srt: Path = typer.Option(None, "--srt", help="Write SubRip subtitles here (one input only)."),
        vtt: Path = typer.Option(None, "--vtt", help="Write WebVTT subtitles here (one input only)."),
        window: float | None = WINDOW_OPTION,
        hop: float | None = HOP_OPTION,
        threshold: float | None = THRESHOLD_OPTION,
        min_windows: int | None = typer.Option(None, help="Windows in a row a sign needs to become an event (default: StreamConfig.min_windows)."),
        fps: float = typer.Option(30.0, help="Frame rate of landmark inputs that do not state one."),
        backend: str = typer.Option("auto", help=BACKEND_HELP),
    ) -> None:
        """Spot every sign in a recording: table, JSON lines, or .srt/.vtt subtitles."""
        from rich.console import Console
        from rich.table import Table

        from signlang._io import atomic_write
        from signlang.inference.predictor import Predictor
        from signlang.inference.streaming import spot as spot_recording

        with user_errors():
            config = stream_config(window_s=window, hop_s=hop, threshold=threshold, min_windows=min_windows)
            recordings = read_recordings(input, fps)
            if (srt or vtt) and len(recordings) != 1:
                fail(f"{input}: --srt/--vtt need one recording, this input holds {len(recordings)}")
            predictor = Predictor(model_dir(model), backend=backend, threads=1 if backend == "onnx" else None)
        console = Console()
        failed = False
        for i, rec in enumerate(recordings):
            try:
                segments = spot_recording(predictor, rec.landmarks, fps=rec.fps, config=config)
            except ValueError as exc:  # one bad recording never stops the rest
                failed = True
                if as_json:
                    typer.echo(json.dumps({"index": i, "input": rec.input, "error": str(exc)}))
                else:
                    typer.echo(f"error: {rec.input} [{i}]: {exc}", err=True)
                continue
            if as_json:
                typer.echo(json.dumps({"index": i, "input": rec.input, "segments": [s.to_dict() for s in segments]}))
            else:
                table = Table(title=f"{rec.input} [{i}]: {len(segments)} signs in {rec.landmarks.shape[0] / rec.fps:.1f} s")
                for col in ("sign", "prob", "frames", "seconds", "verdict"):
                    table.add_column(col)
                for s in segments:
                    table.add_row(s.sign, f"{s.prob:.3f}", f"{s.start_frame}-{s.end_frame}", f"{s.start_s:.2f}-{s.end_s:.2f}",
                                  "unknown" if s.unknown else "unsure" if s.low_confidence else "")
                console.print(table)
            for path, text in ((srt, to_srt(segments) if srt else ""), (vtt, to_vtt(segments) if vtt else "")):
                if path:
                    with atomic_write(path) as fh:
                        fh.write(text.encode("utf-8"))
        predictor.close()
        if failed:
            raise typer.Exit(1)
