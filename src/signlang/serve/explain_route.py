"""``POST /explain``: the explanation of one landmark clip, as JSON or as the heatmap PNG.

Body: ``{"landmarks": T x 75 x 3 or T x 258, "target": "SIGN" (optional)}`` (same landmark
rules as ``/predict/landmarks``). Answer: the ``explanation.json`` document (sign, prob,
frame_importance (T), landmark_importance (T x 75), ...); with ``?heatmap=true`` it also holds
``heatmap_png_base64``; with ``?format=png`` the answer is the heatmap itself (``image/png``).

An :class:`fastapi.APIRouter` sharing the app's :class:`~signlang.serve.state.ServiceState`:
the heavy-work gate (videos and explanations; past it 503 + ``Retry-After``), the settings and
the metrics. The explainer (private copies of the served bundle's networks) is built on the
first request and rebuilt after a model reload. An ONNX-backed service answers ``501``:
explanations need the torch networks' gradients.
"""

from __future__ import annotations

import base64
import threading
from typing import Annotated, Any

from anyio import to_thread
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from signlang.serve.schemas import ExplainRequest, ServiceError, error_responses
from signlang.serve.state import service_of

router = APIRouter()
_explain_lock = threading.Lock()  # one gradient computation at a time per process


def _explain(predictor: Any, cache: dict[str, Any], landmarks: Any, target: str | None, want_png: bool) -> tuple[dict[str, Any], bytes | None]:
    from signlang.explain.explainer import Explainer
    from signlang.explain.plots import render_heatmap
    from signlang.explain.report import explanation_json, title_for
    _, no_sign_answer = predictor.screen(landmarks, "landmarks")  # the predictor's rule, as /predict/landmarks
    if no_sign_answer and target is None:
        target = predictor.no_sign
    with _explain_lock:
        if cache.get("for") is not predictor:
            cache["explainer"], cache["for"] = Explainer.from_predictor(predictor), predictor
        exp = cache["explainer"].explain(landmarks, target=target)
    png = render_heatmap(exp.landmark_importance, exp.frame_importance, title=title_for(exp)) if want_png else None
    return explanation_json(exp), png


@router.post("/explain", responses=error_responses(415, 422, 501, 503))
async def explain(
    request: Request,
    body: ExplainRequest,
    heatmap: Annotated[bool, Query(description="Add the heatmap PNG (base64) to the JSON.")] = False,
    format: Annotated[str, Query(pattern="^(json|png)$", description="json (default) or png (the heatmap image).")] = "json",
) -> Any:
    """Which frames and landmarks decided the prediction (or ``target``) for a landmark clip."""
    from signlang.inference.predictor import DetectionError

    service = service_of(request)
    if getattr(service.predictor, "backend", "torch") != "torch":
        raise ServiceError(501, "not_supported", "explanations need the torch backend (gradients); this service runs ONNX")
    cache = service.extras.setdefault("explainer", {})
    async with service.heavy:
        with service.slot.use() as predictor:
            try:
                doc, png = await to_thread.run_sync(_explain, predictor, cache, body.landmarks, body.target, heatmap or format == "png")
            except DetectionError as exc:
                raise ServiceError(422, "nothing_detected", str(exc)) from None
            except ValueError as exc:
                raise ServiceError(422, "invalid_request", str(exc)) from None
    if format == "png":
        return Response(png, media_type="image/png")
    if heatmap and png is not None:
        doc["heatmap_png_base64"] = base64.b64encode(png).decode("ascii")
    return JSONResponse(doc)
