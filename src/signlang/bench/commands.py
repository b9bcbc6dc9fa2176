"""The built-in benchmarks of :data:`signlang.bench.registry.BENCHMARKS`: each one's options and the call into its module.

One function per ``signlang benchmark NAME``: typer-annotated options (the command line is built from
them), the measurement in its own module of ``bench/`` (imported inside, so listing the benchmarks
stays fast), and a :class:`~signlang.bench.registry.BenchResult` back. Printing and writing are
:func:`~signlang.bench.registry.emit`'s. The command line's helpers (``signlang.cli._common``) are
imported inside the functions: importing ``signlang.cli`` builds the whole command line, which reads
this registry, so a top-level import would see it half-filled.
"""

from __future__ import annotations

from dataclasses import asdict
from enum import Enum
from pathlib import Path
from typing import Any

import typer

from signlang.bench.registry import BenchResult, emit, register_benchmark

# ============================================================================================
# accuracy
# ============================================================================================

ACCURACY_PARTS = ("main", "combiners", "cross-signer", "transfer", "joint")


EXTRA_BLOCKS = "+feature_blocks"
"""An ablation key naming optional feature blocks added to the default table (resolved when the row runs, so
importing the command line does not import the feature code)."""

ABLATIONS: dict[str, dict] = {
    "shipped normalisation": {},
    "without canonical hand": {"data.canonical_hand": False},
    "plus level shoulders": {"data.level_shoulders": True},
    "plus face_relative features": {EXTRA_BLOCKS: ("face_relative",)},
    "plus finger_straightness features": {EXTRA_BLOCKS: ("finger_straightness",)},
    "plus face_relative and finger_straightness": {EXTRA_BLOCKS: ("face_relative", "finger_straightness")},
}
"""Cross-signer ablation rows: label -> config overrides (each run with the XGBoost base model alone)."""


def _overrides(row: dict) -> dict:
    """A row's config overrides, with ``EXTRA_BLOCKS`` turned into the default table (read from the registry) plus them."""
    if EXTRA_BLOCKS not in row:
        return dict(row)
    from signlang.features.engineering import FEATURE_BLOCKS

    rest = {k: v for k, v in row.items() if k != EXTRA_BLOCKS}
    return {**rest, "data.feature_blocks": [*FEATURE_BLOCKS, *row[EXTRA_BLOCKS]]}


def _ablation_rows(enabled: bool, names: list[str] | None) -> dict[str, dict] | None:
    """The ablation rows to run: all of ABLATIONS, the ``--ablation`` names (an unknown one is named), or none."""
    if not enabled:
        return None
    unknown = [n for n in names or [] if n not in ABLATIONS]
    if unknown:
        raise ValueError(f"--ablation: unknown row(s) {unknown}; known: {', '.join(ABLATIONS)}")
    return {n: _overrides(ABLATIONS[n]) for n in (names or ABLATIONS)}


