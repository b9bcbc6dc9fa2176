"""Video decoding for extraction: PyAV (FFmpeg) frames as RGB ``(H, W, 3)`` uint8, resampled and resized.

Any container FFmpeg reads works (mp4, mov, avi, mkv, webm, ...; extensions are matched
case-insensitively, so INCLUDE's ``.MOV`` is fine). Frames are

* rotated upright when the container carries a display matrix (phone videos),
* optionally thinned to a target frame rate (``fps``): a frame is kept when it is the first one in
  its ``1/fps`` time bin, so the output never invents frames (``fps`` above the source rate keeps
  every frame),
* optionally shrunk so that the longer side is at most ``max_side`` pixels (FFmpeg's swscale does
  the resize and the RGB conversion in one pass). MediaPipe returns normalised image
  coordinates, so landmarks do not depend on the resize.

A file that cannot be used raises :class:`VideoReadError` (a ``ValueError``) whose message names
the file and gives a one-line reason.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import numpy as np

VIDEO_EXTENSIONS: frozenset[str] = frozenset(
    {".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp", ".ts"}
)
_BIN_EPS = 1e-6


class VideoReadError(ValueError):
    """A video that cannot be decoded; the message is ``"<path>: <reason>"`` on one line (HTTP 415)."""

    code = "unreadable_video"


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


@dataclass(frozen=True)
class VideoMeta:
    """What the container says about the first video stream."""

    fps: float
    width: int
    height: int
    n_frames: int  # declared by the container; 0 when unknown
    duration_s: float = 0.0  # declared by the container (stream, else container); 0 when unknown


def output_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """``(width, height)`` scaled so that ``max(width, height) <= max_side`` (no upscaling; even sizes)."""
    if not max_side or max(width, height) <= max_side:
        return width, height
    scale = max_side / max(width, height)
    return max(2, int(round(width * scale / 2)) * 2), max(2, int(round(height * scale / 2)) * 2)


def time_bins(times: np.ndarray, fps: float) -> np.ndarray:
    """Index of the ``1/fps`` time bin of each timestamp ``(T,) -> (T,)`` int64."""
    return np.floor(np.asarray(times, dtype=np.float64) * fps + _BIN_EPS).astype(np.int64)


def resample_mask(times: np.ndarray, fps: float | None) -> np.ndarray:
    """Which frames to keep for a target ``fps``: the first frame of each time bin, ``(T,)`` bool.

    ``fps=None`` (or 0) keeps every frame. Equivalent to the streaming rule of
    :meth:`VideoReader.frames`, so videos and ``.pose`` inputs resample alike.
    """
    t = np.asarray(times, dtype=np.float64)
    if not fps or t.size == 0:
        return np.ones(t.shape, dtype=bool)
    bins = time_bins(t - t[0], fps)
    return np.concatenate([[True], bins[1:] > np.maximum.accumulate(bins)[:-1]])


def _sniff_reason(path: Path) -> str:
    """A human reason for a file FFmpeg could not open."""
    size = path.stat().st_size
    if size == 0:
        return "empty file (0 bytes)"
    with path.open("rb") as fh:
        head = fh.read(512)
    try:
        head.decode("utf-8")
        if all(32 <= b < 127 or b in (9, 10, 13) for b in head):
            return "not a video: the file holds plain text"
    except UnicodeDecodeError:
        pass
    return "not a readable video (unknown format, or a damaged or truncated file)"


class VideoReader:
    """Open a video with PyAV; use as a context manager. ``meta`` describes the stream."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        import av  # heavy import kept local

        av.logging.set_level(av.logging.PANIC)
        self.path = Path(path)
        if not self.path.is_file():
            raise VideoReadError(f"{self.path}: no such file")
        try:
            self._container = av.open(str(self.path))
        except (av.error.FFmpegError, OSError) as exc:
            reason = _sniff_reason(self.path)
            raise VideoReadError(f"{self.path}: {reason} ({_one_line(exc)})") from exc
        if not self._container.streams.video:
            self._container.close()
            raise VideoReadError(f"{self.path}: not a video: the file has no video stream")
        self._stream = self._container.streams.video[0]
        self.rotation = 0  # degrees counter-clockwise that display the frames upright; known once decoding starts
        cc = self._stream.codec_context
        rate = self._stream.average_rate or self._stream.guessed_rate or self._stream.base_rate
        fps = float(rate) if rate else 0.0
        if not math.isfinite(fps) or fps <= 0:
            fps = 30.0  # FFmpeg knows no rate (e.g. a still image stream); treat as 30 fps
        duration = 0.0
        if self._stream.duration and self._stream.time_base:
            duration = float(self._stream.duration * self._stream.time_base)
        elif self._container.duration:
            duration = float(self._container.duration) / av.time_base
        self.meta = VideoMeta(fps=fps, width=int(cc.width), height=int(cc.height), n_frames=int(self._stream.frames or 0),
                              duration_s=duration if math.isfinite(duration) and duration > 0 else 0.0)
        if self.meta.width <= 0 or self.meta.height <= 0:
            self._container.close()
            raise VideoReadError(f"{self.path}: not a video: the video stream has no frame size")

    @property
    def display_size(self) -> tuple[int, int]:
        """``(width, height)`` of the upright frames (coded size, swapped by a 90/270 degree rotation)."""
        if self.rotation % 180:
            return self.meta.height, self.meta.width
        return self.meta.width, self.meta.height

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._container.close()

    def frames(self, fps: float | None = None, max_side: int | None = 640) -> Iterator[tuple[float, np.ndarray]]:
        """Yield ``(time in s, RGB frame (H, W, 3) uint8)`` for the kept frames, upright and resized.

        Raises :class:`VideoReadError` when decoding fails part-way (a truncated or damaged file).
        """
        import av

        width, height = output_size(self.meta.width, self.meta.height, max_side)
        last_bin = -1
        t0: float | None = None
        n = 0
        try:
            for frame in self._container.decode(self._stream):
                t = float(frame.time) if frame.time is not None else n / self.meta.fps
                t0 = t if t0 is None else t0
                n += 1
                if fps:
                    b = int(math.floor((t - t0) * fps + _BIN_EPS))
                    if b <= last_bin:
                        continue
                    last_bin = b
                if (width, height) == (self.meta.width, self.meta.height):
                    img = frame.to_ndarray(format="rgb24")
                else:
                    img = frame.to_ndarray(width=width, height=height, format="rgb24", interpolation="AREA")
                self.rotation = int(round(float(getattr(frame, "rotation", 0) or 0) / 90)) * 90 % 360
                if self.rotation:
                    # PyAV's rotation: degrees counter-clockwise that display it upright (np.rot90: k>0 is ccw)
                    img = np.ascontiguousarray(np.rot90(img, k=self.rotation // 90))
                yield t - t0, img
        except av.error.FFmpegError as exc:
            declared = f" of {self.meta.n_frames}" if self.meta.n_frames else ""
            raise VideoReadError(
                f"{self.path}: video is truncated or damaged: decoding failed after frame {n}{declared} ({_one_line(exc)})"
            ) from exc
