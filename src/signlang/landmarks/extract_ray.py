"""Extraction on a Ray cluster: ``signlang extract --engine ray [--address auto|HOST:PORT]``,
in Python ``extract_to_store(input, out, runner=ray_runner("auto"))``.

The driver (the process running ``signlang extract``) owns the landmark store, exactly as with the
local pool; the cluster only computes:

* **Actors, one MediaPipe graph each.** ``workers`` actors (default: the cluster's CPUs), one CPU
  each, each holding one Holistic graph for its lifetime (reset before every video, as locally).
* **Streaming with backpressure.** At most ``in_flight`` videos per actor are outstanding; the
  driver reads a video's bytes only when it hands the video to an actor, so memory stays bounded
  whatever the input size, and the results are written as they arrive. Workers need neither the
  input nor the store on their file system: the bytes travel through Ray's object store.
* **The same store, the same resume.** The driver hashes each source (sha256) before sending it
  and skips a clip already stored for that hash (:func:`~signlang.landmarks.extract.stored_result`),
  writes each clip atomically (:func:`~signlang.landmarks.extract.store_extracted`) and ends with
  the same ``errors.csv`` and rebuilt ``manifest.csv``. A clip is keyed by its id, so a video
  finished twice (a retry racing a slow result) is one clip, never a duplicate.
* **Failures.** A video MediaPipe cannot use comes back as an error and goes to ``errors.csv``,
  not retried. A video whose actor died (its node lost, or the process killed) is sent again to
  another actor, up to ``max_attempts`` times; then it is recorded in ``errors.csv`` (a video that
  crashes every worker must not be retried forever). A dead actor is replaced; the replacement
  starts wherever the cluster has a free CPU (a node that joins later, or the same node again).
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import tempfile
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from signlang.landmarks.extract import (
    ExtractedClip,
    ExtractOptions,
    Runner,
    Task,
    TaskResult,
    extract_video,
    failed_result,
    failure_reason,
    new_holistic,
    quiet_mediapipe,
    store_extracted,
    stored_result,
)
from signlang.landmarks.sources import POSE_EXTENSION

IN_FLIGHT_PER_ACTOR = 2
MAX_ATTEMPTS = 3
NO_WORKER_TIMEOUT_S = 300.0


def _ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise ValueError('--engine ray needs Ray: pip install "signlang[ray]" (on every node of the cluster)') from exc
    return ray


class ExtractActor:
    """One Ray actor process: one Holistic graph, video bytes in, landmarks out (never raises for bad input)."""

    def __init__(self, options: ExtractOptions) -> None:
        quiet_mediapipe()
        self.options = options
        self.holistic: Any = None
        self.tmp = Path(tempfile.mkdtemp(prefix="signlang-ray-"))

    def ready(self) -> dict[str, Any]:
        """Where this actor runs (returned once it is scheduled)."""
        import ray

        return {"pid": os.getpid(), "node_id": ray.get_runtime_context().get_node_id()}

    def extract(self, name: str, data: bytes, digest: str) -> dict[str, Any]:
        """Landmarks of one video given as bytes: ``{"clip": ExtractedClip, "seconds": s}`` or ``{"error": reason}``."""
        start = time.perf_counter()
        path = self.tmp / Path(name).name
        try:
            path.write_bytes(data)
            needs_graph = path.suffix.lower() != POSE_EXTENSION
            if needs_graph and self.holistic is None:
                self.holistic = new_holistic()
            clip = extract_video(path, fps=self.options.fps, max_side=self.options.max_side,
                                 holistic=self.holistic if needs_graph else None, sha256=digest)
            return {"clip": clip, "seconds": time.perf_counter() - start, "pid": os.getpid()}
        except Exception as exc:  # noqa: BLE001 - one bad video must never stop the batch
            # the reason names the driver's path, as the local engine's does, not this actor's copy
            return {"error": failure_reason(exc, str(path)).replace(str(path), name), "pid": os.getpid()}
        finally:
            path.unlink(missing_ok=True)


@dataclass
class _Job:
    task: Task
    attempt: int = 0
    digest: str = ""
    start: float = 0.0


def run_ray(
    tasks: list[Task],
    store: Path,
    options: ExtractOptions,
    *,
    workers: int | None = None,
    address: str | None = None,
    progress: bool = True,
    in_flight: int = IN_FLIGHT_PER_ACTOR,
    max_attempts: int = MAX_ATTEMPTS,
) -> Iterator[TaskResult]:
    """Run ``tasks`` on Ray actors, writing into ``store``; yields one result per task as it finishes.

    Connects to ``address`` (``"auto"``, ``"HOST:PORT"``), or starts a local Ray instance when
    ``None`` and Ray is not initialised yet; only a connection made here is closed at the end.
    """
    ray = _ray()
    owned = not ray.is_initialized()
    if owned:
        quiet_mediapipe()  # inherited by the workers of a local instance
        init: dict[str, Any] = {"address": address, "logging_level": logging.ERROR, "log_to_driver": False,
                                "include_dashboard": False}
        if address is None and workers:
            init["num_cpus"] = workers
        try:
            ray.init(**init)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ValueError(f"--address {address}: cannot connect to a Ray cluster ({exc})") from exc
    try:
        n_actors = max(1, min(workers or int(ray.cluster_resources().get("CPU", 1)), len(tasks)))
        yield from _with_progress(_stream(ray, tasks, store, options, n_actors, in_flight, max_attempts), len(tasks), progress)
    finally:
        if owned:
            ray.shutdown()


def ray_runner(address: str | None = None) -> Runner:
    """A runner for :func:`~signlang.landmarks.extract.extract_to_store` on the Ray cluster at
    ``address`` (``"auto"``, ``"HOST:PORT"``; ``None``: a local Ray instance)."""

    def run(tasks: list[Task], store: Path, options: ExtractOptions, workers: int | None, progress: bool) -> Iterator[TaskResult]:
        return run_ray(tasks, store, options, workers=workers, address=address, progress=progress)

    return run


def _with_progress(results: Iterator[TaskResult], total: int, progress: bool) -> Iterator[TaskResult]:
    """Pass results through, with a progress bar (frames/s, failures) on stderr."""
    from tqdm import tqdm

    frames = failed = 0
    t0 = time.perf_counter()
    with tqdm(total=total, unit="video", disable=not progress, dynamic_ncols=True, file=sys.stderr) as bar:
        for res in results:
            frames += res.n_frames if res.status == "done" else 0
            failed += res.status == "failed"
            bar.set_postfix_str(f"{frames / max(time.perf_counter() - t0, 1e-9):.1f} frames/s, {failed} failed", refresh=False)
            bar.update(1)
            yield res


def _stream(ray: Any, tasks: list[Task], store: Path, options: ExtractOptions, n_actors: int, in_flight: int,
            max_attempts: int) -> Iterator[TaskResult]:
    """The scheduling loop: keep every ready actor at ``in_flight`` videos, retry what a dead actor held."""
    from ray.exceptions import RayError, RayTaskError

    remote_actor = ray.remote(num_cpus=1, max_restarts=0, max_task_retries=0)(ExtractActor)
    queue: deque[_Job] = deque(_Job(t) for t in tasks)
    starting: dict[Any, Any] = {}  # ready() ref -> actor not yet scheduled
    load: dict[Any, int] = {}  # ready actor -> videos outstanding
    running: dict[Any, tuple[Any, _Job]] = {}  # extract() ref -> (actor, job)
    every_actor: list[Any] = []

    def spawn() -> None:
        actor = remote_actor.remote(options)
        every_actor.append(actor)
        starting[actor.ready.remote()] = actor

    def drop(actor: Any) -> None:
        load.pop(actor, None)
        ray.kill(actor, no_restart=True)

    def lost(job: _Job, why: str) -> TaskResult | None:
        """A job whose actor died: queued again, or failed after ``max_attempts``."""
        job.attempt += 1
        if job.attempt >= max_attempts:
            return failed_result(job.task, store, f"the Ray worker extracting it was lost {job.attempt} times (last: {why})",
                                 job.digest, job.start)
        queue.appendleft(job)
        return None

    for _ in range(n_actors):
        spawn()
    waiting_since = time.monotonic()
    try:
        while queue or running:
            # hand out videos: hash first, skip what the store already has, send the bytes
            for actor in [a for a in load if load[a] < in_flight]:
                while queue and load[actor] < in_flight:
                    job = queue.popleft()
                    job.start = job.start or time.perf_counter()
                    try:
                        data = Path(job.task.source).read_bytes()
                        job.digest = hashlib.sha256(data).hexdigest()
                        skipped = stored_result(job.task, store, options, job.digest, job.start)
                    except Exception as exc:  # noqa: BLE001 - an unreadable input is one error line
                        yield failed_result(job.task, store, failure_reason(exc, job.task.source), job.digest, job.start)
                        continue
                    if skipped is not None:
                        yield skipped
                        continue
                    running[actor.extract.remote(job.task.source, data, job.digest)] = (actor, job)
                    load[actor] += 1
            if not queue and not running:
                break
            refs = list(running) + list(starting)
            done, _ = ray.wait(refs, num_returns=1, timeout=5.0)
            if not done:
                if not running and time.monotonic() - waiting_since > NO_WORKER_TIMEOUT_S:
                    raise ValueError(f"no Ray worker could be started for {NO_WORKER_TIMEOUT_S:.0f} s "
                                     f"(does the cluster have a free CPU? {ray.cluster_resources()})")
                continue
            ref = done[0]
            if ref in starting:
                actor = starting.pop(ref)
                try:
                    ray.get(ref)
                    load[actor] = 0
                    waiting_since = time.monotonic()
                except RayError:
                    ray.kill(actor, no_restart=True)
                    spawn()
                continue
            actor, job = running.pop(ref)
            load[actor] = load.get(actor, 1) - 1
            try:
                out = ray.get(ref)
            except RayTaskError as exc:  # the actor's code raised (it catches bad input itself): not retried
                yield failed_result(job.task, store, f"Ray task failed: {' '.join(str(exc).split())[:300]}", job.digest, job.start)
                continue
            except RayError as exc:  # the actor (process or node) is gone: retry elsewhere
                if actor in load:
                    drop(actor)
                    spawn()
                res = lost(job, type(exc).__name__)
                if res is not None:
                    yield res
                continue
            if "error" in out:
                yield failed_result(job.task, store, out["error"], job.digest, job.start)
                continue
            clip: ExtractedClip = out["clip"]
            try:
                yield store_extracted(job.task, store, options, clip, job.digest, job.start)
            except Exception as exc:  # noqa: BLE001 - e.g. a full disk: this clip fails, the batch goes on
                yield failed_result(job.task, store, failure_reason(exc, job.task.source), job.digest, job.start)
    finally:
        for actor in every_actor:
            try:
                ray.kill(actor, no_restart=True)
            except Exception:  # noqa: BLE001 - already gone
                pass
