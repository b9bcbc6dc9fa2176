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
                 n_streams: int, seed: int, signers: np.ndarray | None = None) -> list[Stream]:
    """Streams of 5-12 signs from the clips ``idx`` (see the module docstring).

    Without idle (``-``) clips a gap is the previous clip's last frame held (20 frames at 1x).
    ``signers`` (per clip): each stream is one person's clips (its person drawn at random).
    """
    rng = np.random.default_rng(seed)
    idle = {i for i, c in enumerate(classes) if c == "-"}
    sign_idx = np.array([i for i in idx if labels[i] not in idle])
    idle_idx = np.array([i for i in idx if labels[i] in idle])
    out = []
    for _ in range(n_streams):
        parts: list[np.ndarray] = []
        signs, spans = [], []
        t = 0
        pool = sign_idx
        if signers is not None:
            person = rng.choice(np.unique(signers[sign_idx].astype(str)))
            pool = sign_idx[signers[sign_idx].astype(str) == person]
        n = int(rng.integers(5, 13))
        for k, i in enumerate(rng.choice(pool, n, replace=len(pool) < n)):
            clip = _resample(landmarks[i], max(8, round(len(landmarks[i]) / rng.uniform(0.7, 1.4))))
            if k and rng.random() < 0.5:
                speed = rng.uniform(0.7, 1.4)
                gap = (_resample(landmarks[rng.choice(idle_idx)], round(20 / speed)) if len(idle_idx)
                       else np.repeat(parts[-1][-1:], round(20 / speed), axis=0))
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
    """F1 @ IoU 0.5, precision, recall, WER and the median boundary error (frames at 30 FPS) of matched signs."""
    tp = n_pred = n_true = errors = 0
    bounds: list[float] = []
    for pred, st in zip(preds, streams):
        m, pairs = match(pred, st)
        tp += m
        n_pred += len(pred)
        n_true += len(st.signs)
        errors += edit_distance([p[0] for p in pred], st.signs)
        bounds += [abs(pred[p][k + 1] - st.spans[j][k]) * FPS for p, j in pairs for k in (0, 1)]
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_true if n_true else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"f1_iou50": f1, "precision": precision, "recall": recall, "wer": errors / max(1, n_true), "signs": n_true, "detections": n_pred,
            "boundary_error_frames": float(np.median(bounds)) if bounds else float("nan")}


CROWD = ("asl_crowd_8signs", "asl_crowd_8signs.npz")
CROWD_SPLIT = "signer:0.25"


def load_crowd() -> Any:
    """The kept cells of ``asl_crowd_8signs`` (its ``label_audit.csv``, :mod:`signlang.datasets.audit`) as a ClipSet."""
    from signlang.datasets.audit import apply_audit
    from signlang.datasets.loaders import load_npz

    clips = load_npz(shared_data_path(*CROWD))
    return apply_audit(clips, shared_data_path(CROWD[0], "label_audit.csv"))[0]


def train_crowd_bundle(out: str, cfg: Any, *, split: str = CROWD_SPLIT, seed: int = 42) -> dict[str, Any]:
    """The cross-signer bundle of this benchmark: ``cfg`` trained on the kept cells of the people of ``asl_crowd_8signs``
    outside the ``split`` test part (people held out by signer); with ``segmenter.enabled`` it carries a segmenter."""
    from signlang.training.pipeline import train_bundle

    return train_bundle(load_crowd(), out, cfg, split=split, models=None if len(cfg.ensemble.models) > 1 else cfg.ensemble.models[0],
                        seed=seed, track=False, progress=False, overwrite=True)


