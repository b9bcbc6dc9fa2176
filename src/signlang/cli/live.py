"""``signlang live SOURCE``: signs as they happen, from a camera, a video file or a stream URL.

Capture and MediaPipe run in their own threads (:class:`signlang.landmarks.capture.LiveLandmarks`,
frames dropped, never queued without bound); the streaming recognizer works from the frames'
timestamps. The terminal shows the current top-3 and the transcript (rich); ``--json`` prints one
JSON line per sign event instead. At the end: frames captured/processed per second, drops, lag.
"""

from __future__ import annotations

import json

import typer

from signlang.cli._common import (
    BACKEND_HELP, HOP_OPTION, MODEL_OPTION, THRESHOLD_OPTION, WINDOW_OPTION, cue_text, model_dir, stream_config, user_errors,
)


def register(app: typer.Typer, benchmark_app: typer.Typer) -> None:
    @app.command()
    def live(
        source: str = typer.Argument(..., help="Camera index (0), a video file (played at its own speed) or a stream URL."),
        model: str | None = MODEL_OPTION,
        as_json: bool = typer.Option(False, "--json", help="Print sign events as JSON lines (no live view)."),
        seconds: float = typer.Option(None, help="Stop after this many seconds of stream."),
        window: float | None = WINDOW_OPTION,
        hop: float | None = HOP_OPTION,
        threshold: float | None = THRESHOLD_OPTION,
        max_side: int = typer.Option(640, help="Frames are shrunk to this many pixels on their longer side before MediaPipe."),
        backend: str = typer.Option("auto", help=BACKEND_HELP),
    ) -> None:
        """Recognise signs live: top-3 and transcript in the terminal, or JSON events."""
        from rich.console import Console, Group
        from rich.live import Live
        from rich.table import Table
        from rich.text import Text

        from signlang.inference.predictor import Predictor
        from signlang.inference.streaming import StreamingRecognizer
        from signlang.landmarks.capture import LiveLandmarks

        with user_errors():
            predictor = Predictor(model_dir(model), backend=backend, threads=1)
            recognizer = StreamingRecognizer(predictor, stream_config(window_s=window, hop_s=hop, threshold=threshold, batch_size=8))
            capture = LiveLandmarks(source, max_seconds=seconds, max_side=max_side)
            capture.__enter__()
        console = Console(stderr=as_json)
        transcript: list[str] = []

        def view() -> Group:
            table = Table(title="now", show_header=False, min_width=40)
            latest = recognizer.latest
            for sign, prob in (latest.top_k if latest else []):
                table.add_row(sign, f"{prob:6.1%}", "[dim]" + (latest.rejected or "sign") + "[/dim]" if sign == latest.top_k[0][0] else "")
            s = capture.stats()
            return Group(table, Text("transcript: " + " ".join(transcript[-20:]), style="bold"),
                         Text(f"captured {s['capture_fps']:.1f} fps, processed {s['processed_fps']:.1f} fps, "
                              f"dropped {int(s['dropped_capture'] + s['dropped_queue'])}, lag {s['lag_ms_median']:.0f} ms", style="dim"))

        def on_events(events: list) -> None:
            for ev in events:
                transcript.append(cue_text(ev))
                if as_json:
                    typer.echo(json.dumps(ev.to_dict()))

        try:
            if as_json:
                for item in capture:
                    on_events(recognizer.push(item.landmarks, item.t))
            else:
                with Live(view(), console=console, refresh_per_second=8, transient=False) as screen:
                    for item in capture:
                        on_events(recognizer.push(item.landmarks, item.t))
                        screen.update(view())
            on_events(recognizer.finish())
        except KeyboardInterrupt:
            pass
        finally:
            capture.close()
            predictor.close()
        s = capture.stats()
        console.print(f"[bold]{len(transcript)} signs[/bold] in {s['wall_s']:.1f} s: captured {s['captured']:.0f} frames "
                      f"({s['capture_fps']:.1f}/s), processed {s['processed']:.0f} ({s['processed_fps']:.1f}/s), dropped "
                      f"{s['dropped_capture']:.0f} at capture + {s['dropped_queue']:.0f} in the queue; lag median "
                      f"{s['lag_ms_median']:.0f} ms, p95 {s['lag_ms_p95']:.0f} ms, max {s['lag_ms_max']:.0f} ms")
        if capture.error:
            console.print(f"[red]error: {capture.error}[/red]")
            raise typer.Exit(1)
