"""Latency benchmark: PyTorch eager vs ONNX Runtime, per model and for the whole ensemble,
end-to-end seconds per real video, and the HTTP service's overhead per landmark request (JSON
and ``.npy`` bodies, a real uvicorn on loopback).

Classifier numbers time the *model* stage only (features are computed once beforehand), on
64-frame clips: batch 1 with 1 thread (p50/p99 latency) and batch 32 with 2 threads
(throughput in clips/s). Thread counts are set explicitly for torch, XGBoost and ONNX Runtime.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from signlang.inference.plan import Features, compute_features

CLIP_FRAMES = 64
VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".webm", ".mkv")
TARGETS = {
    "ensemble_onnx_b1_p50_ms": 5.0,
    "ensemble_onnx_b32_clips_per_s": 1000.0,
    "service_overhead_ms": 5.0,  # JSON body
    "service_overhead_npy_ms": 1.0,  # .npy body (issue 14)
}


@dataclass
class Timing:
    """Repeated wall times of one call, in ms."""

    times_ms: list[float]
    batch: int

    @property
    def p50(self) -> float:
        return float(np.percentile(self.times_ms, 50))

    @property
    def p99(self) -> float:
        return float(np.percentile(self.times_ms, 99))

    @property
    def clips_per_s(self) -> float:
        return self.batch / (statistics.median(self.times_ms) / 1e3)


def time_call(fn: Callable[[], Any], *, batch: int, warmup: int = 5, repeats: int = 100, budget_s: float = 10.0) -> Timing:
    """Run ``fn`` ``warmup`` times, then up to ``repeats`` times (or until ``budget_s``), timing each."""
    for _ in range(warmup):
        fn()
    times: list[float] = []
    deadline = time.perf_counter() + budget_s
    while len(times) < repeats and (len(times) < 5 or time.perf_counter() < deadline):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return Timing(times, batch)


def random_clips(n: int, frames: int, seed: int = 0) -> np.ndarray:
    """Normalised-looking clips ``(n, frames, 75, 3)`` (the networks' cost does not depend on values)."""
    from signlang.inference.export import random_landmarks

    return random_landmarks(n, frames, np.random.default_rng(seed))


def _set_threads(backend: Any, threads: int) -> None:
    """Thread count of a torch backend: torch intra-op threads and every XGBoost booster's nthread."""
    import torch

    torch.set_num_threads(threads)
    for est in list(backend._estimators.values()) + ([backend.model.meta_] if backend.plan.has_meta else []):
        booster = getattr(est, "booster_", None)
        if booster is not None:
            booster.set_param({"nthread": threads})


@dataclass
class LatencyReport:
    rows: list[dict[str, Any]] = field(default_factory=list)
    videos: list[dict[str, Any]] = field(default_factory=list)
    service: dict[str, Any] = field(default_factory=dict)
    machine: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"classifier": self.rows, "videos": self.videos, "service": self.service, "machine": self.machine,
                "targets": TARGETS}


