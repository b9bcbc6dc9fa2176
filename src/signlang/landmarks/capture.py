"""Live landmarks from a camera, a video file played at its own speed, or a stream URL.

:class:`LiveLandmarks` runs capture and MediaPipe Holistic in two threads. Capture always keeps
only the newest frame: when extraction cannot keep up, older frames are **dropped** (counted),
never queued without bound; extracted frames wait in a small bounded queue for the consumer,
which drops the oldest when it falls behind. Each item carries the frame's stream time (the
file's presentation time, or the capture clock for cameras and URLs) so a timestamp-driven
recognizer works the same whatever is dropped.

    with LiveLandmarks("0") as live:          # camera 0; or "clip.mp4", or "rtsp://..."
        for item in live:                     # LiveFrame(t, landmarks (75, 3), captured_at)
            ...
        print(live.stats())
"""

from __future__ import annotations

import queue
from collections import deque
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np


@dataclass(frozen=True)
class LiveFrame:
    """One extracted frame: stream time ``t`` (s), landmarks ``(75, 3)``, wall clock of its capture."""

    t: float
    landmarks: np.ndarray
    captured_at: float


def open_source(source: str | int) -> tuple[Any, bool]:
    """An OpenCV capture for a camera index, a video file or a URL; ``(capture, is_file)``."""
    import cv2

    text = str(source)
    is_file = Path(text).is_file()
    target: str | int = int(text) if text.isdigit() else text
    if not is_file and not text.isdigit() and "://" not in text:
        raise ValueError(f"{text}: not a camera index, an existing video file or a stream URL")
    cap = cv2.VideoCapture(target)
    if not cap.isOpened():
        cap.release()
        raise ValueError(f"{text}: cannot be opened as a {'video file' if is_file else 'camera' if text.isdigit() else 'stream'}")
    return cap, is_file


class LiveLandmarks:
    """Capture thread + landmark thread over ``source``; iterate for :class:`LiveFrame` items.

    ``realtime``: play a video file at its own speed (a camera or stream is real time anyway).
    ``max_seconds``: stop after this much stream time. ``max_side``: frames are shrunk before MediaPipe.
    """

    def __init__(self, source: str | int, *, realtime: bool = True, max_seconds: float | None = None,
                 max_side: int = 640, queue_size: int = 8) -> None:
        self.source = source
        self.realtime = realtime
        self.max_seconds = max_seconds
        self.max_side = max_side
        self._out: queue.Queue[LiveFrame | None] = queue.Queue(maxsize=max(1, queue_size))
        self._slot: tuple[float, float, np.ndarray] | None = None
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._ready = threading.Event()  # set once MediaPipe is loaded and warmed up: capture starts then
        self._capture_done = False
        self.error: str | None = None
        self.counts = {"captured": 0, "processed": 0, "dropped_capture": 0, "dropped_queue": 0}
        # (stream time, seconds from capture to extracted landmarks) of the latest processed frames
        self.lags: deque[tuple[float, float]] = deque(maxlen=20_000)
        self._started = 0.0
        self._ended: float | None = None
        self._threads: list[threading.Thread] = []

    # --- lifecycle ----------------------------------------------------------------------------
    def __enter__(self) -> "LiveLandmarks":
        self._cap, self._is_file = open_source(self.source)
        self._started = time.monotonic()
        self._threads = [threading.Thread(target=self._capture, name="signlang-capture", daemon=True),
                         threading.Thread(target=self._extract, name="signlang-landmarks", daemon=True)]
        for th in self._threads:
            th.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        for th in self._threads:
            th.join(timeout=10)
        self._cap.release()
        if self._ended is None:
            self._ended = time.monotonic()

    def __iter__(self) -> Iterator[LiveFrame]:
        while True:
            item = self._out.get()
            if item is None:
                self._ended = time.monotonic()
                return
            yield item

    # --- threads ------------------------------------------------------------------------------
    def _capture(self) -> None:
        import cv2

        try:
            while not self._ready.wait(0.2):
                if self._stop.is_set():
                    return
            t0_wall = time.monotonic()
            while not self._stop.is_set():
                ok, bgr = self._cap.read()
                if not ok:
                    break
                now = time.monotonic()
                t = self._cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0 if self._is_file else now - t0_wall
                if self.max_seconds is not None and t > self.max_seconds:
                    break
                if self._is_file and self.realtime:
                    delay = t0_wall + t - now
                    if delay > 0:
                        self._stop.wait(delay)
                        now = time.monotonic()
                with self._cond:
                    self.counts["captured"] += 1
                    if self._slot is not None:
                        self.counts["dropped_capture"] += 1  # extraction is behind: the older frame goes
                    self._slot = (t, now, bgr)
                    self._cond.notify()
        except Exception as exc:  # noqa: BLE001 - reported, and the stream ends cleanly
            self.error = f"capture: {exc}"
        finally:
            with self._cond:
                self._capture_done = True
                self._cond.notify()

    def _extract(self) -> None:
        from signlang.landmarks.extract import frame_landmarks, new_holistic

        graph = None
        try:
            graph = new_holistic()
            graph.process(np.zeros((240, 320, 3), np.uint8))  # load the models before the clock starts
            graph.reset()
            self._started = time.monotonic()
            self._ready.set()
            while True:
                with self._cond:
                    while self._slot is None and not self._capture_done and not self._stop.is_set():
                        self._cond.wait(0.5)
                    if self._slot is None or self._stop.is_set():
                        break
                    t, captured_at, bgr = self._slot
                    self._slot = None
                lm = frame_landmarks(graph, bgr, bgr=True, max_side=self.max_side)
                done = time.monotonic()
                self.counts["processed"] += 1
                self.lags.append((t, done - captured_at))
                self._put(LiveFrame(t, lm, captured_at))
        except Exception as exc:  # noqa: BLE001
            self.error = f"landmarks: {exc}"
        finally:
            self._ready.set()
            if graph is not None:
                graph.close()
            self._put(None, force=True)

    def _put(self, item: LiveFrame | None, force: bool = False) -> None:
        while True:
            try:
                self._out.put_nowait(item)
                return
            except queue.Full:
                try:
                    self._out.get_nowait()  # the consumer is behind: drop the oldest
                    self.counts["dropped_queue"] += 1
                except queue.Empty:
                    pass
            if not force and self._stop.is_set():
                return

    # --- report -------------------------------------------------------------------------------
    def stats(self) -> dict[str, float]:
        """Frames captured/processed per second of wall time, drops and capture-to-landmark lag (ms)."""
        wall = max(1e-9, (self._ended or time.monotonic()) - self._started)
        lags = np.array([lag for _, lag in self.lags]) * 1e3 if self.lags else np.zeros(1)
        return {"wall_s": wall, **{k: float(v) for k, v in self.counts.items()},
                "capture_fps": self.counts["captured"] / wall, "processed_fps": self.counts["processed"] / wall,
                "lag_ms_median": float(np.median(lags)), "lag_ms_p95": float(np.percentile(lags, 95)), "lag_ms_max": float(lags.max())}
