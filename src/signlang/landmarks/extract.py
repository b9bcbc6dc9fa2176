"""MediaPipe Holistic extraction: one video -> ``(T, 75, 3)`` landmarks, many videos -> a landmark store.

Handedness: frames go to Holistic unflipped, and Holistic's ``left_hand_landmarks`` is then the
**signer's own** left hand (checked on the real videos: the left-hand track sits at pose point
15 ``left_wrist``), which is the convention of :mod:`signlang.landmarks.layout`. A horizontally
mirrored video therefore swaps the two hand tracks.

Holistic runs in tracking mode (``static_image_mode=False``, ``model_complexity=1``, whose models
ship in the mediapipe 0.10.21 wheel). The graph is reset before every video, so a clip's landmarks
do not depend on which video the same worker processed before (and a resumed run reproduces an
uninterrupted one exactly).

Batch extraction (:func:`extract_to_store`) runs a process pool; each worker holds its own
Holistic graph, writes its clips atomically, and skips clips already in the store for the same
source sha256, so a killed run simply continues when started again.
"""

from __future__ import annotations

import atexit
import contextlib
import multiprocessing
import multiprocessing.context
import os
import queue
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from signlang._io import remove_stale_temporaries, sha256_file
from signlang.landmarks import store as store_mod
from signlang.landmarks.layout import N_COORDS, N_HAND, N_POSE, part_present
from signlang.landmarks.posefile import read_pose, write_pose
from signlang.landmarks.sources import (
    POSE_EXTENSION,
    clip_id_for,
    find_videos,
    label_from_path,
    read_glosses,
    read_split_csvs,
    relative_path,
    split_for,
)
from signlang.landmarks.video import VideoReader, VideoReadError, resample_mask

QUIET_ENV = {"GLOG_minloglevel": "2", "TF_CPP_MIN_LOG_LEVEL": "3"}
POSE_DIR = "pose"
FORMATS = ("npz", "pose")


def quiet_mediapipe() -> None:
    """Silence MediaPipe/TFLite's C++ logging (must run before mediapipe is imported)."""
    for k, v in QUIET_ENV.items():
        os.environ.setdefault(k, v)


