"""``signlang explain``: which frames and which landmarks decided a prediction.

``signlang explain --model RUN_DIR INPUT [--index I] [--target SIGN] --out DIR`` takes INPUT as
``signlang predict`` does (a video, a ``.pose``/``.npy``/store ``.npz`` clip, or a dataset of
many clips, one chosen with ``--index``) and writes DIR/explanation.json (sign, prob,
frame_importance (T), landmark_importance (T x 75), ...), DIR/heatmap.png, DIR/curve.png and,
for a video, DIR/frames.png (key frames with the skeleton coloured by importance) and, with
``--gif``, DIR/explanation.gif. Every file is written atomically. ``--backend onnx`` (or an ONNX
export folder as ``--model``) explains with occlusion on ONNX Runtime; the gradient frame methods
need the torch backend and are refused there with the reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import typer

from signlang.cli._common import BACKEND_HELP, MODEL_OPTION, model_dir, user_errors

SHEET_MAX_SIDE = 480


def video_frame_source(path: Path, max_side: int = SHEET_MAX_SIDE) -> Any:
    """``indices (K,) -> RGB frames (K, H, W, 3)`` decoded from ``path`` (the frames landmarks came from)."""

    def get(indices: np.ndarray) -> np.ndarray:
        from signlang.landmarks.video import VideoReader

        want = {int(i) for i in np.asarray(indices).ravel()}
        found: dict[int, np.ndarray] = {}
        with VideoReader(path) as reader:
            for i, (_, img) in enumerate(reader.frames(max_side=max_side)):
                if i in want:
                    found[i] = img
                    if len(found) == len(want):
                        break
        missing = sorted(want - set(found))
        if missing:
            raise ValueError(f"{path}: frames {missing[:5]} could not be decoded (the video has fewer frames than its landmarks)")
        return np.stack([found[int(i)] for i in np.asarray(indices).ravel()])

    return get


def write_files(out: Path, files: dict[str, bytes]) -> None:
    """Write every ``name -> bytes`` under ``out``, atomically."""
    from signlang._io import atomic_write

    for name, data in files.items():
        with atomic_write(out / name, "wb") as fh:
            fh.write(data)


def register(app: typer.Typer, benchmark_app: typer.Typer) -> None:
    @app.command("explain")
    def explain(
        input_path: Path = typer.Argument(..., metavar="INPUT", help="A video, a .pose/.npy/store .npz clip, or a dataset (.npz with X, store folder)."),
        model: str | None = MODEL_OPTION,
        out: Path = typer.Option(..., "--out", help="Folder for explanation.json, heatmap.png, curve.png, frames.png."),
        index: int | None = typer.Option(None, "--index", min=0, help="Which clip of a multi-clip INPUT to explain."),
        target: str | None = typer.Option(None, "--target", help="Explain this sign instead of the predicted one."),
        gif: bool = typer.Option(False, "--gif", help="Also write explanation.gif (videos only)."),
        steps: int = typer.Option(32, "--steps", min=1, help="Integration steps of integrated gradients (frame methods combined, ig)."),
        frame_method: str = typer.Option("occlusion", "--frame-method",
                                         help="occlusion (either backend) | gradcam+occlusion | combined | gradcam | ig (these four: torch backend)"),
        backend: str = typer.Option("auto", "--backend", help=BACKEND_HELP + " Occlusion runs on either; Grad-CAM and IG need torch."),
    ) -> None:
        """Explain one prediction: importance per frame and per frame x landmark, with pictures."""
        from signlang.explain.explainer import Explainer
        from signlang.explain.report import explanation_files
        from signlang.datasets.formats import read_inputs, with_landmarks
        from signlang.inference.predictor import Predictor
        from signlang.landmarks.extract import Landmarker
        from signlang.landmarks.video import VIDEO_EXTENSIONS

        model_path = model_dir(model)
        with user_errors():
            items = read_inputs(input_path)
            if not items:
                raise ValueError(f"{input_path}: holds no clips")
            if index is None and len(items) > 1:
                raise ValueError(f"{input_path}: holds {len(items)} clips; choose one with --index 0..{len(items) - 1}")
            i = 0 if index is None else index
            if i >= len(items):
                raise ValueError(f"--index {i}: {input_path} holds only {len(items)} clips (0..{len(items) - 1})")
            with Landmarker(quiet=True) as landmarker:
                item = next(with_landmarks([items[i]], landmarker))
            if item.error is not None:
                raise item.error
            landmarks = item.landmarks
            with Predictor(model_path, backend=backend) as predictor:
                if predictor.backend == "torch":
                    import torch

                    torch.set_num_threads(max(1, min(4, torch.get_num_threads())))
                prediction = predictor.predict_landmarks(landmarks, top_k=5, name=item.name)  # the rule and top-k of `predict`
                explainer = Explainer.from_predictor(predictor, ig_steps=steps, frame_method=frame_method)
                exp = explainer.explain(landmarks, target=target if target is not None else prediction.top_k[0][0])
            is_video = item.video is not None and item.video.suffix.lower() in VIDEO_EXTENSIONS
            source = video_frame_source(item.video) if is_video and item.video is not None else None
            extra = {"input": item.input, "clip_id": item.clip_id, "index": i, "model": str(model_path), **prediction.verdict()}
            files = explanation_files(exp, landmarks, source, gif=gif and is_video, extra=extra)
            write_files(out, files)
        if gif and not is_video:
            typer.echo("note: --gif needs a video input; no GIF written", err=True)
        top = ", ".join(str(int(f)) for f in exp.top_frames(5))
        typer.echo(f"{item.clip_id}: {exp.sign} (p = {exp.prob:.3f}); most important frames {top}; "
                   f"weights {', '.join(f'{k} {v:.2f}' for k, v in exp.weights.items())}")
        typer.echo(f"wrote {', '.join(sorted(files))} to {out}")
