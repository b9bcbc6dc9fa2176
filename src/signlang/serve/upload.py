"""Streaming receipt of a multipart video upload into a private temporary folder.

The body is never held in memory: it is fed chunk by chunk to python-multipart's streaming
parser, and only the wanted form field is written to disk. The size limit is enforced twice:
first from ``Content-Length`` (before a byte is read), then by counting the bytes as they
stream in, so a chunked or lying client is stopped as soon as it passes the limit. The file's
name on disk is fixed (``upload`` plus a whitelisted extension); the client's file name never
becomes part of a path.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

# Slack for the multipart framing (boundaries, part headers, other small fields) on top of the
# file's own size limit when the whole body is counted.
_FRAMING_SLACK = 64 * 1024
_VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".m4v", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".3gp", ".ogv"})


class UploadError(ValueError):
    """The request is not a usable multipart upload (answered with 422)."""


class UploadTooLarge(ValueError):
    """The upload exceeds the configured limit (answered with 413)."""


@dataclass(frozen=True)
class ReceivedUpload:
    """A received file: where it lies, how many bytes, and what the client said it was."""

    path: Path
    size: int
    content_type: str
    client_filename: str


def _safe_suffix(filename: str) -> str:
    """A known video extension from the client's file name, or ``.bin``; never anything else."""
    suffix = os.path.splitext(filename.replace("\\", "/").rsplit("/", 1)[-1])[1].lower()
    return suffix if suffix in _VIDEO_SUFFIXES else ".bin"


class _FieldWriter:
    """python-multipart callbacks that write one named field to a file and count its bytes."""

    def __init__(self, field: str, folder: Path, max_bytes: int) -> None:
        self.field = field
        self.folder = folder
        self.max_bytes = max_bytes
        self.size = 0
        self.found: Path | None = None
        self.content_type = ""
        self.client_filename = ""
        self._headers: dict[str, str] = {}
        self._hname = bytearray()
        self._hvalue = bytearray()
        self._out: IO[bytes] | None = None
        self._skip = True

    def callbacks(self) -> dict:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": lambda d, s, e: self._hname.extend(d[s:e]),
            "on_header_value": lambda d, s, e: self._hvalue.extend(d[s:e]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }

    def _part_begin(self) -> None:
        self._headers = {}
        self._skip = True

    def _header_end(self) -> None:
        self._headers[bytes(self._hname).decode("latin-1").strip().lower()] = bytes(self._hvalue).decode("latin-1").strip()
        self._hname.clear()
        self._hvalue.clear()

    def _headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get("content-disposition", ""))
        name = params.get(b"name", b"").decode("utf-8", "replace")
        if name != self.field or self.found is not None:
            return  # other fields (and repeats of ours) are read past without being stored
        self.client_filename = params.get(b"filename", b"").decode("utf-8", "replace")
        self.content_type = self._headers.get("content-type", "")
        self.found = self.folder / ("upload" + _safe_suffix(self.client_filename))
        self._out = open(self.found, "xb")  # noqa: SIM115 - closed in _part_end / close()
        self._skip = False

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._skip or self._out is None:
            return
        self.size += end - start
        if self.size > self.max_bytes:
            raise UploadTooLarge(f"field {self.field!r}: upload larger than the limit of {self.max_bytes} bytes")
        self._out.write(data[start:end])

    def _part_end(self) -> None:
        self.close()
        self._skip = True

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None


async def receive_upload(request: Request, *, field: str, folder: Path, max_bytes: int) -> ReceivedUpload:
    """Stream the multipart body of ``request`` and store form field ``field`` in ``folder``.

    Raises :class:`UploadTooLarge` (by ``Content-Length`` before reading, or while counting),
    :class:`UploadError` for a body that is not multipart, is malformed, lacks ``field`` or has
    an empty file.
    """
    limit_body = max_bytes + _FRAMING_SLACK
    length = request.headers.get("content-length")
    if length is not None:
        try:
            declared = int(length)
        except ValueError:
            raise UploadError(f"invalid Content-Length header {length!r}") from None
        if declared > limit_body:
            raise UploadTooLarge(f"request body of {declared} bytes exceeds the upload limit of {max_bytes} bytes")
    ctype, params = parse_options_header(request.headers.get("content-type", ""))
    if ctype != b"multipart/form-data" or b"boundary" not in params:
        raise UploadError(f"expected a multipart/form-data upload with the video in form field {field!r}")
    writer = _FieldWriter(field, folder, max_bytes)
    try:
        parser = MultipartParser(params[b"boundary"], writer.callbacks())
        total = 0
        async for chunk in request.stream():
            total += len(chunk)
            if total > limit_body:
                raise UploadTooLarge(f"request body exceeds the upload limit of {max_bytes} bytes")
            if chunk:
                parser.write(chunk)
        parser.finalize()
    except MultipartParseError as exc:
        raise UploadError(f"malformed multipart body: {exc}") from None
    finally:
        writer.close()
    if writer.found is None:
        raise UploadError(f"form field {field!r} is missing: send the video as multipart field {field!r}")
    if writer.size == 0:
        raise UploadError(f"form field {field!r}: the uploaded file is empty (0 bytes)")
    return ReceivedUpload(writer.found, writer.size, writer.content_type, writer.client_filename)


class VideoRefused(ValueError):
    """The video's header declares more than the service accepts (answered with 413), or no length at all (415)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def check_video_limits(path: Path, *, max_side: int, max_frames: int, max_seconds: float) -> None:
    """Refuse a video from its container header alone, before any frame is decoded.

    Raises :class:`VideoRefused` (413) when its frame size, frame count or duration is past the
    limit, or (415) when it declares neither a duration nor a frame count (its length could
    not be bounded before decoding). A file FFmpeg cannot open passes through: decoding reports
    it as unreadable.
    """
    from signlang.landmarks.video import VideoReader, VideoReadError

    try:
        with VideoReader(path) as reader:
            meta = reader.meta
    except VideoReadError:
        return
    if max(meta.width, meta.height) > max_side:
        raise VideoRefused(413, f"video frames are {meta.width}x{meta.height}; the limit is {max_side} pixels on the longer side")
    frames = meta.n_frames or int(meta.duration_s * meta.fps)
    if meta.duration_s > max_seconds:
        raise VideoRefused(413, f"video lasts {meta.duration_s:.1f} s; the limit is {max_seconds:g} s")
    if frames > max_frames:
        raise VideoRefused(413, f"video has {frames} frames; the limit is {max_frames}")
    if not meta.n_frames and not meta.duration_s:
        raise VideoRefused(415, "the video declares neither a duration nor a frame count, so its length cannot be checked before decoding")