def _run_methods(predictor: Any, val: list[Stream], test: list[Stream], windows: tuple[float, ...], latency_streams: int) -> dict[str, Any]:
    """Every method on the same streams: two-stage (when the bundle has a segmenter), the window gate (its
    window chosen on ``val``) and fixed windows; latency and throughput of the recognizers."""
    from signlang.inference.streaming import StreamConfig, StreamingRecognizer, spot

    def run(streams: list[Stream], cfg: StreamConfig) -> tuple[list[list[tuple[str, float, float]]], float, int]:
        preds, wall, frames = [], 0.0, 0
        for st in streams:
            t0 = time.perf_counter()
            segs = spot(predictor, st.frames, fps=FPS, config=cfg)
            wall += time.perf_counter() - t0
            frames += len(st.frames)
            preds.append([(s.sign, s.start_s, s.end_s) for s in segs])
        return preds, wall, frames

    def live(cfg: StreamConfig) -> dict[str, float]:
        """Frame by frame at 30 FPS, as live: stream delay + the compute of the emitting push."""
        latencies, busy, n = [], 0.0, 0
        for st in test[:latency_streams]:
            rec = StreamingRecognizer(predictor, cfg)
            emitted: list[tuple[str, float, float, float]] = []
            for k, f in enumerate(st.frames):
                t0 = time.perf_counter()
                evs = rec.push(f, k / FPS)
                dt = time.perf_counter() - t0
                busy, n = busy + dt, n + 1
                emitted += [(e.sign, e.start_s, e.end_s, k / FPS + dt) for e in evs]
            emitted += [(e.sign, e.start_s, e.end_s, len(st.frames) / FPS) for e in rec.finish()]
            _, pairs = match([(s, a, b) for s, a, b, _ in emitted], st)
            latencies += [(emitted[p][3] - st.spans[j][1]) * 1e3 for p, j in pairs]
        lat = np.asarray(latencies) if latencies else np.full(1, np.nan)
        return {"median": float(np.median(lat)), "p95": float(np.percentile(lat, 95)), "n": len(latencies),
                "frame_by_frame_frames_per_s": n / busy if busy else float("nan")}

    out: dict[str, Any] = {}
    if getattr(predictor, "segmenter", None) is not None:
        cfg = StreamConfig()
        preds, wall, n_frames = run(test, cfg)
        out["segmenter"] = {**score(preds, test), "frames_per_s_one_core": n_frames / wall, "latency_ms": live(StreamConfig(batch_size=8)),
                            "diagnosis": _diagnose(predictor, test)}
    selection = {}
    for w in windows:
        preds, _, _ = run(val, StreamConfig(window_s=w, use_segmenter=False))
        selection[w] = score(preds, val)
    window = max(windows, key=lambda w: (selection[w]["f1_iou50"], -selection[w]["wer"]))
    preds, wall, n_frames = run(test, StreamConfig(window_s=window, use_segmenter=False))
    out["gate"] = {**score(preds, test), "frames_per_s_one_core": n_frames / wall,
                   "latency_ms": live(StreamConfig(window_s=window, batch_size=8, use_segmenter=False))}
    out["baseline_fixed_windows"] = score([baseline_segments(predictor, st.frames, window) for st in test], test)
    out["window_s"] = window
    out["window_selection_on_validation"] = {str(k): v for k, v in selection.items()}
    out["frames"] = n_frames
    return out


def _diagnose(predictor: Any, streams: list[Stream]) -> dict[str, float]:
    """Where signs are lost: the segmenter alone (class-agnostic segments at IoU >= 0.5, on the 30 FPS frames)
    and the classifier alone (accuracy on the true spans)."""
    from signlang.features.frames import stream_features
    from signlang.models.segment_decoding import decode, segment_f1

    runner = predictor.segmenter
    tp = n_pred = n_true = right = 0
    for st in streams:
        tagger = runner.make_tagger()
        probs = np.concatenate([tagger.step(stream_features(st.frames)), tagger.flush()])
        true = [(round(a * FPS), round(b * FPS)) for a, b in st.spans]
        m, p, t = segment_f1(decode(probs, **runner.decode), true)
        tp, n_pred, n_true = tp + m, n_pred + p, n_true + t
        answers = predictor.proba([st.frames[a:b] for a, b in true]).argmax(axis=1)
        right += sum(predictor.classes[int(i)] == s for i, s in zip(answers, st.signs))
    prec, rec = tp / max(1, n_pred), tp / max(1, n_true)
    return {"segmenter_precision": prec, "segmenter_recall": rec, "segmenter_f1": 2 * prec * rec / max(1e-9, prec + rec),
            "classifier_accuracy_on_true_spans": right / max(1, n_true)}


