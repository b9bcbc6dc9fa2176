"""``signlang predict``: top-k signs for videos, landmark clips or datasets of clips.

Inputs (read by :func:`signlang.datasets.formats.read_inputs`, one format registry): a video or a
folder of videos (landmarks extracted on the fly by :class:`signlang.landmarks.extract.Landmarker`), a ``.pose`` file, a ``.npy`` clip, a
landmark-store clip ``.npz``, an ``.npz`` of clips (``X``; labels not needed) or a store folder.
Every clip goes through :class:`signlang.inference.predictor.Predictor`, the same path as the
HTTP service. With ``--json`` each clip is one line
``{"index": i, "input": ..., "clip_id": ..., "top_k": [{"sign": s, "prob": p}, ...], "probs": [...]}``
with ``probs`` in the bundle's class order, ``low_confidence`` and ``unknown`` (the decision
policy's verdicts, :mod:`signlang.inference.policy`) and ``"rule": "no_person" | "no_hands"`` when
nobody / no hand was found and the vocabulary's no-sign class answered. Plain text shows the same
verdicts: ``unknown`` (a sign the model does not know) or ``unsure`` (below ``--min-confidence``).
An input that cannot be used gives a line with ``"error"`` naming it and ``"code"`` (the service's
error code), and the rest of the batch goes on. Exit status: 0 when every clip was answered, 1
when at least one could not be (its error is printed where its answer would be), 2 when no input
could be read at all (the convention of :mod:`signlang.cli._common`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer

from signlang.cli._common import BACKEND_HELP, EXIT_FAILURE, EXIT_USAGE, MODEL_OPTION, fail, model_dir, user_errors



def result_line(index: int, item: Any, prediction: Any, error: BaseException | None) -> dict[str, Any]:
    """The JSON line of one clip (an error line when ``prediction`` is None)."""
    from signlang.inference.predictor import error_code

    head = {"index": index, "input": item.input, "clip_id": item.clip_id}
    if prediction is None:
        return {**head, "error": str(error), "code": error_code(error) if error is not None else "invalid_input"}
    out = {**head, "top_k": [{"sign": s, "prob": round(p, 6)} for s, p in prediction.top_k],
           "probs": [round(float(p), 6) for p in prediction.probs], "hands_detected": round(prediction.hands_detected, 6),
           "low_confidence": bool(prediction.low_confidence), "unknown": bool(prediction.unknown)}
    if prediction.rule:
        out["rule"] = prediction.rule
    return out


def register(app: typer.Typer, benchmark_app: typer.Typer) -> None:
    @app.command("predict")
    def predict(
        inputs: list[Path] = typer.Argument(..., help="Videos or folders of videos, .pose, .npy / store .npz clips, .npz of clips (X; no labels needed), store folders."),
        model: str | None = MODEL_OPTION,
        k: int = typer.Option(5, "--top-k", min=1, help="How many signs to list per clip."),
        as_json: bool = typer.Option(False, "--json", help="One JSON object per line (index, top_k, probs)."),
        backend: str = typer.Option("auto", "--backend", help=BACKEND_HELP),
        min_confidence: float | None = typer.Option(None, "--min-confidence", min=0.0, max=1.0,
                                                    help="Flag an answer low_confidence below this top-1 probability (default: the bundle's, 0.5). "
                                                         "On people the model never saw, 0.9 flags most wrong answers (docs/benchmarks.md, calibration)."),
    ) -> None:
        """Predict the top-k signs of every clip; a bad input prints an error line and the batch goes on."""
        from signlang.datasets.formats import Item, read_inputs, with_landmarks
        from signlang.inference.predictor import Predictor
        from signlang.landmarks.extract import Landmarker

        with user_errors():
            predictor = Predictor(model_dir(model), backend=backend, top_k=k,
                                  progress=lambda msg: typer.echo(msg, err=True), min_confidence=min_confidence)
        failed = 0
        unreadable = 0  # inputs that could not be read at all (a missing file, an unknown format)
        index = 0
        with predictor, Landmarker(quiet=True) as landmarker:
            for path in inputs:
                try:
                    items = read_inputs(path)
                except (ValueError, OSError) as exc:
                    items = [Item(str(path), path.stem, error=exc if isinstance(exc, ValueError) else ValueError(str(exc)))]
                    unreadable += 1
                for item, prediction, error in predictor.predict_items(with_landmarks(items, landmarker), k):
                    result = result_line(index, item, prediction, error)
                    failed += "error" in result
                    _emit(result, as_json, predictor.min_confidence)
                    index += 1
        if index == 0:
            fail("no clips to predict")
        if failed:  # the exit status convention of cli._common: 2 = nothing could be read, 1 = some clips failed
            raise typer.Exit(EXIT_USAGE if failed == unreadable == index else EXIT_FAILURE)


RULE_NOTES = {"no_person": "nobody in the clip: the no-sign class", "no_hands": "no hand found: the no-sign class"}


def text_line(result: dict[str, Any], min_confidence: float) -> str:
    """The plain-text line of one answered clip: the verdict first when the model declines or is unsure."""
    best = ", ".join(f"{t['sign']} {100 * t['prob']:.1f}%" for t in result["top_k"])
    head = f"[{result['index']}] {result['clip_id']}: "
    if result.get("unknown"):
        return f"{head}unknown (not a sign this model knows; closest: {best})"
    if result.get("low_confidence"):
        return f"{head}unsure (below {100 * min_confidence:.0f}%): {best}"
    note = f" ({RULE_NOTES.get(result['rule'], result['rule'])})" if result.get("rule") else ""
    return f"{head}{best}{note}"


def _emit(result: dict[str, Any], as_json: bool, min_confidence: float) -> None:
    if as_json:
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()
        return
    if "error" in result:
        typer.echo(f"error: [{result['index']}] {result['error']}", err=True)
        return
    typer.echo(text_line(result, min_confidence))