def classifier_latency(bundle_dir: Path, onnx_dir: Path, *, frames: int = CLIP_FRAMES, repeats: int = 200,
                       budget_s: float = 10.0, batch_threads: int = 2) -> list[dict[str, Any]]:
    """Per model and ensemble: batch-1 p50/p99 (1 thread) and batch-32 throughput (``batch_threads``), both backends."""
    from signlang.inference.onnx_backend import OnnxBackend
    from signlang.inference.torch_backend import TorchBackend
    from signlang.models.bundle import load_bundle

    bundle = load_bundle(bundle_dir)
    torch_be = TorchBackend(bundle.model, bundle.classes)
    onnx_be = {t: OnnxBackend(onnx_dir, threads=t, use_onegraph=False) for t in {1, batch_threads}}
    plan = torch_be.plan
    feats = {b: compute_features(random_clips(b, frames, seed=b), plan) for b in (1, 32)}

    def calls(backend: str, threads: int, f: Features) -> dict[str, Callable[[], Any]]:
        if backend == "torch":
            out = {b.name: (lambda b=b: torch_be.run_base(b, f)) for b in plan.bases}
            out["ensemble"] = lambda: torch_be.run(f)
        else:
            be = onnx_be[threads]
            out = {b.name: (lambda b=b: be.run_base(b.name, f)) for b in plan.bases}
            out["ensemble"] = lambda: be.run(f)
        return out

    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for backend in ("torch", "onnx"):
        for batch, threads in ((1, 1), (32, batch_threads)):
            if backend == "torch":
                _set_threads(torch_be, threads)
            for name, fn in calls(backend, threads, feats[batch]).items():
                t = time_call(fn, batch=batch, repeats=repeats if batch == 1 else max(20, repeats // 8), budget_s=budget_s)
                row = rows.setdefault((name, backend), {"model": name, "backend": backend})
                if batch == 1:
                    row.update(b1_threads=threads, b1_p50_ms=t.p50, b1_p99_ms=t.p99)
                else:
                    row.update(b32_threads=threads, b32_p50_ms=t.p50, b32_clips_per_s=t.clips_per_s)
    _set_threads(torch_be, 1)
    return list(rows.values())


def video_latency(predictor: Any, videos: Sequence[Path]) -> list[dict[str, Any]]:
    """End-to-end seconds per video split into decode, landmarks, features, model (bad videos reported):
    the path of ``signlang predict`` and the service, the one extraction function then the Predictor."""
    from signlang.landmarks.extract import Landmarker

    out = []
    landmarker = Landmarker(quiet=True)
    for v in videos:
        try:
            got = landmarker(v)
            r = predictor.predict_landmarks(got.landmarks, name=str(v), timings_ms=got.timings_ms)
            out.append({"video": v.name, "frames": r.frames, **{k: r.timings_ms[k] / 1e3 for k in r.timings_ms},
                        "top1": r.top_k[0][0]})
        except ValueError as exc:
            out.append({"video": v.name, "error": str(exc)})
    landmarker.close()
    return out


def list_videos(folder: str | os.PathLike[str]) -> list[Path]:
    return sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)


def markdown(report: LatencyReport) -> str:
    """The report as markdown tables."""
    b32_threads = report.rows[0].get("b32_threads", 2) if report.rows else 2
    lines = [f"Classifier latency, {CLIP_FRAMES}-frame clips, model stage only "
             f"(machine: {report.machine.get('cpus')} CPUs, 1-min load {report.machine.get('load_avg_1m', 0):.1f}).", "",
             f"| model | backend | batch 1 p50 ms (1 thread) | batch 1 p99 ms | batch 32 clips/s ({b32_threads} threads) |",
             "|---|---|---:|---:|---:|"]
    for r in report.rows:
        lines.append(f"| {r['model']} | {r['backend']} | {r['b1_p50_ms']:.3f} | {r['b1_p99_ms']:.3f} | {r['b32_clips_per_s']:.0f} |")
    ens = {r["backend"]: r for r in report.rows if r["model"] == "ensemble"}
    if "onnx" in ens:
        e = ens["onnx"]
        lines += ["", f"Targets: ensemble ONNX batch-1 p50 {e['b1_p50_ms']:.2f} ms (target <= {TARGETS['ensemble_onnx_b1_p50_ms']:g}): "
                  f"{'met' if e['b1_p50_ms'] <= TARGETS['ensemble_onnx_b1_p50_ms'] else 'NOT met'}; batch-32 {e['b32_clips_per_s']:.0f} clips/s "
                  f"(target >= {TARGETS['ensemble_onnx_b32_clips_per_s']:g}): "
                  f"{'met' if e['b32_clips_per_s'] >= TARGETS['ensemble_onnx_b32_clips_per_s'] else 'NOT met'}."]
    if report.service:
        lines += ["", service_markdown(report.service)]
    if report.videos:
        lines += ["", "End-to-end per video, seconds (ONNX backend):", "",
                  "| video | frames | decode | landmarks | features | model | total |", "|---|---:|---:|---:|---:|---:|---:|"]
        for v in report.videos:
            if "error" in v:
                lines.append(f"| {v['video']} | error: {v['error']} | | | | | |")
            else:
                lines.append(f"| {v['video']} | {v['frames']} | {v['decode']:.3f} | {v['landmarks']:.3f} | {v['features']:.3f} | "
                             f"{v['model']:.4f} | {v['total']:.3f} |")
    return "\n".join(lines) + "\n"


def service_overhead(predictor: Any, *, frames: int = CLIP_FRAMES, repeats: int = 200, budget_s: float = 10.0) -> dict[str, Any]:
    """``POST /predict/landmarks`` over loopback minus the predictor's own time, JSON vs ``.npy`` (ms).

    One client, one request at a time, against a real uvicorn in a thread; the overhead of a
    request is its client-side wall time minus the ``timings_ms.total`` the predictor reported
    (features + model), so it holds HTTP, parsing, validation, queueing and serialising.
    """
    import io

    import httpx

    from signlang.serve.app import create_app
    from signlang.serve.server import BackgroundServer
    from signlang.serve.settings import ServiceSettings

    lm = random_clips(1, frames, seed=7)[0]
    payload = {"landmarks": [[[None if np.isnan(c) else float(c) for c in p] for p in f] for f in lm]}
    buf = io.BytesIO()
    np.save(buf, lm.astype(np.float32), allow_pickle=False)
    bodies = {"json": (httpx.Request("POST", "http://x/", json=payload).read(), "application/json"),
              "npy": (buf.getvalue(), "application/x-npy")}
    out: dict[str, Any] = {"frames": frames}
    with BackgroundServer(create_app(predictor, ServiceSettings(max_concurrency=1))) as srv, \
            httpx.Client(base_url=srv.url, timeout=30) as c:
        for form, (body, ctype) in bodies.items():
            headers = {"content-type": ctype}
            for _ in range(5):
                c.post("/predict/landmarks", content=body, headers=headers).raise_for_status()
            overhead, wall, pred = [], [], []
            deadline = time.perf_counter() + budget_s
            while len(wall) < repeats and (len(wall) < 10 or time.perf_counter() < deadline):
                t0 = time.perf_counter()
                r = c.post("/predict/landmarks", content=body, headers=headers)
                dt = (time.perf_counter() - t0) * 1e3
                r.raise_for_status()
                p = float(r.json()["timings_ms"]["total"])
                wall.append(dt)
                pred.append(p)
                overhead.append(dt - p)
            out[form] = {"requests": len(wall), "body_bytes": len(body), "wall_p50_ms": float(np.median(wall)),
                         "predictor_p50_ms": float(np.median(pred)), "overhead_p50_ms": float(np.median(overhead)),
                         "overhead_p99_ms": float(np.percentile(overhead, 99))}
    return out


def service_cpu_overhead(model: Path, predictor: Any, *, frames: int = CLIP_FRAMES, requests: int = 300, rounds: int = 6) -> dict[str, Any]:
    """CPU time the service spends per single-clip ``.npy`` / JSON request beyond the predictor's own CPU time.

    Wall-clock overhead on a machine shared with other jobs mostly measures waiting for a core;
    CPU time does not. A real ``signlang serve`` (one worker, ONNX, 1 thread) runs in a subprocess;
    per round, its user+system CPU over ``requests / rounds`` sequential requests and, right after,
    this process's CPU for as many ``predict_batch([clip])`` calls; the overhead is the median over
    rounds of (server CPU - predictor CPU) per request, so slow drifts of the machine cancel.
    """
    import io

    import httpx

    from signlang.bench.load import process_cpu_s, running_server

    lm = random_clips(1, frames, seed=7)[0].astype(np.float32)
    buf = io.BytesIO()
    np.save(buf, lm, allow_pickle=False)
    payload = {"landmarks": [[[None if np.isnan(c) else float(c) for c in p] for p in f] for f in lm]}
    bodies = {"npy": (buf.getvalue(), "application/x-npy"), "json": (httpx.Request("POST", "http://x/", json=payload).read(), "application/json")}
    per_round = max(10, requests // rounds)
    for _ in range(5):
        predictor.predict_batch([lm], 5)
    out: dict[str, Any] = {"frames": frames, "requests": per_round * rounds}
    pred_all: list[float] = []
    with running_server(model, ["--backend", "onnx", "--threads", "1"]) as url, httpx.Client(base_url=url, timeout=60) as c:
        for form, (body, ctype) in bodies.items():
            headers = {"content-type": ctype}
            for _ in range(10):
                c.post("/predict/landmarks", content=body, headers=headers).raise_for_status()
            server, pred = [], []
            for _ in range(rounds):
                cpu0 = process_cpu_s(url.pid)
                for _ in range(per_round):
                    c.post("/predict/landmarks", content=body, headers=headers).raise_for_status()
                server.append((process_cpu_s(url.pid) - cpu0) / per_round * 1e3)
                t0 = time.process_time()
                for _ in range(per_round):
                    predictor.predict_batch([lm], 5)
                pred.append((time.process_time() - t0) / per_round * 1e3)
            pred_all += pred
            diffs = np.subtract(server, pred)
            out[form] = {"server_cpu_ms": float(np.median(server)), "predictor_cpu_ms": float(np.median(pred)),
                         "overhead_cpu_ms": float(np.median(diffs)), "overhead_cpu_ms_min": float(diffs.min()),
                         "overhead_cpu_ms_max": float(diffs.max())}
    out["predictor_cpu_ms"] = float(np.median(pred_all))
    return out


def service_markdown(s: dict[str, Any]) -> str:
    """The service-overhead table (JSON vs .npy) with the targets."""
    lines = [f"Service overhead per single-clip landmark request ({s['frames']} frames, one client, loopback; "
             "overhead = client wall time minus the predictor's features + model time):", "",
             "| body | bytes | requests | wall p50 ms | predictor p50 ms | overhead p50 ms | overhead p99 ms | target p50 |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for form, key in (("json", "service_overhead_ms"), ("npy", "service_overhead_npy_ms")):
        if form in s:
            r = s[form]
            met = "met" if r["overhead_p50_ms"] <= TARGETS[key] else "NOT met"
            lines.append(f"| {form} | {r['body_bytes']} | {r['requests']} | {r['wall_p50_ms']:.2f} | {r['predictor_p50_ms']:.2f} | "
                         f"{r['overhead_p50_ms']:.2f} | {r['overhead_p99_ms']:.2f} | <= {TARGETS[key]:g} ms: {met} |")
    cpu = s.get("cpu")
    if cpu:
        lines += ["", f"CPU time per request of a real `signlang serve` subprocess ({cpu['requests']} sequential requests per body; "
                  f"the predictor alone uses {cpu['predictor_cpu_ms']:.2f} ms CPU per clip):", "",
                  "| body | server CPU ms / request | service overhead CPU ms / request (median of rounds; min-max) | target |",
                  "|---|---:|---:|---|"]
        for form, key in (("json", "service_overhead_ms"), ("npy", "service_overhead_npy_ms")):
            if form in cpu:
                r = cpu[form]
                spread = f" ({r['overhead_cpu_ms_min']:.2f} to {r['overhead_cpu_ms_max']:.2f})" if "overhead_cpu_ms_min" in r else ""
                lines.append(f"| {form} | {r['server_cpu_ms']:.2f} | {r['overhead_cpu_ms']:.2f}{spread} | <= {TARGETS[key]:g} ms: "
                             f"{'met' if r['overhead_cpu_ms'] <= TARGETS[key] else 'NOT met'} |")
    return "\n".join(lines)
