"""Continuous recognition benchmark: sign spotting on streams built from real recordings.

Streams come from the ``traduttore_asl_mediapipe`` clips of one part of the ``blocked:0.2`` split
(the same split, and seed, as ``signlang train``): 5-12 random signs per stream, each played at a
random speed in 0.7-1.4x, separated by an idle (``-``) clip half of the time and back to back
otherwise, with 3-6 interpolated transition frames between clips; frames are stamped at 30 FPS
(the dataset does not state its rate; 20 frames = 0.67 s per sign at 1x).

Reported: sign-level F1 at temporal IoU >= 0.5 (a detection counts when its sign is right and
its interval overlaps a true sign's by IoU >= 0.5, each true sign matched once), the word error
rate of the transcript, both against a naive baseline (fixed non-overlapping windows, top-1 of
each, idle windows dropped, repeats merged); latency from a sign's last frame to its event at
30 FPS (stream delay + the compute of the push that emitted it); recognizer frames/s on one core.
The window length is chosen on streams from the **validation** part of the training split, then
the test streams are scored once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from signlang.bench.common import machine_info, machine_line, shared_data_path

FPS = 30.0


@dataclass
class Stream:
    frames: np.ndarray  # (T, 75, 3)
    signs: list[str]
    spans: list[tuple[float, float]]  # seconds


def _resample(clip: np.ndarray, n: int) -> np.ndarray:
    """Nearest-frame resampling of ``(T, 75, 3)`` to ``n`` frames (keeps NaN = not detected)."""
    idx = np.clip(np.round(np.linspace(0, len(clip) - 1, n)).astype(int), 0, len(clip) - 1)
    return clip[idx]


def _transition(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    """``n`` frames moving linearly from frame ``a`` to frame ``b`` (a part missing in either is held/missing)."""
    w = np.linspace(0, 1, n + 2)[1:-1, None, None]
    mix = (1 - w) * a[None] + w * b[None]
    hold = np.where(np.isnan(a), b, a)[None].repeat(n, 0)
    return np.where(np.isnan(mix), hold, mix).astype(np.float32)


def make_streams(landmarks: list[np.ndarray], labels: np.ndarray, classes: tuple[str, ...], idx: np.ndarray,
                 n_streams: int, seed: int) -> list[Stream]:
    """Streams of 5-12 signs from the clips ``idx`` (see the module docstring)."""
    rng = np.random.default_rng(seed)
    idle = {i for i, c in enumerate(classes) if c == "-"}
    sign_idx = np.array([i for i in idx if labels[i] not in idle])
    idle_idx = np.array([i for i in idx if labels[i] in idle])
    out = []
    for _ in range(n_streams):
        parts: list[np.ndarray] = []
        signs, spans = [], []
        t = 0
        for k, i in enumerate(rng.choice(sign_idx, rng.integers(5, 13), replace=False)):
            clip = _resample(landmarks[i], max(8, round(len(landmarks[i]) / rng.uniform(0.7, 1.4))))
            if k and len(idle_idx) and rng.random() < 0.5:
                gap = _resample(landmarks[rng.choice(idle_idx)], round(20 / rng.uniform(0.7, 1.4)))
                parts += [_transition(parts[-1][-1], gap[0], int(rng.integers(3, 7))), gap]
                t += len(parts[-2]) + len(gap)
            if parts:
                parts.append(_transition(parts[-1][-1], clip[0], int(rng.integers(3, 7))))
                t += len(parts[-1])
            parts.append(clip)
            signs.append(classes[labels[i]])
            spans.append((t / FPS, (t + len(clip)) / FPS))
            t += len(clip)
        out.append(Stream(np.concatenate(parts), signs, spans))
    return out


def iou(a: tuple[float, float], b: tuple[float, float]) -> float:
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(a[1], b[1]) - min(a[0], b[0])
    return inter / union if union > 0 else 0.0


def match(pred: list[tuple[str, float, float]], stream: Stream, min_iou: float = 0.5) -> tuple[int, list[tuple[int, int]]]:
    """True positives (right sign, IoU >= ``min_iou``, each true sign once) and the matched (pred, true) pairs."""
    used: set[int] = set()
    pairs = []
    for p, (sign, a, b) in enumerate(pred):
        best, best_j = min_iou, -1
        for j, (s, span) in enumerate(zip(stream.signs, stream.spans)):
            if j not in used and s == sign and iou((a, b), span) >= best:
                best, best_j = iou((a, b), span), j
        if best_j >= 0:
            used.add(best_j)
            pairs.append((p, best_j))
    return len(pairs), pairs


def edit_distance(a: list[str], b: list[str]) -> int:
    """Levenshtein distance between two sign sequences."""
    d = np.arange(len(b) + 1)
    for i, x in enumerate(a, 1):
        prev, d[0] = d[0], i
        for j, y in enumerate(b, 1):
            prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (x != y))
    return int(d[-1])


def baseline_segments(predictor: Any, frames: np.ndarray, window_s: float) -> list[tuple[str, float, float]]:
    """Fixed non-overlapping windows, top-1 each; idle windows dropped; consecutive repeats merged."""
    n = max(2, round(window_s * FPS))
    starts = np.arange(0, len(frames) - n + 1, n)
    if not len(starts):
        return []
    probs = predictor.proba([frames[s: s + n] for s in starts])
    out: list[tuple[str, float, float]] = []
    for s, p in zip(starts, probs):
        sign = predictor.classes[int(np.argmax(p))]
        if sign == "-":
            continue
        if out and out[-1][0] == sign and abs(out[-1][2] - s / FPS) < 1e-9:
            out[-1] = (sign, out[-1][1], (s + n) / FPS)
        else:
            out.append((sign, s / FPS, (s + n) / FPS))
    return out


def score(preds: list[list[tuple[str, float, float]]], streams: list[Stream]) -> dict[str, float]:
    tp = n_pred = n_true = errors = 0
    for pred, st in zip(preds, streams):
        tp += match(pred, st)[0]
        n_pred += len(pred)
        n_true += len(st.signs)
        errors += edit_distance([p[0] for p in pred], st.signs)
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_true if n_true else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"f1_iou50": f1, "precision": precision, "recall": recall, "wer": errors / max(1, n_true), "signs": n_true, "detections": n_pred}


def run_spot_benchmark(model: str, *, n_streams: int = 40, n_val_streams: int = 20, windows: tuple[float, ...] = (0.33, 0.4, 0.5, 0.67, 0.8),
                       latency_streams: int = 10, seed: int = 0, split: str = "blocked:0.2", split_seed: int = 42) -> tuple[str, dict[str, Any]]:
    """Run the benchmark for bundle ``model``; returns (markdown, data)."""
    import torch

    from signlang.datasets.loaders import load_npz
    from signlang.datasets.splits import split_indices, validation_indices
    from signlang.inference.predictor import Predictor
    from signlang.inference.streaming import StreamConfig, StreamingRecognizer, spot

    torch.set_num_threads(1)
    clips = load_npz(shared_data_path("traduttore_asl_mediapipe", "traduttore_asl_mediapipe.npz"))
    train_idx, test_idx = split_indices(clips, split, seed=split_seed)
    _, val_idx = validation_indices(clips, train_idx, split, split_seed)
    predictor = Predictor(model, threads=1)
    if tuple(predictor.classes) != tuple(clips.classes):
        raise ValueError(f"{model}: its classes differ from the traduttore vocabulary")
    val = make_streams(clips.landmarks, clips.y, clips.classes, val_idx, n_val_streams, seed)
    test = make_streams(clips.landmarks, clips.y, clips.classes, test_idx, n_streams, seed + 1)

    def run(streams: list[Stream], cfg: StreamConfig) -> tuple[list[list[tuple[str, float, float]]], float, int]:
        preds, wall, frames = [], 0.0, 0
        for st in streams:
            t0 = time.perf_counter()
            segs = spot(predictor, st.frames, fps=FPS, config=cfg)
            wall += time.perf_counter() - t0
            frames += len(st.frames)
            preds.append([(s.sign, s.start_s, s.end_s) for s in segs])
        return preds, wall, frames

    selection = {}
    for w in windows:
        preds, _, _ = run(val, StreamConfig(window_s=w))
        selection[w] = score(preds, val)
    window = max(windows, key=lambda w: (selection[w]["f1_iou50"], -selection[w]["wer"]))
    cfg = StreamConfig(window_s=window)
    preds, wall, n_frames = run(test, cfg)
    ours = score(preds, test)
    base = score([baseline_segments(predictor, st.frames, window) for st in test], test)

    latencies = []  # frame by frame at 30 FPS, as live: stream delay + the compute of the emitting push
    for st in test[:latency_streams]:
        rec = StreamingRecognizer(predictor, StreamConfig(window_s=window, batch_size=8))
        emitted: list[tuple[str, float, float, float]] = []
        for k, f in enumerate(st.frames):
            t0 = time.perf_counter()
            evs = rec.push(f, k / FPS)
            dt = time.perf_counter() - t0
            emitted += [(e.sign, e.start_s, e.end_s, k / FPS + dt) for e in evs]
        emitted += [(e.sign, e.start_s, e.end_s, len(st.frames) / FPS) for e in rec.finish()]
        _, pairs = match([(s, a, b) for s, a, b, _ in emitted], st)
        latencies += [(emitted[p][3] - st.spans[j][1]) * 1e3 for p, j in pairs]
    lat = np.asarray(latencies) if latencies else np.full(1, np.nan)
    info = machine_info()
    data = {"model": model, "split": split, "split_seed": split_seed, "streams": len(test), "val_streams": len(val),
            "window_selection_on_validation": {str(k): v for k, v in selection.items()}, "window_s": window,
            "recognizer": ours, "baseline_fixed_windows": base, "latency_ms": {"median": float(np.median(lat)), "p95": float(np.percentile(lat, 95)), "n": len(latencies)},
            "recognizer_frames_per_s_one_core": n_frames / wall, "frames": n_frames, "machine": info}
    chosen = ", ".join(f"{k:g} s: F1 {v['f1_iou50']:.3f}" for k, v in selection.items())
    md = [
        "## Continuous recognition (signlang benchmark spot)", "",
        f"Streams of 5-12 real signs from the **test** part of `{split}` of `traduttore_asl_mediapipe` ({len(test)} streams, "
        f"{ours['signs']} signs, {n_frames} frames at 30 FPS; speeds 0.7-1.4x, idle clips between half of the signs, 3-6 transition frames). "
        f"Model: `{model}`. Window {window:g} s chosen on {len(val)} streams from the validation part "
        f"({chosen}).", "",
        "| method | F1 @ IoU 0.5 | precision | recall | WER |", "|---|---|---|---|---|",
        f"| streaming recognizer | {ours['f1_iou50']:.3f} | {ours['precision']:.3f} | {ours['recall']:.3f} | {ours['wer']:.1%} |",
        f"| fixed non-overlapping windows, top-1 (baseline) | {base['f1_iou50']:.3f} | {base['precision']:.3f} | {base['recall']:.3f} | {base['wer']:.1%} |", "",
        f"Latency from a sign's last frame to its event (30 FPS, {len(latencies)} signs): median {np.median(lat):.0f} ms, p95 {np.percentile(lat, 95):.0f} ms. "
        f"Recognizer throughput on one core (landmarks in, events out, batched windows): {n_frames / wall:,.0f} frames/s.", "",
        machine_line(info),
    ]
    predictor.close()
    return "\n".join(md), data