def constant_memory(predictor: Any, streams: list[Stream], minutes: float) -> dict[str, float]:
    """Traced memory growth of one recognizer over ``minutes`` of stream (the streams looped at 30 FPS), between its 1st and last minute."""
    import tracemalloc

    from signlang.inference.streaming import StreamingRecognizer

    loop = np.concatenate([st.frames for st in streams])
    rec = StreamingRecognizer(predictor)
    total = int(minutes * 60 * FPS)
    events = 0
    for k in range(total):
        if k == int(60 * FPS):
            tracemalloc.start()
            before = tracemalloc.take_snapshot()
        events += len(rec.push(loop[k % len(loop)], k / FPS))
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(s.size_diff for s in after.compare_to(before, "filename") if s.size_diff > 0)
    return {"minutes": minutes, "frames": total, "events": events, "grown_bytes": int(grown)}


def _table(title: str, res: dict[str, Any]) -> list[str]:
    rows = [f"**{title}**", "", "| method | F1 @ IoU 0.5 | precision | recall | WER | boundary error (frames, median) | frames/s, one core |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    names = {"segmenter": "two-stage: segmenter + isolated classifier", "gate": f"window gate ({res['window_s']:g} s windows, 0.1 s hop)",
             "baseline_fixed_windows": f"baseline: fixed non-overlapping {res['window_s']:g} s windows, top-1"}
    for key, name in names.items():
        if key in res:
            r = res[key]
            fps = f"{r['frames_per_s_one_core']:,.0f}" if "frames_per_s_one_core" in r else "-"
            rows.append(f"| {name} | {r['f1_iou50']:.3f} | {r['precision']:.3f} | {r['recall']:.3f} | {r['wer']:.1%} | {r['boundary_error_frames']:.1f} | {fps} |")
    rows.append("")
    for key in ("segmenter", "gate"):
        if key in res:
            lat = res[key]["latency_ms"]
            rows.append(f"- {names[key]}: latency end of sign -> event median {lat['median']:.0f} ms, p95 {lat['p95']:.0f} ms ({lat['n']} signs, 30 FPS); "
                        f"frame by frame {lat['frame_by_frame_frames_per_s']:,.0f} frames/s.")
    if "segmenter" in res:
        d = res["segmenter"]["diagnosis"]
        rows.append(f"- where signs are lost: the segmenter alone finds the spans (IoU >= 0.5, any sign) with precision "
                    f"{d['segmenter_precision']:.3f}, recall {d['segmenter_recall']:.3f} (F1 {d['segmenter_f1']:.3f}); the classifier "
                    f"on the true spans is right on {d['classifier_accuracy_on_true_spans']:.1%} of the signs.")
    return rows + [""]


