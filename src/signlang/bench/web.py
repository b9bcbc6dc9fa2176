"""Recognition in the page, measured in headless Chromium (software rendering): the one graph's time per
window in onnxruntime-web, the segmenter's per frame, and the page's decoder (``static/stream.js``) against
the server's :class:`~signlang.inference.streaming.StreamingRecognizer` on the same landmark streams.

Streams (real landmarks, frame times as a camera gives them): a traduttore stream (real recordings of
known signs joined by 1 s pauses, jittered times, 7 % of frames dropped: :func:`traduttore_stream`) and
the real signing videos of ``videos_real_signing`` landmarked by the project's extraction, joined by
pauses at their own frame rates (:func:`video_stream`; signs outside the model's vocabulary).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

STREAM_WORDS = ("hello", "coffee", "thank-you", "water", "please", "tea", "no", "muffin")
"""The known signs of :func:`traduttore_stream` (one real recording each)."""


def _rest(like: np.ndarray, n: int) -> np.ndarray:
    """``n`` frames of ``like (75, 3)``'s pose with both hands out of view."""
    rest = np.repeat(like[None], n, axis=0).copy()
    rest[:, 33:] = np.nan
    return rest


def traduttore_stream(npz: str | Path, words: Sequence[str] = STREAM_WORDS, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Real traduttore recordings of ``words`` joined by 1 s of "hands out of view" (the pose held), about 30
    frames/s with times jittered by up to 4 ms and 7 % of frames dropped: ``(T, 75, 3)``, ``(T,)`` seconds, signs."""
    from signlang.landmarks.layout import from_258

    data = np.load(npz)
    classes = [str(c) for c in data["classes"]]
    rng = np.random.default_rng(seed)
    parts = []
    for w in words:
        if w not in classes:
            raise ValueError(f"{npz}: no class {w!r} (classes: {classes})")
        idx = np.flatnonzero((data["y"] == classes.index(w)) & ~data["is_duplicate"])
        clip = from_258(data["X"][rng.choice(idx)].astype(np.float32))[0]
        parts += [_rest(clip[0], 30), clip]
    frames = np.concatenate(parts + [_rest(parts[-1][-1], 30)]).astype(np.float32)
    keep = np.sort(rng.choice(len(frames), int(0.93 * len(frames)), replace=False))
    times = keep / 30.0 + rng.uniform(-0.004, 0.004, len(keep))
    return frames[keep], times, list(words)


def video_stream(videos: Sequence[Path], pause_s: float = 1.0) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Landmarks of real videos (the one extraction, :class:`~signlang.landmarks.extract.Landmarker`) joined by
    ``pause_s`` of hands out of view, each at its own frame rate: ``(T, 75, 3)``, ``(T,)`` seconds, video names."""
    from signlang.landmarks.extract import Landmarker

    frames, times, t = [], [], 0.0
    with Landmarker(quiet=True) as lm:
        for path in videos:
            got = lm(path)
            n_rest = int(round(pause_s * got.fps))
            part = np.concatenate([_rest(got.landmarks[0], n_rest), got.landmarks])
            frames.append(part)
            times.append(t + np.arange(len(part)) / got.fps)
            t = times[-1][-1] + 1.0 / got.fps
    return np.concatenate(frames).astype(np.float32), np.concatenate(times), [Path(v).name for v in videos]


def server_events(predictor: Any, frames: np.ndarray, times: np.ndarray, config: Any) -> tuple[list[dict[str, Any]], float]:
    """The server's recognizer frame by frame (as ``/ws/live``): event dicts (``prob`` unrounded) and ms per frame."""
    from signlang.inference.streaming import StreamingRecognizer

    rec = StreamingRecognizer(predictor, config)
    events = []
    t0 = time.perf_counter()
    for f, t in zip(frames, times):
        events += rec.push(f, float(t))
    events += rec.finish()
    ms = (time.perf_counter() - t0) * 1e3 / max(1, len(times))
    return [{**e.to_dict(), "prob": e.prob, "start_s": e.start_s, "end_s": e.end_s} for e in events], ms  # unrounded


def compare_events(server: list[dict[str, Any]], page: list[dict[str, Any]]) -> dict[str, Any]:
    """How the page's events match the server's: same count and signs, largest start/end and probability differences."""
    same_signs = [e["sign"] for e in server] == [e["sign"] for e in page]
    pairs = list(zip(server, page)) if same_signs else []
    return {"server": len(server), "page": len(page), "same_signs": same_signs,
            "same_flags": same_signs and all((s["low_confidence"], s["unknown"]) == (p["low_confidence"], p["unknown"]) for s, p in pairs),
            "max_time_diff_s": max((max(abs(s["start_s"] - p["start_s"]), abs(s["end_s"] - p["end_s"])) for s, p in pairs), default=0.0),
            "max_prob_diff": max((abs(s["prob"] - p["prob"]) for s, p in pairs), default=0.0)}


_PAGE_RUN = """async ({ streams, reps }) => {
  const d = window.__device, S = 3 * d.web.layout.n_points;
  const toFrames = (s) => s.frames.map((f) => Float32Array.from(f, (v) => (v === null ? NaN : v)));
  const out = { streams: {}, graph: {}, segmenter: null };
  for (const s of streams) { // the page's decoder on each stream, frame by frame
    const rec = new d.stream.StreamRecognizer(d.web, d.model, d.segmenter), frames = toFrames(s), events = [];
    const t0 = performance.now();
    for (let i = 0; i < frames.length; i++) events.push(...(await rec.push(frames[i], s.times[i])));
    events.push(...(await rec.finish()));
    out.streams[s.name] = { events, ms_per_frame: (performance.now() - t0) / frames.length, mode: rec.mode, windows: rec.stats.windows };
  }
  const win = toFrames(streams[0]).slice(0, d.web.stream.window_samples);
  for (const batch of [1, 8]) { // the graph alone: one call of `batch` windows, `reps` times (after one warm-up)
    const clips = Array.from({ length: batch }, () => win);
    await d.model.proba(clips);
    const ms = [];
    for (let r = 0; r < reps; r++) { const t0 = performance.now(); await d.model.proba(clips); ms.push(performance.now() - t0); }
    out.graph[batch] = ms;
  }
  if (d.segmenter) { // the segmenter: one frame's features through it, with its state (10 calls a sample: the clock has 0.1 ms steps)
    const f = new d.stream.FrameFeaturizer(d.web.layout), x = f.features([win[0]]), ms = [];
    let state = d.segmenter.zeroState();
    for (let r = 0; r < reps; r++) {
      const t0 = performance.now();
      for (let k = 0; k < 10; k++) [, state] = await d.segmenter.run(x, 1, f.dim, state);
      ms.push((performance.now() - t0) / 10);
    }
    out.segmenter = ms;
  }
  return out;
}"""


def run_web_benchmark(model: str, *, export: str | None, traduttore: Path, videos: Sequence[Path], reps: int = 50) -> tuple[str, dict[str, Any]]:
    """The page's graph timings and events against the server's; markdown and data."""
    from playwright.sync_api import sync_playwright

    from signlang.bench.common import machine_info
    from signlang.inference.predictor import Predictor
    from signlang.serve.app import ServiceSettings, create_app
    from signlang.serve.live import live_stream_config, ort_available
    from signlang.serve.server import BackgroundServer

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise ValueError("benchmark web needs Debian's chromium (apt-get install chromium)")
    if not ort_available():
        raise ValueError("onnxruntime-web is not vendored: npm ci --prefix src/signlang/serve/static/vendor")
    tmp = None
    if export is None:
        from signlang.serve.routes.web import web_export

        with Predictor(model, backend="onnx") as probe:
            folder, _, why = web_export(probe)
        if folder is None:  # no model.onnx shipped with the model: export one (about 2 minutes)
            from signlang.inference.export import export_bundle

            tmp = Path(tempfile.mkdtemp(prefix="signlang-web-"))
            export_bundle(model, tmp / "onnx", onegraph=True)
            export = str(tmp / "onnx")
    streams: dict[str, tuple[np.ndarray, np.ndarray, list[str]]] = {"traduttore": traduttore_stream(traduttore)}
    if videos:
        streams["videos_real_signing"] = video_stream(videos)
    try:
        with Predictor(model, backend="onnx", onnx_dir=export, threads=1) as predictor:
            config = live_stream_config()
            server = {name: server_events(predictor, f, t, config) for name, (f, t, _) in streams.items()}
            payload = [{"name": name, "times": [float(x) for x in t],
                        "frames": [[None if np.isnan(v) else float(v) for v in fr.ravel()] for fr in f]} for name, (f, t, _) in streams.items()]
            with BackgroundServer(create_app(predictor, ServiceSettings(max_concurrency=1))) as srv, sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=chromium, headless=True,
                                             args=["--no-sandbox", "--enable-unsafe-swiftshader", "--use-angle=swiftshader"])
                try:
                    page = browser.new_page()
                    page.set_default_timeout(600_000)
                    t0 = time.perf_counter()
                    page.goto(srv.url + "/?recognize=device")
                    page.wait_for_function("window.__device !== undefined || window.__live.recognition === 'server'")
                    load_s = time.perf_counter() - t0
                    if page.evaluate("window.__live.recognition") != "device":
                        raise ValueError(f"the page could not load the model: {page.evaluate('window.__live.recognitionNote')}")
                    ua = page.evaluate("navigator.userAgent")
                    got = page.evaluate(_PAGE_RUN, {"streams": payload, "reps": reps})
                finally:
                    browser.close()
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    rows = {}
    for name, (f, t, signs) in streams.items():
        evs, ms = server[name]
        page_run = got["streams"][name]
        rows[name] = {"frames": len(t), "seconds": float(t[-1] - t[0]), "signs": signs, "server_ms_per_frame": ms,
                      "page_ms_per_frame": page_run["ms_per_frame"], "mode": page_run["mode"], "classified": page_run["windows"],
                      "server_events": [e["sign"] for e in evs], "page_events": [e["sign"] for e in page_run["events"]],
                      **compare_events(evs, page_run["events"])}
    graph = {b: {"p50_ms": float(np.median(v)), "p90_ms": float(np.percentile(v, 90))} for b, v in got["graph"].items()}
    seg = None if got["segmenter"] is None else {"p50_ms": float(np.median(got["segmenter"])), "p90_ms": float(np.percentile(got["segmenter"], 90))}
    data = {"model": model, "export": export, "chromium": ua, "page_load_s": load_s, "reps": reps, "graph_per_call": graph,
            "segmenter_per_frame": seg, "streams": rows, "machine": machine_info()}
    md = ["# Recognition in the page (headless Chromium, software rendering, onnxruntime-web wasm, 1 thread)", "",
          f"Model `{model}`; page ready with the model loaded in {load_s:.1f} s (Chromium start excluded). {ua.split(' ')[-2]}.", "",
          "| graph call | p50 ms | p90 ms | per window p50 ms |", "|---|---:|---:|---:|"]
    md += [f"| model.onnx, {b} window(s) of {live_stream_config().window_samples} frames | {g['p50_ms']:.1f} | {g['p90_ms']:.1f} | {g['p50_ms'] / int(b):.1f} |"
           for b, g in graph.items()]
    if seg:
        md.append(f"| segmenter.onnx, 1 frame | {seg['p50_ms']:.2f} | {seg['p90_ms']:.2f} | |")
    md += ["", "| stream | frames | mode | server events | page events | same signs | same flags | max time diff s | max prob diff | "
           "page ms/frame | server ms/frame |", "|---|---:|---|---|---|---|---|---:|---:|---:|---:|"]
    for name, r in rows.items():
        md.append(f"| {name} | {r['frames']} | {r['mode']} | {' '.join(r['server_events']) or '(none)'} | {' '.join(r['page_events']) or '(none)'} | "
                  f"{'yes' if r['same_signs'] else 'NO'} | {'yes' if r['same_flags'] else 'NO'} | {r['max_time_diff_s']:.1e} | {r['max_prob_diff']:.1e} | "
                  f"{r['page_ms_per_frame']:.2f} | {r['server_ms_per_frame']:.2f} |")
    md += ["", "Page ms/frame: the whole decoder in the page (grid, features, segmenter, graph on closed segments) per landmark frame; "
           "server ms/frame: the Python recognizer (the Predictor's ONNX backend, as `signlang serve --backend onnx`) on one core, the same frames."]
    return "\n".join(md) + "\n", json.loads(json.dumps(data, default=str))