@register_benchmark("accuracy", "Accuracy, macro-F1, training time and inference ms/clip of baselines, each model and the ensemble.")
def accuracy(
    data: Path | None = typer.Option(None, "--data", help="Dataset (.npz or landmark store); default: the traduttore ASL set in the shared data ($SIGNLANG_SHARED_DATA or ../shared/data)."),
    split: str = typer.Option("blocked:0.2", "--split", help="Main protocol (blocked:P, random:P, signer, include50:...)."),
    optimistic_split: str = typer.Option("random:0.2", "--optimistic-split", help="Extra protocol reported as optimistic; 'none' to skip."),
    out: Path = typer.Option(Path("docs/benchmarks/accuracy.md"), "--out", help="Markdown table (a .json with every number is written beside it)."),
    config: str | None = typer.Option(None, "--config", help="YAML config or shipped name (default: by hardware)."),
    set_: list[str] | None = typer.Option(None, "--set", help="Config override key=value (repeatable)."),
    baselines: str = typer.Option("lr,minirocket", "--baselines", help="Comma-separated baselines (lr, minirocket) or 'none'."),
    single: bool = typer.Option(True, "--single/--no-single", help="Also train each base model alone."),
    seed: int | None = typer.Option(None, "--seed", help="Seed (overrides the config's)."),
    keep: Path | None = typer.Option(None, "--keep", help="Keep the trained bundles in this folder (e.g. for `benchmark latency`)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
    parts: str = typer.Option(",".join(ACCURACY_PARTS), "--parts", help=f"Comma-separated parts to run: {', '.join(ACCURACY_PARTS)}."),
    crowd: Path | None = typer.Option(None, "--crowd-data", help="Cross-signer data for cross-signer, transfer and joint; default: asl_crowd_8signs in the shared data (its label_audit.csv applies)."),
    folds: int = typer.Option(5, "--folds", help="Cross-signer: grouped K-fold by signer, K."),
    ablations: bool = typer.Option(True, "--ablations/--no-ablations", help="Cross-signer: ablation rows (the XGBoost base model alone per change)."),
    ablation: list[str] | None = typer.Option(None, "--ablation", help="Cross-signer: run only this ablation row (repeatable; names in bench.commands.ABLATIONS, e.g. 'shipped normalisation')."),
    ensemble: bool = typer.Option(True, "--ensemble/--no-ensemble", help="Cross-signer: also the ensemble and its base models (5 ensemble fits; --no-ensemble: baselines and ablation rows only)."),
    audit: Path | None = typer.Option(None, "--audit", "--exclude-cells", help="Label audit of --crowd-data (signer,label,...,keep): models train on kept cells, figures over kept cells, all-cells figures beside them. Default: label_audit.csv beside it."),
    all_cells: bool = typer.Option(False, "--all-cells", help="Cross-signer: use every clip of --crowd-data, ignoring its label audit."),
) -> BenchResult:
    from signlang.cli._common import cells_choice, echo_audit, pct, print_table

    from signlang.bench.accuracy import CROWD_DATA, MAIN_DATA, markdown_table, run_accuracy_benchmark
    from signlang.bench.common import shared_data_path
    from signlang.cli.train import resolve_config

    cfg = resolve_config(config, set_, seed)
    data = data if data is not None else shared_data_path(*MAIN_DATA)
    names = () if baselines.strip().lower() == "none" else tuple(b.strip() for b in baselines.split(",") if b.strip())
    chosen = [q.strip() for q in parts.split(",") if q.strip()]
    bad = sorted(set(chosen) - set(ACCURACY_PARTS))
    if bad:
        raise ValueError(f"--parts: unknown part(s) {bad}; known: {', '.join(ACCURACY_PARTS)}")
    if crowd is None and {"cross-signer", "transfer", "joint"} & set(chosen):
        crowd = shared_data_path(*CROWD_DATA)
    rows = _ablation_rows(ablations, ablation)
    _accuracy_parts(chosen, data, crowd, cfg, split, folds, names, rows, keep, out, quiet, ensemble, cells_choice(audit, all_cells))
    if "main" not in chosen:
        return BenchResult("accuracy", "accuracy: main table not run", f"--parts {parts}: the main table did not run.",
                           {"parts": chosen}, show=False)
    result = run_accuracy_benchmark(
        data, cfg, split=split, optimistic_split=None if optimistic_split.lower() == "none" else optimistic_split,
        baselines=names, single_models=single, keep_bundles=keep, progress=not quiet,
    )
    echo_audit(result["setup"]["data"])
    table = [[r["model"], r["split"] + (" (optimistic)" if r.get("optimistic") else ""), pct(r["accuracy"]),
              pct(r["macro_f1"]), "-" if r["train_s"] is None else f"{r['train_s']:.1f} s", f"{r['infer_ms_per_clip']:.3f}"]
             for r in result["rows"]]
    title = f"accuracy benchmark ({result['setup']['n_clips']} clips, {result['setup']['n_classes']} classes)"
    print_table(title, ["model", "split", "accuracy", "macro-F1", "train", "ms/clip"], table)
    return BenchResult("accuracy", title, markdown_table(result), result, out=out, show=False)


def _accuracy_parts(parts: list[str], data: Path, crowd: Path | None, cfg: Any, split: str, folds: int, baselines: tuple[str, ...],
                    ablations: dict[str, dict] | None, keep: Path | None, out: Path, quiet: bool, ensemble: bool = True,
                    cells: object = "auto") -> None:
    from signlang.cli._common import echo_audit, pct

    """The combiner comparison, transfer, joint and the cross-signer table, each emitted beside ``out`` as it finishes."""
    from signlang.bench import accuracy as bench

    stem = out.with_suffix("")
    if "combiners" in parts or "transfer" in parts:
        bundle = (keep or stem.parent / "bundles") / "main-chosen-combiner"
        res = bench.compare_combiners(data, cfg, split=split, keep=bundle)
        emit(BenchResult("accuracy", "combiners compared on validation", bench.combiner_markdown(res), res, out=Path(f"{stem}_combiners")),
             typer.echo)
        if "transfer" in parts:
            assert crowd is not None
            zs = bench.zero_shot(bundle, crowd)
            text = (f"Zero-shot: the bundle trained on {data.name} ({split} training part, combiner {res['chosen']}) on "
                    f"{zs['n_clips']} clips of {crowd.name} ({', '.join(zs['signs'])}): right one of the shared signs "
                    f"{pct(zs['two_way_accuracy'])}, argmax over the whole vocabulary {pct(zs['accuracy'])}; answers: {zs['predicted']}.")
            emit(BenchResult("accuracy", "zero-shot transfer", text, zs, out=Path(f"{stem}_transfer")), typer.echo)
    if "joint" in parts:
        res = bench.joint_heldout(data, crowd, cfg, split=split, k=folds, progress=not quiet, save_proba=f"{stem}_joint_proba.npz", cells=cells)
        echo_audit(res["crowd"])
        emit(BenchResult("accuracy", "joint model, held-out people", bench.joint_markdown(res), res, out=Path(f"{stem}_joint")), typer.echo)
    if "cross-signer" in parts:
        res = bench.cross_signer(crowd, cfg, k=folds, baselines=baselines, ablations=ablations, progress=not quiet, ours=ensemble, cells=cells)
        emit(BenchResult("accuracy", "cross-signer", bench.cross_signer_markdown(res), res, out=Path(f"{stem}_cross_signer")), typer.echo)


# ============================================================================================
# explain
# ============================================================================================


@register_benchmark("explain", "Faithfulness of the explanations: model randomisation (Spearman) and deletion of top vs random frames.")
def explain(
    model: str = typer.Option(..., "--model", help="Run folder (model bundle) trained on the training part of --split of --data, or a pretrained name."),
    data: Path | None = typer.Option(None, "--data", help="Dataset (.npz or store). Default: the shared traduttore_asl_mediapipe.npz."),
    split: str = typer.Option("blocked:0.2", "--split", help="Held-out protocol; clips are drawn from its test part."),
    n_clips: int = typer.Option(30, "--n-clips", min=2, help="How many test clips to draw at random (idle and hand-less clips included)."),
    fraction: float = typer.Option(0.2, "--fraction", min=0.01, max=0.99, help="Share of frames to hide (and occlusion window)."),
    random_draws: int = typer.Option(10, "--random-draws", min=1, help="Random frame sets per clip for the chance level."),
    frame_method: str = typer.Option("occlusion", "--frame-method", help="occlusion | gradcam+occlusion | combined | gradcam | ig"),
    seed: int = typer.Option(0, "--seed", help="Seed of the clip draw and of the random frame sets."),
    out: Path | None = typer.Option(None, "--out", help="Write OUT.md and OUT.json (e.g. runs/explain_bench/report)."),
) -> BenchResult:
    from signlang.cli._common import model_dir

    from signlang.bench.explain import render, run

    rec = run(model_dir(model), data, split=split, n_clips=n_clips, fraction=fraction, seed=seed,
              random_draws=random_draws, frame_method=frame_method)
    return BenchResult("explain", "explanation faithfulness", render(rec), rec, out=out)


# ============================================================================================
# extract
# ============================================================================================


class Engine(str, Enum):
    local = "local"
    ray = "ray"


@register_benchmark("extract", "Extraction speed: raw Holistic vs the pipeline (local), or local pool vs a Ray cluster of 1 and 2 nodes (ray).")
def extract(
    videos: Path | None = typer.Option(None, "--videos", help="Folder of videos (default: ../shared/data/videos_real_signing)."),
    max_side: int = typer.Option(0, "--max-side", min=0, help="--max-side for the pipeline runs (0 = same pixels as the raw loop)."),
    repeats: int = typer.Option(1, "--repeats", min=1, help="Runs per variant; the fastest counts."),
    engine: Engine = typer.Option(Engine.local, "--engine", help="local: raw loop vs pipeline, 1 vs 2 workers; ray: local pool vs Ray 1 node vs 2 nodes."),
    copies: int = typer.Option(3, "--copies", min=1, help="With --engine ray: how many times each video is copied into the workload."),
    out: Path | None = typer.Option(None, "--out", help="Also write OUT.md and OUT.json."),
) -> BenchResult:
    from signlang.bench.extract import default_videos_dir, engine_table, markdown_table, run_benchmark, run_engine_benchmark

    folder = videos or default_videos_dir()
    if engine == Engine.ray:
        runs = run_engine_benchmark(folder, copies=copies, max_side=max_side or None)
        return BenchResult("extract", "extraction: local pool vs Ray", engine_table(runs, copies),
                           {"engine": "ray", "copies": copies, "runs": [asdict(r) for r in runs]}, out=out)
    timings = run_benchmark(folder, max_side=max_side or None, repeats=repeats)
    return BenchResult("extract", "extraction: raw Holistic vs the pipeline", markdown_table(timings),
                       {"engine": "local", **asdict(timings)}, out=out)


# ============================================================================================
# latency
# ============================================================================================


@register_benchmark("latency", "Batch-1 p50/p99 (1 thread) and batch-32 clips/s (2 threads) on 64-frame clips, per model and ensemble; "
                               "per-video end-to-end time; the service's overhead.")
def latency(
    model: str = typer.Option(..., "--model", help="Run folder (model bundle) written by `signlang train`, or a pretrained name."),
    onnx: Path | None = typer.Option(None, "--onnx", help="Its ONNX export (default: <model>/onnx if made from it, else a fresh export)."),
    videos: Path | None = typer.Option(None, "--videos", help="Folder of videos for the end-to-end timing (default: ../shared/data/videos_real_signing if present)."),
    repeats: int = typer.Option(200, "--repeats", help="Timed calls per measurement (batch 32 uses repeats/8)."),
    budget_s: float = typer.Option(10.0, "--budget-s", help="Time budget per measurement."),
    out: Path | None = typer.Option(None, "--out", help="Also write OUT.md and OUT.json (every number)."),
    stages_only: bool = typer.Option(False, "--stages-only", help="Only the per-clip compute by stage (normalisation, feature table, pooling, models, the predictor call), batch 1 and 256, on real clips."),
    baseline_src: Path | None = typer.Option(None, "--baseline-src", help="With --stages-only: the src folder of an older checkout, timed too (in a subprocess) for a before/after table."),
    data: Path | None = typer.Option(None, "--data", help="traduttore_asl_mediapipe.npz for the stage timing (default: the shared data)."),
    batches: str = typer.Option("1,256", "--batches", help="With --stages-only: comma-separated batch sizes to time (e.g. 1,32,256)."),
    rounds: int = typer.Option(1, "--rounds", help="With --baseline-src: alternate before/after this many times and keep each cell's smallest median (a loaded machine only adds time)."),
) -> BenchResult:
    from signlang.cli._common import model_dir

    from signlang.bench.common import shared_data_dir

    if stages_only:
        from signlang.bench import stages

        npz = data or shared_data_dir() / "traduttore_asl_mediapipe" / "traduttore_asl_mediapipe.npz"
        if not npz.is_file():
            raise FileNotFoundError(f"{npz}: real clips for the stage timing not found (pass --data)")
        if baseline_src is not None and not (baseline_src / "signlang").is_dir():
            raise FileNotFoundError(f"{baseline_src}: not a src folder with a signlang package (--baseline-src)")
        try:
            sizes = tuple(int(b) for b in batches.split(",") if b.strip())
        except ValueError:
            raise ValueError(f"--batches: expected comma-separated positive integers, got {batches!r}") from None
        if not sizes or min(sizes) < 1:
            raise ValueError(f"--batches: expected comma-separated positive integers, got {batches!r}")
        kw = {"repeats": repeats, "budget_s": budget_s, "batches": sizes}
        folder = model_dir(model)  # a pretrained name too, as in the other mode
        report = (stages.compare(folder, onnx, npz, baseline_src, rounds=rounds, **kw) if baseline_src is not None
                  else {"after": stages.stage_times(folder, onnx, npz, **kw)})
        return BenchResult("latency", "per-clip compute by stage", stages.markdown(report), report, out=out)
    from signlang.bench.latency import (
        LatencyReport, classifier_latency, list_videos, markdown, service_cpu_overhead, service_overhead, video_latency,
    )
    from signlang.inference.predictor import Predictor

    model_path = model_dir(model)
    if videos is None:
        default = shared_data_dir() / "videos_real_signing"
        videos = default if default.is_dir() else None
    from signlang.bench.common import machine_info

    report = LatencyReport(machine=machine_info())
    with Predictor(model_path, backend="onnx", threads=1, onnx_dir=onnx) as predictor:
        onnx_dir = Path(predictor.model_info["onnx_dir"])
        report.rows = classifier_latency(model_path, onnx_dir, repeats=repeats, budget_s=budget_s)
        report.service = service_overhead(predictor, repeats=repeats, budget_s=budget_s)
        report.service["cpu"] = service_cpu_overhead(onnx_dir, predictor, requests=repeats)
        if videos is not None:
            report.videos = video_latency(predictor, list_videos(videos))
    return BenchResult("latency", "classifier, video and service latency", markdown(report), report.to_dict(), out=out,
                       machine=report.machine)


# ============================================================================================
# live and spot (continuous recognition)
# ============================================================================================


@register_benchmark("live", "A real video at 30 FPS for a minute: fps processed, drops, lag over time; recognizer frames/s.")
def live(
    model: str = typer.Option(..., "--model", help="Model bundle, or a pretrained name."),
    seconds: float = typer.Option(60.0, help="Length of the stream."),
    server: bool = typer.Option(False, "--server", help="Also measure a real server's CPU per live user in both page modes."),
    out: Path | None = typer.Option(None, "--out", help="Write OUT.md and OUT.json."),
) -> BenchResult:
    from signlang.cli._common import model_dir

    from signlang.bench.live import run_live_benchmark, server_cpu_per_user

    path = str(model_dir(model))
    md, data = run_live_benchmark(path, seconds=seconds)
    if server:
        md_server, data["server_cpu_per_user"] = server_cpu_per_user(path)
        md += "\n\n" + md_server
    return BenchResult("live", "live recognition in real time", md, data, out=out)


@register_benchmark("web", "Recognition in the page (headless Chromium, onnxruntime-web): the graph's ms per window, the segmenter's per "
                    "frame, and the page's events against the server's on the same real landmark streams.")
def web(
    model: str = typer.Option("asl-cafe", "--model", help="Model bundle, or a pretrained name."),
    export: Path | None = typer.Option(None, "--export", help="Its ONNX export holding model.onnx (default: the bundle's onnx/, "
                                       "else exported into a temporary folder, about 2 minutes)."),
    data: Path = typer.Option(Path("../shared/data"), "--data", help="Folder holding traduttore_asl_mediapipe/ and videos_real_signing/."),
    reps: int = typer.Option(50, min=5, help="Timed graph calls per batch size."),
    out: Path | None = typer.Option(None, "--out", help="Write OUT.md and OUT.json."),
) -> BenchResult:
    from signlang.cli._common import model_dir

    from signlang.bench.web import run_web_benchmark

    npz = data / "traduttore_asl_mediapipe" / "traduttore_asl_mediapipe.npz"
    if not npz.is_file():
        raise ValueError(f"{npz}: not found (--data names the folder holding traduttore_asl_mediapipe/)")
    videos = sorted((data / "videos_real_signing").glob("*.mp4"))
    md, doc = run_web_benchmark(str(model_dir(model)), export=None if export is None else str(export), traduttore=npz, videos=videos, reps=reps)
    return BenchResult("web", "recognition in the page", md, doc, out=out)


@register_benchmark("spot", "F1 at temporal IoU >= 0.5, WER, boundary error of the segmenter, the window gate and fixed windows; latency and frames/s.")
def spot(
    model: str | None = typer.Option(None, "--model", help="Bundle trained on the blocked:0.2 training part of traduttore_asl_mediapipe."),
    streams: int = typer.Option(40, help="Test streams (of each kind)."),
    val_streams: int = typer.Option(20, help="Validation streams (the gate's window choice)."),
    crowd_model: Path | None = typer.Option(None, "--crowd-model", help="Cross-signer bundle made with --train-crowd: also score streams of its held-out people."),
    train_crowd: Path | None = typer.Option(None, "--train-crowd", help="Train the cross-signer bundle here first (kept cells of asl_crowd_8signs, people held out by signer)."),
    config: str = typer.Option("cpu", "--config", help="Config of --train-crowd (a YAML file or a shipped name)."),
    crowd_model_name: str = typer.Option("xgboost", "--crowd-models", help="Model of --train-crowd (a registered name or ensemble)."),
    set_: list[str] = typer.Option([], "--set", help="Config override of --train-crowd, e.g. --set segmenter.enabled=true (repeatable)."),
    windows: str = typer.Option("0.33,0.4,0.5,0.67,0.8", "--windows", help="Gate windows (s) to choose from on the validation streams, comma-separated."),
    latency_streams: int = typer.Option(10, "--latency-streams", help="Test streams replayed frame by frame for the latency."),
    memory_minutes: float = typer.Option(0.0, "--memory-minutes", help="Also trace the recognizer's memory over this many minutes of stream."),
    out: Path | None = typer.Option(None, "--out", help="Write OUT.md and OUT.json."),
) -> BenchResult:
    from signlang.cli._common import fail, model_dir

    from signlang.bench.spot import run_spot_benchmark, train_crowd_bundle

    trained = None
    if train_crowd is not None:
        from signlang.cli.train import resolve_config
        from signlang.training.config import merge_overrides

        cfg = resolve_config(config, set_, None)
        if crowd_model_name != "ensemble":
            cfg = merge_overrides(cfg, {"ensemble.models": [crowd_model_name]})
        train_crowd_bundle(str(train_crowd), cfg)
        trained = f"cross-signer bundle written to {train_crowd}"
        typer.echo(trained)
        crowd_model = crowd_model or train_crowd
    if model is None:
        if trained is None:
            fail("give --model (a bundle to score) or --train-crowd (a cross-signer bundle to train)")
        return BenchResult("spot", "cross-signer bundle for spotting", trained, {"train_crowd": str(train_crowd)}, show=False)
    try:
        window_list = tuple(float(w) for w in windows.split(","))
    except ValueError:
        raise ValueError(f"--windows: expected seconds separated by commas, got {windows!r}") from None
    md, data = run_spot_benchmark(str(model_dir(model)), n_streams=streams, n_val_streams=val_streams, windows=window_list,
                                  latency_streams=latency_streams,
                                  crowd_model=None if crowd_model is None else str(crowd_model), memory_minutes=memory_minutes)
    return BenchResult("spot", "continuous recognition (spotting)", md, data, out=out)


# ============================================================================================
# load (the service under Locust)
# ============================================================================================


@register_benchmark("load", "Requests/s, clips/s, p50/p95/p99 and status codes per scenario of a real `signlang serve`, plus a latency-over-time plot.")
def load(
    model: str | None = typer.Option(None, "--model", help="Model served (bundle with onnx/, an ONNX export folder, or a pretrained name)."),
    url: str | None = typer.Option(None, "--url", help="Benchmark the server already running here instead of starting one (no --model)."),
    scenario: list[str] = typer.Option(["json", "npy", "batch", "mixed"], "--scenario", help="json | npy | raw | batch | mixed (repeatable)."),
    users: int = typer.Option(50, "--users", help="Concurrent landmark clients."),
    duration_s: int = typer.Option(60, "--duration", help="Seconds per scenario."),
    video_users: int = typer.Option(4, "--video-users", help="Clients uploading real videos (mixed scenario)."),
    batch: int = typer.Option(32, "--batch", help="Clips per .npy batch request (batch scenario)."),
    batch_users: int = typer.Option(8, "--batch-users", help="Clients posting batches (batch scenario)."),
    frames: int = typer.Option(64, "--frames", help="Frames per clip (real clips resampled)."),
    wait_ms: float = typer.Option(0.0, "--wait-ms", help="Mean think time between a client's requests (0 = closed loop)."),
    serve_arg: list[str] = typer.Option(["--backend", "onnx"], "--serve-arg", help="Argument passed to `signlang serve` (repeatable)."),
    doc: Path | None = typer.Option(None, "--doc", help="Write the section into this markdown file (e.g. docs/benchmarks.md)."),
    out: Path | None = typer.Option(None, "--out", help="Also write OUT.md and OUT.json."),
) -> BenchResult:
    from signlang.cli._common import fail, model_dir

    if users < 1 or duration_s < 1 or batch < 1:
        fail("--users, --duration and --batch must be >= 1")
    if (model is None) == (url is None):
        fail("give --model (a server is started) or --url (a running server), not both")
    from signlang.bench.load import markdown, replace_section, run_load

    plot_png = (doc.parent if doc else (out.parent if out else Path("."))) / "benchmarks" / "load_latency.png"
    report = run_load(model_dir(model) if model else None, url=url, scenarios=tuple(scenario), users=users, duration_s=duration_s, video_users=video_users,
                      batch=batch, batch_users=batch_users, frames=frames, wait_ms=wait_ms, serve_args=list(serve_arg),
                      plot_png=plot_png)
    rel = str(plot_png.relative_to(doc.parent)) if doc else str(plot_png)
    text = markdown(report, rel)
    if doc is not None:
        replace_section(doc, "Service under load (Locust)", text)
        typer.echo(f"wrote the section into {doc} and {plot_png}")
    return BenchResult("load", "service under load (Locust)", text, report, out=out)


# ============================================================================================
# openset
# ============================================================================================


@register_benchmark("openset", "AUROC of known vs unknown signs per method, and at the threshold for --target-false-rejection the shares declined.")
def openset(
    data: Path | None = typer.Option(None, "--data", help="Protocol A data (leave signs out); default: the traduttore ASL set in the shared data."),
    crowd: Path | None = typer.Option(None, "--crowd-data", help="Protocol B data (people never seen); default: asl_crowd_8signs in the shared data."),
    audit: Path | None = typer.Option(None, "--audit", help="Protocol B label audit (keep=1 cells are used); default: label_audit.csv beside the default --crowd-data, none for other data."),
    protocols: str = typer.Option("A,B", "--protocols", help="Comma-separated: A (leave signs out), B (people never seen), shipped (the --model's rules fitted on held-out people of --crowd-data, applied to the real videos)."),
    model: str = typer.Option("asl-cafe", "--model", help="shipped: a bundle folder or a pretrained model's name."),
    trained: Path | None = typer.Option(None, "--trained-data", help="shipped: data the model trained on whose people's cells (signer, sign) are left out of the held-out clips; default: asl_crowd_8signs in the shared data (with the default --model; the rebuilt asl-cafe trained on every kept cell of it, so no held-out known clips remain: use the joint folds, benchmarks/openset_joint_heldout.py)."),
    videos: Path | None = typer.Option(None, "--videos", help="shipped: folder of .mp4 videos of signs outside the vocabulary; default: videos_real_signing in the shared data."),
    config: str = typer.Option("cpu", "--config", help="YAML config or shipped name."),
    set_: list[str] | None = typer.Option(None, "--set", help="Config override key=value (repeatable); e.g. ensemble.models=[xgboost]."),
    rounds: int = typer.Option(1, "--rounds", help="Protocol A: draws of the known signs."),
    folds: int = typer.Option(3, "--folds", help="Protocol B: grouped K-fold by signer, K."),
    target: float = typer.Option(0.05, "--target-false-rejection", help="Share of known validation clips each threshold may decline."),
    seed: int | None = typer.Option(None, "--seed", help="Seed (overrides the config's)."),
    out: Path = typer.Option(Path("docs/benchmarks/openset.md"), "--out", help="Markdown tables (a .json with every number is written beside it)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress lines."),
) -> BenchResult:
    from signlang.cli._common import model_dir, pct, print_table

    from signlang.cli.train import resolve_config

    chosen = {p.strip().upper() for p in protocols.split(",") if p.strip()}
    if not chosen or chosen - {"A", "B", "SHIPPED"}:
        raise ValueError(f"--protocols {protocols!r}: give one or more of A, B, shipped")
    if rounds < 1 or folds < 2:
        raise ValueError(f"--rounds must be >= 1 and --folds >= 2, got {rounds} and {folds}")
    cfg = resolve_config(config, set_, seed)
    from signlang.bench.accuracy import MAIN_DATA
    from signlang.bench.common import shared_data_path
    from signlang.bench.openset import CROWD8_AUDIT, CROWD8_DATA, markdown, run_openset_benchmark

    data_a = (data if data is not None else shared_data_path(*MAIN_DATA)) if "A" in chosen else None
    data_b = None
    if chosen & {"B", "SHIPPED"}:
        data_b = crowd if crowd is not None else shared_data_path(*CROWD8_DATA)
        if audit is None and crowd is None:
            audit = shared_data_path(*CROWD8_AUDIT)
    result = run_openset_benchmark(cfg, data_a=data_a, data_b=data_b if "B" in chosen else None, audit_b=audit, rounds=rounds,
                                   folds=folds, seed=seed, target=target, progress=not quiet)
    text = markdown(result)
    if "SHIPPED" in chosen:
        from signlang.bench.accuracy import CROWD_DATA
        from signlang.bench.openset import VIDEOS, shipped_markdown, shipped_model_check

        result["shipped"] = shipped_model_check(model_dir(model), data_b, videos if videos is not None else shared_data_path(*VIDEOS),
                                                audit=audit, target=target, seed=cfg.seed, progress=not quiet,
                                                trained=trained if trained is not None or model != "asl-cafe" else shared_data_path(*CROWD_DATA))
        text += "\n" + shipped_markdown(result["shipped"])
    for key in ("A", "B"):
        if key in result:
            rows = [[m, f"{s['test']['auroc']:.3f}" if s["test"]["auroc"] is not None else "-", pct(s["test"]["known_declined"]),
                     pct(s["test"]["unknown_declined"])] for m, s in result[key]["summary"].items()]
            print_table(f"protocol {key} (test part)", ["method", "AUROC", "known declined", "unknown declined"], rows)
    for m, row in result.get("shipped", {}).get("methods", {}).items():
        n_dec = sum(v["declined"] for n, v in row["videos"].items() if result["shipped"]["videos"][n]["label"])
        typer.echo(f"shipped model, {m}: {n_dec} of the labelled videos outside the vocabulary declined")
    if result.get("chosen"):
        typer.echo(f"chosen on protocol A's validation part: {result['chosen']}")
    return BenchResult("openset", "open-set recognition", text, result, out=out, show=False)


# ============================================================================================
# pretrained (rebuilds the shipped model; its report is the model folder's report.json)
# ============================================================================================


@register_benchmark("pretrained", "Train the joint model (traduttore + the kept cells of asl_crowd_8signs, signs with >= 20 people or a traduttore class) from ../shared/data and pin it by sha256.")
def pretrained(
    out: Path = typer.Option(Path("src/signlang/pretrained"), "--out", help="Folder of the pretrained models (index.json + one folder per model)."),
    name: str = typer.Option("asl-cafe", "--name", help="Name of the model (its folder)."),
    config: str = typer.Option("cpu", "--config", help="Shipped config the model is trained with."),
    combiner: str | None = typer.Option(None, "--combiner", help="Override ensemble.combiner (default: the config's)."),
    models: str | None = typer.Option(None, "--models", help="Comma-separated base models, overriding ensemble.models."),
    temperature_from: Path | None = typer.Option(None, "--temperature-from", help="The *_joint_proba.npz of `signlang benchmark accuracy --parts joint` (same recipe): calibrate the model with the temperature fitted on its held-out probabilities."),
    calibrate_only: bool = typer.Option(False, "--calibrate-only", help="Do not train: write the --temperature-from temperature into the existing OUT/NAME and re-pin it."),
    open_set: str | None = typer.Option(None, "--open-set", help="With --temperature-from: also fit this open-set score (max_prob, margin, entropy, energy, mahalanobis) on the same held-out probabilities, the left-out crowd signs as unknowns, and store it as meta.open_set."),
    false_rejection: float = typer.Option(0.05, "--false-rejection", help="Share of held-out known clips the open-set threshold may decline."),
    segmenter_only: bool = typer.Option(False, "--segmenter-only", help="Do not retrain the classifier: train the temporal segmenter for continuous signing (the config's segmenter section, on the same data) into the existing OUT/NAME and re-pin it."),
) -> BenchResult:
    from signlang.bench.pretrained import build_pretrained, calibrate_pretrained, pin_pretrained

    if segmenter_only:
        from signlang.bench.pretrained import add_segmenter

        rec = add_segmenter(out, name, config=config)
        v = rec.get("validation") or {}
        line = (f"{out / name}: segmenter added ({rec['fitted_on']}; validation F1 {v.get('f1', float('nan')):.3f}, "
                f"decoder {rec['decoder']}, {rec['fit_s'] / 60:.1f} min); re-pinned in {out / 'index.json'}")
        return BenchResult("pretrained", f"{name}: segmenter", line, rec)
    if calibrate_only:
        if temperature_from is None:
            raise ValueError("--calibrate-only needs --temperature-from")
        c = calibrate_pretrained(out / name, temperature_from, open_set=(open_set, false_rejection) if open_set else None)
        from signlang.inference.pretrained import pretrained_index

        pin_pretrained(out, name, pretrained_index(out).get(name, {}).get("description", name))
        lines = [f"{out / name}: temperature {c['temperature']:.3f} (held-out NLL {c['nll_before']:.4f} -> {c['nll_after']:.4f}, "
                 f"ECE {c['ece_before']:.4f} -> {c['ece_after']:.4f} on {c['n_clips']} clips); re-pinned in {out / 'index.json'}"]
        if c.get("open_set"):
            lines.append(f"open set: {c['open_set']['method']} threshold {c['open_set']['threshold']:.4f}; record: "
                         + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in c["open_set"].items()
                                     if k not in ("method", "threshold")))
        return BenchResult("pretrained", f"{name}: calibration", "\n".join(lines), c)
    r = build_pretrained(out, name=name, config=config, combiner=combiner,
                         models=[m.strip() for m in models.split(",") if m.strip()] if models else None,
                         temperature_from=temperature_from)
    line = f"wrote {out / name} ({r['bytes'] / 1e6:.2f} MB, {len(r['classes'])} signs, trained in {r['fit_s'] / 60:.1f} min)"
    return BenchResult("pretrained", f"{name}: rebuilt", line, r)
