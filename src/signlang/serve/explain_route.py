"""``POST /explain``: the explanation of one landmark clip, as JSON or as the heatmap PNG.

Body: ``{"landmarks": T x 75 x 3 or T x 258, "target": "SIGN" (optional)}`` (same landmark
rules as ``/predict/landmarks``). Answer: the ``explanation.json`` document (sign, prob,
frame_importance (T), landmark_importance (T x 75), ...); with ``?heatmap=true`` it also holds
``heatmap_png_base64``; with ``?format=png`` the answer is the heatmap itself (``image/png``).

The explainer (private copies of the bundle's networks) is built on the first request. Gradient
work is CPU-heavy, so it runs in a worker thread and one explanation runs at a time; a second
concurrent request gets ``503`` with ``Retry-After`` at once. An ONNX-backed service answers
``501``: explanations need the torch networks' gradients.
"""

# No `from __future__ import annotations`: the request model is built inside add_explain_route
# (serve.app imports this module), and FastAPI must see real classes, not strings, there.

import base64
import threading
from typing import Annotated, Any

from anyio import to_thread
from fastapi import FastAPI, Query
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field, field_validator


def add_explain_route(app: FastAPI) -> None:
    """Add ``POST /explain`` to an app made by :func:`signlang.serve.app.create_app`."""
    from signlang.serve.app import MAX_LANDMARK_FRAMES, ErrorResponse, ServiceError, parse_landmark_rows

    predictor = app.state.predictor
    state: dict[str, Any] = {}
    build_lock = threading.Lock()
    busy = threading.Lock()

    class ExplainRequest(BaseModel):
        """A landmark clip to explain and, optionally, the sign to explain (default: the predicted one)."""

        landmarks: Annotated[list[list[Any]], Field(min_length=1, max_length=MAX_LANDMARK_FRAMES,
                                                     description="T x 75 x 3 or T x 258 numbers; null or 0 = not detected.")]
        target: str | None = Field(None, description="Explain this sign instead of the predicted one.")

        @field_validator("landmarks", mode="after")
        @classmethod
        def _to_array(cls, value: list[list[Any]]) -> Any:
            return parse_landmark_rows(value)

    def explainer() -> Any:
        with build_lock:
            if "explainer" not in state:
                from signlang.explain.explainer import Explainer

                state["explainer"] = Explainer.from_predictor(predictor)
            return state["explainer"]

    def run(landmarks: Any, target: str | None, heatmap: bool, as_png: bool) -> tuple[dict[str, Any], bytes | None]:
        from signlang.explain.plots import render_heatmap
        from signlang.explain.report import explanation_json, title_for
        from signlang.inference.predictor import check_detectable

        check_detectable(landmarks, "landmarks")
        exp = explainer().explain(landmarks, target=target)
        png = render_heatmap(exp.landmark_importance, exp.frame_importance, title=title_for(exp)) if (heatmap or as_png) else None
        return explanation_json(exp), png

    @app.post("/explain", responses={415: {"model": ErrorResponse}, 422: {"model": ErrorResponse},
                                     501: {"model": ErrorResponse}, 503: {"model": ErrorResponse}})
    async def explain(
        body: ExplainRequest,
        heatmap: Annotated[bool, Query(description="Add the heatmap PNG (base64) to the JSON.")] = False,
        format: Annotated[str, Query(pattern="^(json|png)$", description="json (default) or png (the heatmap image).")] = "json",
    ) -> Any:
        """Which frames and landmarks decided the prediction (or ``target``) for a landmark clip."""
        from signlang.inference.predictor import DetectionError

        if getattr(predictor, "backend", "torch") != "torch":
            raise ServiceError(501, "not_supported", "explanations need the torch backend (gradients); this service runs ONNX")
        if not busy.acquire(blocking=False):
            raise ServiceError(503, "busy", "an explanation is already running; retry shortly", headers={"Retry-After": "1"})
        try:
            doc, png = await to_thread.run_sync(run, body.landmarks, body.target, heatmap, format == "png")
        except DetectionError as exc:
            raise ServiceError(422, "nothing_detected", str(exc)) from None
        except ValueError as exc:
            raise ServiceError(422, "invalid_request", str(exc)) from None
        finally:
            busy.release()
        if format == "png":
            return Response(png, media_type="image/png")
        if heatmap and png is not None:
            doc["heatmap_png_base64"] = base64.b64encode(png).decode("ascii")
        return JSONResponse(doc)
