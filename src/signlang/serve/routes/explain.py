"""``POST /explain``: the explanation of one landmark clip, as JSON or as the heatmap PNG.

Body: ``{"landmarks": T x 75 x 3 or T x 258, "target": "SIGN", "frame_method": ..., "landmark_method":
...}`` (all but ``landmarks`` optional; methods default to ``"occlusion"``; same landmark rules as
``/predict/landmarks``). Answer: the ``explanation.json`` document (sign, prob, frame_importance
(T), landmark_importance (T x 75), ...); with ``?heatmap=true`` it also holds
``heatmap_png_base64``; with ``?format=png`` the answer is the heatmap itself (``image/png``).

An :class:`fastapi.APIRouter` on the app's :class:`~signlang.serve.state.ServiceState`
(:data:`signlang.serve.deps.Service`): the model slot, the heavy-work gate (videos and explanations; past it 503 + ``Retry-After``), the settings and
the metrics. An explainer per method pair (on torch, with private copies of the served bundle's
networks) is built on its first request and rebuilt after a model reload. Occlusion (the default
for both maps) needs only the model's probabilities, so it runs on either backend; a gradient
method (Grad-CAM, integrated gradients) on an ONNX-backed service, or on a bundle without a
neural network, answers ``501`` naming the method and the reason.
"""

from __future__ import annotations

import base64
import threading
from typing import Annotated, Any

from anyio import to_thread
from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response

from signlang.serve.deps import Service
from signlang.serve.schemas import ExplainRequest, ServiceError, error_responses

router = APIRouter()
_explain_lock = threading.Lock()  # one explanation (hundreds of forward passes, or gradients) at a time per process


def _explain(predictor: Any, cache: dict[str, Any], body: ExplainRequest, want_png: bool) -> tuple[dict[str, Any], bytes | None]:
    from signlang.explain.explainer import Explainer
    from signlang.explain.report import explanation_json, title_for

    answer = predictor.predict_landmarks(body.landmarks, top_k=5)  # the predictor's policy, as /predict/landmarks
    target = body.target if body.target is not None else answer.top_k[0][0]
    methods = (body.frame_method, body.landmark_method)
    with _explain_lock:
        if cache.get("for") is not predictor:  # a reload: explainers of the old model go
            cache.clear()
            cache["for"] = predictor
        if methods not in cache:
            cache[methods] = Explainer.from_predictor(predictor, frame_method=methods[0], landmark_method=methods[1])
        exp = cache[methods].explain(body.landmarks, target=target)
    png = None
    if want_png:
        try:
            from signlang.explain.plots import render_heatmap
        except ImportError as exc:  # the landmarks-only install has no matplotlib
            raise ServiceError(501, "not_supported", f"the heatmap PNG needs matplotlib, which this server lacks ({exc}); "
                               "ask for the JSON (without heatmap / format=png) or pip install matplotlib") from None
        png = render_heatmap(exp.landmark_importance, exp.frame_importance, title=title_for(exp))
    return explanation_json(exp, answer.verdict()), png


@router.post("/explain", responses=error_responses(415, 422, 501, 503))
async def explain(
    service: Service,
    body: ExplainRequest,
    heatmap: Annotated[bool, Query(description="Add the heatmap PNG (base64) to the JSON.")] = False,
    format: Annotated[str, Query(pattern="^(json|png)$", description="json (default) or png (the heatmap image).")] = "json",
) -> Any:
    """Which frames and landmarks decided the prediction (or ``target``) for a landmark clip."""
    from signlang.explain.explainer import GradientsUnavailable
    from signlang.inference.policy import DetectionError

    cache = service.explainers
    async with service.heavy:
        with service.slot.use() as predictor:
            try:
                doc, png = await to_thread.run_sync(_explain, predictor, cache, body, heatmap or format == "png")
            except GradientsUnavailable as exc:
                raise ServiceError(501, "not_supported", str(exc)) from None
            except DetectionError as exc:
                raise ServiceError(422, "nothing_detected", str(exc)) from None
            except ValueError as exc:
                raise ServiceError(422, "invalid_request", str(exc)) from None
    if format == "png":
        return Response(png, media_type="image/png")
    if heatmap and png is not None:
        doc["heatmap_png_base64"] = base64.b64encode(png).decode("ascii")
    return JSONResponse(doc)