@contextlib.contextmanager
def native_logs_silenced() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null for the block: MediaPipe's C++ threads log there before
    absl is initialised, whatever GLOG_minloglevel says. Python exceptions still propagate (and
    are printed after the block); for one-process command lines, not for servers."""
    quiet_mediapipe()
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    try:
        saved = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        yield
        return
    os.dup2(devnull, 2)
    os.close(devnull)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


NATIVE_LOG_LINE = re.compile(rb"^(?:[IWEF]\d{4} [\d:.]+\s+\d+ [\w.+-]+:\d+\] |WARNING: All log messages before absl::InitializeLog\(\)"
                             rb"|INFO: Created TensorFlow Lite)")
"""A line of MediaPipe's / TFLite's C++ logging (glog or absl format) on file descriptor 2."""
_NATIVE_FILTER: dict[str, Any] = {}


def filter_native_logs() -> None:
    """For a long-running process (the HTTP service): from now on, lines that MediaPipe's C++ code
    writes to file descriptor 2 (:data:`NATIVE_LOG_LINE`) are dropped and every other line is passed
    on. File descriptor 2 becomes a pipe read by a thread, so this covers C++ threads and Python
    alike without a per-video redirect (:func:`native_logs_silenced`, for one-process command lines,
    would hide the service's own log lines while a video is read). Idempotent; undone at exit,
    after the pipe is drained, so a final traceback still comes through."""
    quiet_mediapipe()
    if _NATIVE_FILTER:
        return
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    try:
        original = os.dup(2)
        read_end, write_end = os.pipe()
    except OSError:
        return
    os.dup2(write_end, 2)
    os.close(write_end)

    def pump() -> None:
        with os.fdopen(read_end, "rb", buffering=0) as pipe:
            pending = b""
            while chunk := pipe.read(65536):
                *lines, pending = (pending + chunk).split(b"\n")
                kept = b"".join(line + b"\n" for line in lines if not NATIVE_LOG_LINE.match(line))
                if kept:
                    os.write(original, kept)
            if pending and not NATIVE_LOG_LINE.match(pending):
                os.write(original, pending)

    thread = threading.Thread(target=pump, name="signlang-native-log-filter", daemon=True)
    thread.start()

    def restore() -> None:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os.dup2(original, 2)  # the pipe's last writer closes: the pump drains it and ends
        thread.join(timeout=5)

    atexit.register(restore)
    _NATIVE_FILTER.update(thread=thread, original=original)


@dataclass(frozen=True)
class ExtractedClip:
    """Landmarks of one video: ``landmarks (T, 75, 3)`` float32 (NaN = not detected) and where they came from."""

    landmarks: np.ndarray
    fps: float
    sha256: str
    path: str
    width: int = 0
    height: int = 0

    @property
    def presence(self) -> np.ndarray:
        """``(T, 3)`` bool per frame: pose, left hand, right hand detected."""
        return part_present(self.landmarks)

    @property
    def n_frames(self) -> int:
        return int(self.landmarks.shape[0])

    @property
    def hands_detected(self) -> float:
        """Fraction of frames with at least one hand."""
        return float(self.presence[:, 1:].any(axis=1).mean()) if self.n_frames else 0.0


def new_holistic() -> Any:
    """A MediaPipe Holistic graph in tracking mode (legacy solution API, complexity 1, offline)."""
    quiet_mediapipe()
    import mediapipe as mp

    return mp.solutions.holistic.Holistic(
        static_image_mode=False,
        model_complexity=1,
        smooth_landmarks=True,
        enable_segmentation=False,
        refine_face_landmarks=False,
        min_detection_confidence=0.5,
        min_tracking_confidence=0.5,
    )


_NAN_POSE = np.full((N_POSE, N_COORDS), np.nan, dtype=np.float32)
_NAN_HAND = np.full((N_HAND, N_COORDS), np.nan, dtype=np.float32)


def _points(lms: Any, empty: np.ndarray) -> np.ndarray:
    """A MediaPipe landmark list -> ``(n, 3)`` float32, or the all-NaN block when absent."""
    if lms is None:
        return empty
    return np.array([(p.x, p.y, p.z) for p in lms.landmark], dtype=np.float32)


def results_to_frame(results: Any) -> np.ndarray:
    """Holistic results of one frame -> ``(75, 3)`` float32 in the project layout."""
    return np.concatenate(
        [
            _points(results.pose_landmarks, _NAN_POSE),
            _points(results.left_hand_landmarks, _NAN_HAND),
            _points(results.right_hand_landmarks, _NAN_HAND),
        ]
    )


def frame_landmarks(holistic: Any, image: np.ndarray, *, bgr: bool = False, max_side: int | None = None) -> np.ndarray:
    """One camera or video frame ``(H, W, 3)`` uint8 -> landmarks ``(75, 3)`` float32 (NaN = not detected).

    The one frame-to-landmarks step of video extraction, ``signlang live`` (:mod:`.capture`) and the
    service's JPEG frames. ``bgr``: OpenCV's channel order (converted to RGB here); ``max_side``: a
    larger frame is shrunk first (landmarks are normalised image coordinates, so they keep their
    meaning). ``holistic``: a graph from :func:`new_holistic` (it tracks across calls).
    """
    h, w = image.shape[:2]
    if bgr or (max_side and max(h, w) > max_side):
        import cv2

        if max_side and max(h, w) > max_side:
            s = max_side / max(h, w)
            image = cv2.resize(image, (max(2, int(w * s)), max(2, int(h * s))), interpolation=cv2.INTER_AREA)
        if bgr:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return results_to_frame(holistic.process(image))


@dataclass(frozen=True)
class VideoLandmarks:
    """Landmarks of one video or ``.pose`` file: ``landmarks (T, 75, 3)`` float32 (NaN = not detected),
    the frame rate kept, the upright frame size (0 for ``.pose``) and ``timings_ms`` (decode, landmarks)."""

    landmarks: np.ndarray
    fps: float
    width: int = 0
    height: int = 0
    timings_ms: dict[str, float] = field(default_factory=dict)


def video_landmarks(path: str | os.PathLike[str], *, fps: float | None = None, max_side: int | None = 640,
                    holistic: Any = None) -> VideoLandmarks:
    """The one way from a video (or a ``.pose`` file) to landmarks: PyAV decoding -> MediaPipe Holistic per frame.

    ``fps`` thins the frames to that rate (never adds frames); ``max_side`` shrinks larger frames
    (landmarks stay in normalised image coordinates); ``holistic`` reuses a graph from
    :func:`new_holistic` (reset here: fresh tracking per video). Frames with nobody in them stay NaN
    (whether that is an error is the caller's rule). Raises :class:`VideoReadError` (a ``ValueError``,
    ``code`` ``unreadable_video``) naming the file when it is not a decodable video or has no frames.
    """
    p = Path(path)
    if p.suffix.lower() == POSE_EXTENSION:
        t0 = time.perf_counter()
        lm, src_fps = read_pose(p)
        out_fps = src_fps
        if fps and src_fps > 0 and fps < src_fps:
            lm = lm[resample_mask(np.arange(lm.shape[0]) / src_fps, fps)]
            out_fps = float(fps)
        if lm.shape[0] == 0:
            raise VideoReadError(f"{p}: no frames in the .pose file")
        return VideoLandmarks(lm, out_fps, timings_ms={"decode": (time.perf_counter() - t0) * 1e3, "landmarks": 0.0})
    t_decode = t_lm = 0.0
    frames: list[np.ndarray] = []
    with VideoReader(p) as reader:
        owned = holistic is None
        graph = new_holistic() if owned else holistic
        try:
            graph.reset()  # fresh tracking state for every video
            it = reader.frames(fps=fps, max_side=max_side)
            while True:
                t0 = time.perf_counter()
                item = next(it, None)
                t1 = time.perf_counter()
                t_decode += t1 - t0
                if item is None:
                    break
                frames.append(frame_landmarks(graph, item[1]))  # resized by the reader
                t_lm += time.perf_counter() - t1
        finally:
            if owned:
                graph.close()
        meta = reader.meta
        width, height = reader.display_size
    if not frames:
        raise VideoReadError(f"{p}: no frames could be decoded")
    out_fps = float(fps) if fps and fps < meta.fps else meta.fps
    return VideoLandmarks(np.stack(frames), out_fps, width, height, {"decode": t_decode * 1e3, "landmarks": t_lm * 1e3})


class Landmarker:
    """:func:`video_landmarks` with MediaPipe graphs kept between calls (one per concurrent caller, so
    a server's threads never share one). ``quiet``: silence MediaPipe's C++ log lines around each
    video (for command lines; it redirects the process's stderr, so a server leaves it off)."""

    def __init__(self, *, quiet: bool = False, max_side: int | None = 640) -> None:
        self.quiet = quiet
        self.max_side = max_side
        self._graphs: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def __call__(self, path: str | os.PathLike[str], *, fps: float | None = None) -> VideoLandmarks:
        """Landmarks of one video or ``.pose`` file (see :func:`video_landmarks`)."""
        if Path(path).suffix.lower() == POSE_EXTENSION:
            return video_landmarks(path, fps=fps)
        try:
            graph = self._graphs.get_nowait()
        except queue.Empty:
            graph = new_holistic()
        try:
            with native_logs_silenced() if self.quiet else contextlib.nullcontext():
                return video_landmarks(path, fps=fps, max_side=self.max_side, holistic=graph)
        finally:
            self._graphs.put(graph)

    def close(self) -> None:
        """Release the MediaPipe graphs."""
        while not self._graphs.empty():
            self._graphs.get_nowait().close()

    def __enter__(self) -> "Landmarker":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def extract_video(
    path: str | os.PathLike[str],
    *,
    fps: float | None = None,
    max_side: int | None = 640,
    holistic: Any = None,
    sha256: str | None = None,
) -> ExtractedClip:
    """Extract landmarks ``(T, 75, 3)`` from a video (or read them from a ``.pose`` file).

    ``fps`` thins the frames to that rate (never adds frames); ``max_side`` shrinks larger frames
    before MediaPipe (landmarks stay in normalised image coordinates); ``holistic`` reuses a graph
    from :func:`new_holistic`. Raises ``ValueError`` naming the file when it has no decodable
    frames or no person is found in any frame.
    """
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"{p}: no such file")
    digest = sha256 or sha256_file(p)
    got = video_landmarks(p, fps=fps, max_side=max_side, holistic=holistic)
    lm, out_fps, width, height = got.landmarks, got.fps, got.width, got.height
    if not part_present(lm).any():
        raise ValueError(f"{p}: no person found in any of the {lm.shape[0]} frames")
    return ExtractedClip(landmarks=lm, fps=out_fps, sha256=digest, path=str(p), width=width, height=height)


# ---------------------------------------------------------------------------------------------
# batch extraction into a store


@dataclass(frozen=True)
class ExtractOptions:
    """Settings shared by every worker of one run."""

    fps: float | None = None
    max_side: int | None = 640
    formats: tuple[str, ...] = ("npz",)


@dataclass(frozen=True)
class Task:
    """One input file and where its clip goes."""

    source: str
    rel_path: str
    clip_id: str
    label: str
    split: str


@dataclass(frozen=True)
class TaskResult:
    """What a worker did with a :class:`Task`: status ``done`` / ``skipped`` / ``failed`` / ``cancelled`` (Ctrl-C)."""

    rel_path: str
    clip_id: str
    status: str
    n_frames: int = 0
    error: str = ""
    seconds: float = 0.0


@dataclass
class ExtractSummary:
    """Totals of one :func:`extract_to_store` run."""

    done: int = 0
    skipped: int = 0
    failed: int = 0
    frames: int = 0
    seconds: float = 0.0
    busy_seconds: float = 0.0  # summed time inside the workers for the extracted clips (no start-up)
    errors: list[dict[str, str]] = field(default_factory=list)
    manifest: list[dict[str, str]] = field(default_factory=list)

    @property
    def succeeded(self) -> int:
        return self.done + self.skipped

    def line(self) -> str:
        fps = self.frames / self.seconds if self.seconds > 0 else 0.0
        return (
            f"done {self.done}, skipped {self.skipped}, failed {self.failed}, "
            f"total frames {self.frames}, time {self.seconds:.1f} s ({fps:.1f} frames/s)"
        )


Runner = Callable[[list[Task], Path, ExtractOptions, int | None, bool], Iterator[TaskResult]]
"""``runner(tasks, store, options, workers, progress)`` -> one :class:`TaskResult` per task as it
finishes, each clip already written to ``store`` (by :func:`store_extracted`): another engine for
:func:`extract_to_store` than its local process pool."""

_WORKER: dict[str, Any] = {}


def _process_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie counts as dead)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def _watch_parent(pid: int, interval: float = 0.5) -> None:
    """Exit this worker as soon as the run's main process ``pid`` is gone (e.g. SIGKILLed).

    Workers are children of the forkserver, not of the main process, and they hold the
    forkserver's liveness pipe, so neither would notice on its own: a killed run would leave
    both behind. This daemon thread ends them; the forkserver then exits too.
    """

    def loop() -> None:
        while _process_alive(pid):
            time.sleep(interval)
        os._exit(1)

    threading.Thread(target=loop, name="signlang-parent-watch", daemon=True).start()


def _init_worker(options: ExtractOptions, main_pid: int, stop: Any) -> None:
    """Process-pool initializer: watch the main process; one Holistic graph per worker (made lazily)."""
    quiet_mediapipe()
    _watch_parent(main_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is handled by the parent
    # MediaPipe's C++ logs (absl, TFLite) ignore GLOG_minloglevel before absl is initialised and
    # would scribble over the progress bar: a worker's stderr goes to /dev/null. Its errors reach
    # the parent as TaskResult reasons.
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
    _WORKER["options"] = options
    _WORKER["stop"] = stop  # set by the main process on Ctrl-C: queued tasks return at once
    _WORKER["holistic"] = None  # created on the first video that needs it (a .pose-only run never loads it)


def _worker_holistic() -> Any:
    if _WORKER.get("holistic") is None:
        _WORKER["holistic"] = new_holistic()
    return _WORKER["holistic"]


def _existing_clip(store: Path, clip_id: str) -> store_mod.StoredClip | None:
    path = store_mod.clip_path(store, clip_id)
    if not path.is_file():
        return None
    try:
        return store_mod.read_clip(path)
    except ValueError:
        return None  # a damaged clip is simply extracted again


def stored_result(task: Task, store: Path, options: ExtractOptions, digest: str, start: float) -> TaskResult | None:
    """A ``skipped`` result when ``store`` already holds this clip for the source sha256 ``digest``
    (its label / split / path refreshed if they changed); ``None`` when it must be extracted."""
    old = _existing_clip(store, task.clip_id)
    want_pose = "pose" in options.formats
    if old is None or old.sha256 != digest or (want_pose and not (store / POSE_DIR / f"{task.clip_id}.pose").is_file()):
        return None
    if (old.label, old.split, old.path) != (task.label, task.split, task.rel_path):
        store_mod.write_clip(store, replace(old, label=task.label, split=task.split, path=task.rel_path))
    return TaskResult(task.rel_path, task.clip_id, "skipped", old.landmarks.shape[0], seconds=time.perf_counter() - start)


def store_extracted(task: Task, store: Path, options: ExtractOptions, clip: ExtractedClip, digest: str, start: float) -> TaskResult:
    """Write an extracted clip (and its ``.pose`` when asked) atomically; the ``done`` result."""
    if "pose" in options.formats:
        w, h = (clip.width, clip.height) if clip.width else (1, 1)
        write_pose(store / POSE_DIR / f"{task.clip_id}.pose", clip.landmarks, clip.fps, w, h)
    store_mod.write_clip(
        store,
        store_mod.StoredClip(
            clip_id=task.clip_id, landmarks=clip.landmarks, fps=clip.fps, path=task.rel_path,
            sha256=digest, label=task.label, split=task.split,
        ),
    )
    return TaskResult(task.rel_path, task.clip_id, "done", clip.n_frames, seconds=time.perf_counter() - start)


def failed_result(task: Task, store: Path, reason: str, digest: str, start: float) -> TaskResult:
    """The ``failed`` result; an old clip of a source that changed (other sha256) is removed with it."""
    old = _existing_clip(store, task.clip_id)
    if old is not None and digest and old.sha256 != digest:
        # the source changed and no longer extracts: its old clip no longer describes it
        for stale in (store_mod.clip_path(store, task.clip_id), store / POSE_DIR / f"{task.clip_id}.pose"):
            stale.unlink(missing_ok=True)
    return TaskResult(task.rel_path, task.clip_id, "failed", error=reason, seconds=time.perf_counter() - start)


def failure_reason(exc: BaseException, source: str) -> str:
    """One-line reason without the absolute ``source`` path (errors.csv has the relative path)."""
    text = " ".join(str(exc).split())
    prefix = f"{source}: "
    text = text[len(prefix):] if text.startswith(prefix) else text
    return text if isinstance(exc, (ValueError, OSError)) else f"{type(exc).__name__}: {text}"


def process_task(task: Task, store: Path, options: ExtractOptions, holistic: Any = None) -> TaskResult:
    """Extract one input into ``store`` (or skip it when the store already has it); never raises for bad input."""
    start = time.perf_counter()
    digest = ""
    try:
        digest = sha256_file(task.source)
        skipped = stored_result(task, store, options, digest, start)
        if skipped is not None:
            return skipped
        needs_graph = Path(task.source).suffix.lower() != POSE_EXTENSION
        clip = extract_video(
            task.source,
            fps=options.fps,
            max_side=options.max_side,
            holistic=(holistic or _worker_holistic()) if needs_graph else None,
            sha256=digest,
        )
        return store_extracted(task, store, options, clip, digest, start)
    except Exception as exc:  # noqa: BLE001 - one bad video must never stop the batch
        return failed_result(task, store, failure_reason(exc, task.source), digest, start)


def _pool_task(task: Task, store: str) -> TaskResult:
    if _WORKER["stop"].is_set():
        return TaskResult(task.rel_path, task.clip_id, "cancelled")
    return process_task(task, Path(store), _WORKER["options"])


def plan_tasks(
    input_path: str | os.PathLike[str],
    *,
    split_csvs: Sequence[str | os.PathLike[str]] = (),
    glosses: str | os.PathLike[str] | None = None,
) -> list[Task]:
    """The tasks for every video under ``input_path``: relative path, clip id, label, split."""
    root = Path(input_path)
    gloss_map = read_glosses(glosses) if glosses else None
    splits = read_split_csvs(split_csvs) if split_csvs else {}
    tasks = []
    for path in find_videos(root):
        rel = relative_path(path, root)
        tasks.append(Task(str(path), rel, clip_id_for(rel), label_from_path(rel, gloss_map), split_for(rel, splits)))
    return tasks


def extract_to_store(
    input_path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    workers: int | None = None,
    fps: float | None = None,
    max_side: int | None = 640,
    split_csvs: Sequence[str | os.PathLike[str]] = (),
    glosses: str | os.PathLike[str] | None = None,
    formats: Sequence[str] = ("npz",),
    progress: bool = True,
    runner: Runner | None = None,
) -> ExtractSummary:
    """Extract every video under ``input_path`` into the landmark store ``out``.

    Writes ``out/clips/<clip_id>.npz`` (and ``out/pose/<clip_id>.pose`` with ``"pose"`` in
    ``formats``), then ``out/errors.csv`` and ``out/manifest.csv`` rebuilt from the clips that
    exist. Resumable: stale temporaries are removed and clips already stored for the same source
    sha256 are skipped. Raises ``ValueError`` for bad arguments or when no input is found.

    By default a process pool of ``workers`` runs here; ``runner`` computes the clips elsewhere
    and this function still writes the same store, e.g.
    ``runner=signlang.landmarks.extract_ray.ray_runner("auto")``: ``workers`` Ray actors (default:
    the cluster's CPUs) on a Ray cluster (needs ``pip install "signlang[ray]"``).
    """
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise ValueError(f"--format: unknown format(s) {bad}; choose from {list(FORMATS)}")
    if fps is not None and fps <= 0:
        raise ValueError(f"--fps must be positive, got {fps}")
    if max_side is not None and max_side < 0:
        raise ValueError(f"--max-side must be >= 0 (0 = no resizing), got {max_side}")
    tasks = plan_tasks(input_path, split_csvs=split_csvs, glosses=glosses)
    if not tasks:
        raise ValueError(f"{input_path}: no videos or .pose files found")
    out_dir = Path(out)
    for sub in (out_dir, out_dir / store_mod.CLIPS_DIR, out_dir / POSE_DIR):
        if sub.is_dir():
            remove_stale_temporaries(sub)
    (out_dir / store_mod.CLIPS_DIR).mkdir(parents=True, exist_ok=True)
    options = ExtractOptions(fps=fps, max_side=max_side or None, formats=tuple(dict.fromkeys(("npz", *formats))))
    summary = ExtractSummary()
    start = time.perf_counter()
    if runner is not None:
        results = runner(tasks, out_dir, options, workers, progress)
    else:
        n_workers = max(1, min(workers or os.cpu_count() or 1, len(tasks)))
        results = _run_pool(tasks, out_dir, options, n_workers, progress)
    for res in results:
        if res.status == "failed":
            summary.failed += 1
            summary.errors.append({"path": res.rel_path, "error": res.error})
        else:
            summary.done += res.status == "done"
            summary.skipped += res.status == "skipped"
            summary.frames += res.n_frames if res.status == "done" else 0
            summary.busy_seconds += res.seconds if res.status == "done" else 0.0
    summary.seconds = time.perf_counter() - start
    summary.errors.sort(key=lambda r: r["path"])
    store_mod.write_csv(out_dir / store_mod.ERRORS, store_mod.ERROR_COLUMNS, summary.errors)
    summary.manifest = store_mod.rebuild_manifest(out_dir)
    return summary


def _pool_context() -> multiprocessing.context.BaseContext:
    """Workers start from a clean forkserver (mediapipe preloaded), never by forking this process.

    Forking a process that has already run a MediaPipe graph (its threads and locks) crashes
    the child; the forkserver is a fresh interpreter, and its children start in milliseconds.
    Workers watch this process and exit when it dies (:func:`_watch_parent`).
    """
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["signlang.landmarks.extract", "mediapipe"])
    return ctx


def _run_pool(tasks: list[Task], out_dir: Path, options: ExtractOptions, n_workers: int, progress: bool) -> Iterator[TaskResult]:
    """Run tasks in ``n_workers`` processes, yielding results as they finish, with a progress bar."""
    from tqdm import tqdm

    quiet_mediapipe()  # inherited by the workers before they import mediapipe
    frames = failed = 0
    t0 = time.perf_counter()
    futures: dict[Any, Task] = {}
    ctx = _pool_context()
    stop = ctx.Event()
    pool = ProcessPoolExecutor(max_workers=n_workers, mp_context=ctx, initializer=_init_worker, initargs=(options, os.getpid(), stop))
    try:
        # largest files first: a cheap proxy for cost that keeps the workers' finishing times close
        ordered = sorted(tasks, key=lambda t: (-_size(t.source), t.rel_path))
        futures = {pool.submit(_pool_task, t, str(out_dir)): t for t in ordered}
        with tqdm(total=len(tasks), unit="video", disable=not progress, dynamic_ncols=True, file=sys.stderr) as bar:
            for fut in as_completed(futures):
                try:
                    res = fut.result()
                except Exception as exc:  # noqa: BLE001 - a crashed worker (e.g. killed for memory)
                    t = futures[fut]
                    res = TaskResult(t.rel_path, t.clip_id, "failed", error=f"worker process failed: {type(exc).__name__}: {exc}")
                frames += res.n_frames if res.status == "done" else 0
                failed += res.status == "failed"
                rate = frames / max(time.perf_counter() - t0, 1e-9)
                bar.set_postfix_str(f"{rate:.1f} frames/s, {failed} failed", refresh=False)
                bar.update(1)
                yield res
    except BaseException:
        # Ctrl-C (or the caller stopping early): drop queued videos instead of finishing the batch
        # (cancelled here, not via shutdown(cancel_futures=True), which is lost when the executor is
        # garbage-collected first); clips already written stay, and the next run resumes from them.
        stop.set()
        for fut in futures:
            fut.cancel()
        pool.shutdown(wait=False)
        raise
    pool.shutdown(wait=True)


def _size(path: str) -> int:
    """File size in bytes (0 when unreadable): the scheduling cost proxy."""
    try:
        return os.path.getsize(path)
    except OSError:
        return 0
