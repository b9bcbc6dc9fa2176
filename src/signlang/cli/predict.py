"""``signlang predict``: top-k signs for videos, landmark clips or a dataset of clips.

Inputs, by kind: a video (landmarks extracted on the fly with MediaPipe Holistic), a ``.pose``
file, a ``.npy`` clip ``(T, 75, 3)`` / ``(T, 225)`` / ``(T, 258)``, a landmark-store clip
``.npz`` (key ``landmarks``), or a dataset (``.npz`` with ``X``, or a store folder) whose every
clip is predicted. With ``--json`` each clip is one line
``{"index": i, "input": ..., "clip_id": ..., "top_k": [{"sign": s, "prob": p}, ...], "probs": [...]}``
with ``probs`` in the bundle's class order; an input that cannot be read gives a line with
``"error"`` naming it, and the rest of the batch goes on (exit status 1 at the end).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import typer

from signlang.cli._common import fail, user_errors


@dataclass
class Item:
    """One clip to predict: its landmarks ``(T, 75, 3)`` and where it came from."""

    input: str
    clip_id: str
    landmarks: np.ndarray


def read_inputs(path: Path) -> list[Item]:
    """All clips in ``path``; ``ValueError`` naming the file when it cannot be used."""
    from signlang.landmarks.layout import as_landmarks
    from signlang.landmarks.video import VIDEO_EXTENSIONS

    if not path.exists():
        raise ValueError(f"{path}: no such file or folder")
    suffix = path.suffix.lower()
    if path.is_file() and suffix == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: not a readable .npy array ({exc})") from exc
        return [Item(str(path), path.stem, as_landmarks(arr, name=str(path)))]
    if path.is_file() and suffix in VIDEO_EXTENSIONS | {".pose"}:
        from signlang.landmarks.extract import extract_video

        return [Item(str(path), path.stem, extract_video(path).landmarks)]
    if path.is_file() and suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as z:
                keys = set(z.files)
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: not a readable .npz ({exc})") from exc
        if "landmarks" in keys and "X" not in keys:
            from signlang.landmarks.store import read_clip

            clip = read_clip(path)
            return [Item(str(path), clip.clip_id, clip.landmarks)]
    from signlang.datasets.loaders import load_dataset

    clips = load_dataset(path)
    return [Item(str(path), str(cid), lm) for cid, lm in zip(clips.clip_ids, clips.landmarks)]


def top_k(probs: np.ndarray, classes: tuple[str, ...], k: int) -> list[dict[str, Any]]:
    """The ``k`` most probable signs of one ``probs (C,)`` row, most probable first."""
    order = np.argsort(-probs, kind="stable")[: max(1, min(k, len(classes)))]
    return [{"sign": classes[i], "prob": round(float(probs[i]), 6)} for i in order]


def iter_predictions(bundle: Any, items: list[Item], k: int) -> Iterator[dict[str, Any]]:
    """One result dict per item (``"error"`` instead of scores for a clip that fails)."""
    try:  # the fast path: the whole input as one batch
        probs_all = _probs(bundle, [it.landmarks for it in items])
    except ValueError:
        probs_all = None
    for i, item in enumerate(items):
        if probs_all is not None:
            probs = probs_all[i]
        else:  # some clip is bad: one at a time, so it cannot take the others down
            try:
                probs = _probs(bundle, [item.landmarks])[0]
            except ValueError as exc:
                yield {"input": item.input, "clip_id": item.clip_id, "error": str(exc)}
                continue
        yield {"input": item.input, "clip_id": item.clip_id, "top_k": top_k(probs, bundle.classes, k),
               "probs": [round(float(p), 6) for p in probs]}


def _probs(bundle: Any, clips: list[np.ndarray]) -> np.ndarray:
    """``(N, C)`` float64 rows summing to 1 over the bundle's classes."""
    from signlang.training.pipeline import normalize

    probs = np.asarray(bundle.predict_proba(normalize(clips, bundle.preprocessing)), dtype=np.float64)
    return probs / probs.sum(axis=1, keepdims=True)


def register(app: typer.Typer, benchmark_app: typer.Typer) -> None:
    @app.command("predict")
    def predict(
        inputs: list[Path] = typer.Argument(..., help="Videos, .pose, .npy / store .npz clips, or datasets (.npz with X, store folder)."),
        model: Path = typer.Option(..., "--model", help="Run folder written by `signlang train`."),
        k: int = typer.Option(5, "--top-k", min=1, help="How many signs to list per clip."),
        as_json: bool = typer.Option(False, "--json", help="One JSON object per line (index, top_k, probs)."),
    ) -> None:
        """Predict the top-k signs of every clip; a bad input prints an error line and the batch goes on."""
        with user_errors():
            from signlang.models.bundle import load_bundle

            bundle = load_bundle(model)
        failed = 0
        index = 0
        for path in inputs:
            try:
                items = read_inputs(path)
            except (ValueError, OSError) as exc:
                failed += 1
                _emit({"index": index, "input": str(path), "error": str(exc)}, as_json, bundle.classes)
                index += 1
                continue
            for result in iter_predictions(bundle, items, k):
                result = {"index": index, **result}
                failed += "error" in result
                _emit(result, as_json, bundle.classes)
                index += 1
        if index == 0:
            fail("no clips to predict")
        if failed:
            raise typer.Exit(1)


def _emit(result: dict[str, Any], as_json: bool, classes: tuple[str, ...]) -> None:
    if as_json:
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()
        return
    if "error" in result:
        typer.echo(f"error: [{result['index']}] {result['input']}: {result['error']}", err=True)
        return
    best = ", ".join(f"{t['sign']} {100 * t['prob']:.1f}%" for t in result["top_k"])
    typer.echo(f"[{result['index']}] {result['clip_id']}: {best}")