def run_spot_benchmark(model: str, *, n_streams: int = 40, n_val_streams: int = 20, windows: tuple[float, ...] = (0.33, 0.4, 0.5, 0.67, 0.8),
                       latency_streams: int = 10, seed: int = 0, split: str = "blocked:0.2", split_seed: int = 42,
                       crowd_model: str | None = None, memory_minutes: float = 0.0) -> tuple[str, dict[str, Any]]:
    """Run the benchmark for bundle ``model`` (and ``crowd_model``, see :func:`train_crowd_bundle`); returns (markdown, data)."""
    import torch

    from signlang.datasets.loaders import load_npz
    from signlang.datasets.splits import split_indices, validation_indices
    from signlang.inference.predictor import Predictor

    torch.set_num_threads(1)
    clips = load_npz(shared_data_path("traduttore_asl_mediapipe", "traduttore_asl_mediapipe.npz"))
    train_idx, test_idx = split_indices(clips, split, seed=split_seed)
    _, val_idx = validation_indices(clips, train_idx, split, split_seed)
    predictor = Predictor(model, threads=1)
    if tuple(predictor.classes) != tuple(clips.classes):
        raise ValueError(f"{model}: its classes differ from the traduttore vocabulary")
    val = make_streams(clips.landmarks, clips.y, clips.classes, val_idx, n_val_streams, seed)
    test = make_streams(clips.landmarks, clips.y, clips.classes, test_idx, n_streams, seed + 1)
    res = _run_methods(predictor, val, test, windows, latency_streams)
    info = machine_info()
    data: dict[str, Any] = {"model": model, "split": split, "split_seed": split_seed, "streams": len(test), "val_streams": len(val), **res,
                            "recognizer": res.get("segmenter", res["gate"]), "machine": info}
    data["recognizer_frames_per_s_one_core"] = data["recognizer"]["frames_per_s_one_core"]
    data["latency_ms"] = data["recognizer"]["latency_ms"]
    chosen = ", ".join(f"{k} s: F1 {v['f1_iou50']:.3f}" for k, v in res["window_selection_on_validation"].items())
    md = ["## Continuous recognition (signlang benchmark spot)", "",
          f"Streams of 5-12 real signs from the **test** part of `{split}` of `traduttore_asl_mediapipe` ({len(test)} streams, "
          f"{res['gate']['signs']} signs, {res['frames']} frames at 30 FPS; speeds 0.7-1.4x, idle clips between half of the signs, "
          f"3-6 transition frames). Model: `{model}`. Gate window {res['window_s']:g} s chosen on {len(val)} streams from the validation part "
          f"({chosen}).", ""]
    md += _table("traduttore, blocked test part", res)
    if memory_minutes > 0:
        data["memory"] = constant_memory(predictor, test, memory_minutes)
        md.append(f"Memory over {memory_minutes:g} minutes of stream (traced growth between minute 1 and the end): "
                  f"{data['memory']['grown_bytes'] / 1024:.0f} KiB.\n")
    predictor.close()
    if crowd_model is not None:
        data["crowd"] = run_crowd_part(crowd_model, n_streams=n_streams, n_val_streams=n_val_streams, windows=windows,
                                       latency_streams=latency_streams, seed=seed)
        md += [f"Cross-signer: {data['crowd']['streams']} streams of people held out by signer ({data['crowd']['people']} people, "
               f"`{data['crowd']['split']}` of the kept cells of `asl_crowd_8signs`; still gaps, no idle recordings), model `{crowd_model}`.", ""]
        md += _table("asl_crowd_8signs, people never seen", data["crowd"])
    md.append(machine_line(info))
    return "\n".join(md), data


def run_crowd_part(model: str, *, n_streams: int, n_val_streams: int, windows: tuple[float, ...], latency_streams: int, seed: int) -> dict[str, Any]:
    """The cross-signer streams: one held-out person's kept clips per stream, the bundle's own split (by signer)."""
    from signlang.datasets.splits import split_indices, validation_indices
    from signlang.inference.predictor import Predictor
    from signlang.models.bundle import load_bundle

    split = (load_bundle(model).manifest.get("extra") or {}).get("split") or {}
    spec, split_seed = split.get("spec"), split.get("seed")
    if not spec or not str(spec).startswith("signer") or split_seed is None:
        raise ValueError(f"{model}: not trained with a signer split (found {spec!r}); train it with train_crowd_bundle")
    clips = load_crowd()
    train_idx, test_idx = split_indices(clips, spec, seed=split_seed)
    _, val_idx = validation_indices(clips, train_idx, spec, split_seed)
    with Predictor(model, threads=1) as predictor:
        if tuple(predictor.classes) != tuple(clips.classes):
            raise ValueError(f"{model}: its classes differ from asl_crowd_8signs'")
        val = make_streams(clips.landmarks, clips.y, clips.classes, val_idx, n_val_streams, seed, signers=clips.signers)
        test = make_streams(clips.landmarks, clips.y, clips.classes, test_idx, n_streams, seed + 1, signers=clips.signers)
        res = _run_methods(predictor, val, test, windows, latency_streams)
    return {**res, "split": spec, "split_seed": split_seed, "streams": len(test), "people": len(set(clips.signers[test_idx]))}
