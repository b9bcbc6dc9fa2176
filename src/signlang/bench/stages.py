"""Per-clip compute by stage: normalisation, the feature table, pooling, the models, and the whole
predictor call, for one clip alone and for a batch, in CPU milliseconds per clip.

Real clips only (``traduttore_asl_mediapipe``, resampled to ``frames`` raw frames). The timings use
public functions that exist in every version since the ONNX backend (``normalize_clips``,
``frame_table``, ``pool_features``, ``compute_features``, ``Predictor``), so this file also runs as
a script against an older checkout (``PYTHONPATH=OLD/src python stages.py ...``):
:func:`compare` times the code before and after a change in one run, the old one in a subprocess.
CPU time (``time.process_time``, ONNX Runtime on one thread in the calling thread) rather than
wall time, because the machine is shared: waiting for a core is not compute.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

STAGES = ("normalise", "table", "pool", "models", "predictor")
"""Stage keys in report order: ``normalise`` (:func:`normalize_clips` with the bundle's settings),
``table`` (the per-frame feature table and frame mask), ``pool`` (the pooled statistics), ``models``
(every base model, the combiner and the temperature on ONNX Runtime), ``predictor`` (the public call
end to end: ``predict_landmarks`` for one clip, ``predict_batch`` for a batch, validation included)."""


def real_clips(npz: str | os.PathLike[str], n: int, frames: int, seed: int = 0) -> list[np.ndarray]:
    """``n`` real clips with hands (a fixed random sample), each linearly resampled to ``frames`` raw frames."""
    from signlang.features.normalize import resample
    from signlang.landmarks.layout import from_258

    data = np.load(npz)
    x = data["X"]
    keep = np.flatnonzero(np.abs(x[..., 132:]).sum(axis=(1, 2)) > 0)  # at least one hand somewhere
    idx = np.sort(np.random.default_rng(seed).choice(keep, size=min(n, keep.size), replace=False))
    lm, _ = from_258(x[idx])
    return [resample(c, frames) for c in lm]


def _cpu_ms(fn: Callable[[], Any], *, repeats: int, budget_s: float) -> float:
    """Median CPU ms of ``fn`` over up to ``repeats`` calls (at least 3, then until ``budget_s``), after one warm-up.

    Not :func:`signlang.bench.latency.time_call`: this file also runs against an older ``src`` (see
    :func:`compare`), so it uses nothing of signlang's that a baseline checkout may lack."""
    fn()
    times: list[float] = []
    deadline = time.perf_counter() + budget_s
    while len(times) < repeats and (len(times) < 3 or time.perf_counter() < deadline):
        t0 = time.process_time()
        fn()
        times.append((time.process_time() - t0) * 1e3)
    return statistics.median(times)


def stage_times(model: str | os.PathLike[str], onnx_dir: str | os.PathLike[str] | None, npz: str | os.PathLike[str], *,
                frames: int = 64, batches: tuple[int, ...] = (1, 256), repeats: int = 30, budget_s: float = 5.0,
                table_frames: int = 64) -> dict[str, Any]:
    """CPU ms per clip of every stage (:data:`STAGES`) for each batch size, plus the feature table alone
    on clips normalised to ``table_frames`` frames (``table_at``), on real clips of ``frames`` raw frames."""
    from signlang.features.engineering import frame_features, frame_mask, pool_features
    from signlang.features.normalize import NormalizeConfig, normalize_clips
    from signlang.inference.plan import compute_features
    from signlang.inference.predictor import Predictor
    from signlang.models.featurize import frame_table

    clips = real_clips(npz, max(batches), frames)
    out: dict[str, Any] = {"frames": frames, "batches": {}, "table_at": {"frames": table_frames}}
    with Predictor(model, backend="onnx", threads=1, onnx_dir=onnx_dir) as pred:
        if getattr(pred.runner, "onegraph", None) is not None:  # the split stages are timed here (model.onnx: bench/onegraph.py)
            pred.runner.onegraph = None
        plan, cfg = pred.runner.plan, pred.normalize_config
        keys = sorted(plan.frame_keys | plan.pooled_keys)
        blocks = None if keys == ["*"] else [b for k in keys for b in k.split(",")]  # what the models read
        out["normalize"] = cfg.to_dict()
        for b in batches:
            sub = (clips * (b // len(clips) + 1))[:b]
            X = normalize_clips(sub, cfg)
            table = frame_table(X, blocks)
            feats = compute_features(X, plan)
            times = {
                "normalise": _cpu_ms(lambda: normalize_clips(sub, cfg), repeats=repeats, budget_s=budget_s),
                "table": _cpu_ms(lambda: frame_table(X, blocks), repeats=repeats, budget_s=budget_s),
                "pool": _cpu_ms(lambda: pool_features(*table), repeats=repeats, budget_s=budget_s),
                "models": _cpu_ms(lambda: pred.runner.run(feats), repeats=repeats, budget_s=budget_s),
                "predictor": _cpu_ms((lambda: pred.predict_landmarks(sub[0])) if b == 1 else (lambda: pred.predict_batch(sub)),
                                     repeats=repeats, budget_s=budget_s),
            }
            out["batches"][str(b)] = {k: v / b for k, v in times.items()}
        wide = NormalizeConfig(**{**cfg.to_dict(), "target_frames": table_frames})
        for b in batches:
            sub = (clips * (b // len(clips) + 1))[:b]
            X = normalize_clips(sub, wide)
            t = _cpu_ms(lambda: pool_features(frame_features(X, blocks), frame_mask(X)), repeats=repeats, budget_s=budget_s)
            out["table_at"][str(b)] = t / b
    return out


BLOCK_STEPS = ("fill gaps", "smoothing", "body frame", "canonical hand", "resample")
"""The normalisation steps :func:`block_times` times (then every default feature block, the whole table, the mask and the pooling)."""


def block_times(model: str | os.PathLike[str], npz: str | os.PathLike[str], *, frames: int = 64, batches: tuple[int, ...] = (1, 256),
                repeats: int = 30, budget_s: float = 5.0, table_frames: int = 64) -> dict[str, Any]:
    """CPU ms per clip of each normalisation step (the bundle's settings, output ``table_frames`` frames) and each
    feature block, on real clips of ``frames`` raw frames: where the time of :func:`stage_times` goes.

    Uses the private step functions, which exist unchanged in name since issue 22's first round, so that
    :func:`compare` can time an older ``src`` too."""
    import json as _json

    from signlang.features import engineering as eng
    from signlang.features import normalize as nz

    cfg_dict = _json.loads((Path(model) / "manifest.json").read_text())["preprocessing"]["normalize"]
    cfg = nz.NormalizeConfig(**{**cfg_dict, "target_frames": table_frames})
    clips = real_clips(npz, max(batches), frames)
    out: dict[str, Any] = {"frames": frames, "table_frames": table_frames, "normalize": cfg_dict, "batches": {}}
    for b in batches:
        raw = np.stack((clips * (b // len(clips) + 1))[:b]).astype(np.float32)
        filled = nz._fill_gaps(raw, cfg.max_gap)
        smoothed = nz._smooth(filled, cfg.smooth_window, cfg.smooth_order)
        body = nz.to_body_frame(smoothed, allow_empty=True)
        X = nz.normalize_clips(list(raw), cfg)
        feats, mask = eng.frame_features(X), eng.frame_mask(X)
        steps: dict[str, Callable[[], Any]] = {
            "fill gaps": lambda: nz._fill_gaps(raw, cfg.max_gap),
            "smoothing": lambda: nz._smooth(filled, cfg.smooth_window, cfg.smooth_order),
            "body frame": lambda: nz.to_body_frame(smoothed, allow_empty=True),
            "canonical hand": lambda: nz.canonical_hand(body),
            "resample": lambda: nz.resample(body, table_frames),
        }
        for name in eng.FEATURE_BLOCKS:
            steps[name] = (lambda fn: lambda: fn(X))(eng._BLOCK_FNS[name])
        steps["frame table (all blocks)"] = lambda: eng.frame_features(X)
        steps["frame mask"] = lambda: eng.frame_mask(X)
        steps["pooling"] = lambda: eng.pool_features(feats, mask)
        out["batches"][str(b)] = {k: _cpu_ms(fn, repeats=repeats, budget_s=budget_s) / b for k, fn in steps.items()}
    return out


def _before_after_table(title: str, first: str, batches: list[str], rows: dict[str, tuple[dict[str, float] | None, dict[str, float]]]) -> list[str]:
    """Markdown lines: ``title``, then one row per ``rows`` entry (name -> (before per batch or None, after per
    batch)), a ``before | after`` column pair per batch when any row has a before."""
    paired = any(before is not None for before, _ in rows.values())
    lines = [title, "", f"| {first} | " + " | ".join(f"batch {b}" + (f" before | batch {b} after" if paired else "") for b in batches) + " |",
             "|---|" + "---:|" * (len(batches) * (2 if paired else 1))]
    for name, (before, after) in rows.items():
        cells = []
        for b in batches:
            if paired:
                cells.append(f"{(before or {}).get(b, float('nan')):.3f}")
            cells.append(f"{after[b]:.3f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def block_markdown(report: dict[str, Any]) -> str:
    """The per-step table of :func:`block_times` results (``after``, and ``before`` when present)."""
    after, before = report["after"], report.get("before")
    batches = list(after["batches"])
    rows = {step: ({b: before["batches"][b].get(step, float("nan")) for b in batches} if before else None,
                   {b: after["batches"][b][step] for b in batches})
            for step in after["batches"][batches[0]]}
    title = f"CPU ms per clip by step (real clips of {after['frames']} raw frames, normalised to {after['table_frames']} frames)."
    return "\n".join(_before_after_table(title, "step", batches, rows)) + "\n"


def compare(model: str | os.PathLike[str], onnx_dir: str | os.PathLike[str] | None, npz: str | os.PathLike[str],
            baseline_src: str | os.PathLike[str], *, rounds: int = 1, **kw: Any) -> dict[str, Any]:
    """:func:`stage_times` and :func:`block_times` of this checkout (``after``) and of the code in ``baseline_src``
    (``before``, a ``src`` folder of an older checkout, run in a subprocess with this very file), interleaved as
    before, after, before, after ... for ``rounds`` rounds so that both see the same load; each cell is the
    smallest of its rounds' medians (a busy machine only ever adds time)."""
    run = "import runpy, sys; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"
    args = [sys.executable, "-c", run, str(Path(__file__).resolve()), str(model), str(onnx_dir or ""), str(npz), json.dumps(kw)]
    env = {**os.environ, "PYTHONPATH": str(Path(baseline_src).resolve())}
    blocks_kw = {k: v for k, v in kw.items() if k in ("frames", "batches", "repeats", "budget_s", "table_frames")}
    report: dict[str, Any] = {}
    for _ in range(max(1, int(rounds))):
        res = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
        if res.returncode != 0:
            raise RuntimeError(f"the baseline run in {baseline_src} failed:\n{res.stderr[-2000:]}")
        before = json.loads(res.stdout.strip().splitlines()[-1])
        now = {"before": before, "after": stage_times(model, onnx_dir, npz, **kw),
               "blocks": {"before": before.pop("blocks"), "after": block_times(model, npz, **blocks_kw)}}
        report = _smallest(report, now) if report else now
    report["rounds"] = max(1, int(rounds))
    return report


def _smallest(a: Any, b: Any) -> Any:
    """Two reports of the same shape merged cell by cell: the smaller of two numbers, everything else from ``a``."""
    if isinstance(a, dict):
        return {k: _smallest(v, b[k]) if k in b else v for k, v in a.items()}
    if isinstance(a, float) and isinstance(b, float):
        return min(a, b)
    return a


def markdown(report: dict[str, Any]) -> str:
    """The before/after table of :func:`compare` (or one :func:`stage_times` result as ``after``), then the
    per-step table when the report has one (``blocks``)."""
    after, before = report["after"], report.get("before")
    batches = list(after["batches"])

    def per_batch(rep: dict[str, Any] | None, value: Callable[[dict[str, Any], str], float]) -> dict[str, float] | None:
        return {b: value(rep, b) for b in batches} if rep else None

    rows = {s: (per_batch(before, lambda r, b, s=s: r["batches"][b][s]), per_batch(after, lambda r, b, s=s: r["batches"][b][s])) for s in STAGES}
    rows["normalise + table + pool + models"] = (per_batch(before, lambda r, b: sum(r["batches"][b][s] for s in STAGES[:4])),
                                                 per_batch(after, lambda r, b: sum(r["batches"][b][s] for s in STAGES[:4])))
    rows[f"feature table + pooling at {after['table_at']['frames']} frames"] = (per_batch(before, lambda r, b: r["table_at"][b]),
                                                                                per_batch(after, lambda r, b: r["table_at"][b]))
    title = (f"Per-clip compute by stage, CPU ms per clip (real clips of {after['frames']} frames; normalised to "
             f"{after['normalize']['target_frames']} frames by the bundle; ONNX Runtime, 1 thread).")
    lines = _before_after_table(title, "stage", batches, rows)  # type: ignore[arg-type]
    text = "\n".join(lines) + "\n"
    if "blocks" in report:
        text += "\n" + block_markdown(report["blocks"])
    return text


if __name__ == "__main__":  # the baseline side of compare(): prints one JSON line
    model_arg, onnx_arg, npz_arg, kw_arg = sys.argv[1:5]
    kwargs = json.loads(kw_arg)
    if "batches" in kwargs:
        kwargs["batches"] = tuple(kwargs["batches"])
    result = stage_times(model_arg, onnx_arg or None, npz_arg, **kwargs)
    result["blocks"] = block_times(model_arg, npz_arg, **{k: v for k, v in kwargs.items() if k in ("frames", "batches", "repeats", "budget_s", "table_frames")})
    print(json.dumps(result))
