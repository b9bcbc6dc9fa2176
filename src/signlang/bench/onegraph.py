"""Per-clip compute of the one graph (``model.onnx``) against the split path (numpy normalisation and features,
then the per-model ONNX graphs), single clip and batched, in one run on the same real clips.

``python -m signlang.bench.onegraph EXPORT_DIR NPZ [--frames 64] [--batches 1,32,256] [--out FILE.json]``:
``EXPORT_DIR`` is an ONNX export with a ``model.onnx`` (``signlang export``). CPU ms per clip
(``time.process_time``, ONNX Runtime on one thread), medians of repeated calls, as
:mod:`signlang.bench.stages` measures; the machine's load average is recorded beside them.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from signlang.bench.stages import _cpu_ms, real_clips


def onegraph_times(export_dir: str | os.PathLike[str], npz: str | os.PathLike[str], *, frames: int = 64,
                   batches: tuple[int, ...] = (1, 32, 256), repeats: int = 20, budget_s: float = 5.0) -> dict[str, Any]:
    """CPU ms per clip of ``split`` (normalise + features + per-model graphs), ``onegraph`` (``model.onnx``) and the
    public predictor call with each (``predictor_split``, ``predictor_onegraph``), per batch size."""
    from signlang.features.normalize import normalize_clips
    from signlang.inference.plan import compute_features
    from signlang.inference.predictor import Predictor

    clips = real_clips(npz, max(batches), frames)
    out: dict[str, Any] = {"frames": frames, "export": str(export_dir), "load_average_before": os.getloadavg(), "batches": {}}
    with Predictor(export_dir, backend="onnx", threads=1, one_graph=True) as pred:
        if not pred.one_graph:
            raise ValueError(f"{export_dir}: the export has no model.onnx; write one with `signlang export`")
        runner, plan, cfg = pred.runner, pred.runner.plan, pred.normalize_config
        one = runner.onegraph
        out["normalize"] = cfg.to_dict()

        def predictor_call(sub: list[Any]) -> Any:
            return pred.predict_landmarks(sub[0]) if len(sub) == 1 else pred.predict_batch(sub)

        def without_onegraph(sub: list[Any]) -> Any:
            runner.onegraph = None
            try:
                return predictor_call(sub)
            finally:
                runner.onegraph = one

        for b in batches:
            sub = (clips * (b // len(clips) + 1))[:b]
            times = {
                "split": _cpu_ms(lambda: runner.run(compute_features(normalize_clips(sub, cfg), plan)), repeats=repeats, budget_s=budget_s),
                "onegraph": _cpu_ms(lambda: runner.run_clips(sub), repeats=repeats, budget_s=budget_s),
                "predictor_split": _cpu_ms(lambda: without_onegraph(sub), repeats=repeats, budget_s=budget_s),
                "predictor_onegraph": _cpu_ms(lambda: predictor_call(sub), repeats=repeats, budget_s=budget_s),
            }
            out["batches"][str(b)] = {k: v / b for k, v in times.items()}
    out["load_average_after"] = os.getloadavg()
    return out


def markdown(report: dict[str, Any]) -> str:
    """The report as a table: rows = what ran, columns = batch sizes (CPU ms per clip)."""
    rows = {"split": "normalise + features (numpy) + per-model graphs", "onegraph": "model.onnx (one graph)",
            "predictor_split": "Predictor call, split path", "predictor_onegraph": "Predictor call, one graph"}
    batches = list(report["batches"])
    lines = [f"CPU ms per clip, real clips of {report['frames']} frames (normalised to {report['normalize']['target_frames']}), "
             f"ONNX Runtime 1 thread; load average {report['load_average_before'][0]:.1f} before, {report['load_average_after'][0]:.1f} after.", "",
             "| path | " + " | ".join(f"batch {b}" for b in batches) + " |", "|---|" + "---:|" * len(batches)]
    for key, label in rows.items():
        lines.append(f"| {label} | " + " | ".join(f"{report['batches'][b][key]:.3f}" for b in batches) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("export_dir")
    ap.add_argument("npz")
    ap.add_argument("--frames", type=int, default=64)
    ap.add_argument("--batches", default="1,32,256")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args(argv)
    report = onegraph_times(a.export_dir, a.npz, frames=a.frames, batches=tuple(int(b) for b in a.batches.split(",")), repeats=a.repeats)
    if a.out:
        a.out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(markdown(report))


if __name__ == "__main__":
    main()
