"""The HTTP service, started for real with uvicorn on a free loopback port (in a thread)."""

from __future__ import annotations

import io
import re
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from bundle_fixtures import tiny_clips
from signlang.landmarks.layout import to_258


@pytest.fixture(scope="module")
def uploads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("uploads")


@pytest.fixture(scope="module")
def server(predictor, uploads: Path):
    from signlang.serve.app import ServiceSettings, create_app
    from signlang.serve.server import BackgroundServer

    app = create_app(predictor, ServiceSettings(max_upload_mb=1.0, max_concurrency=4, upload_root=str(uploads)))
    with BackgroundServer(app) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c


def _clip_json(i: int = 0) -> list:
    """A synthetic clip as T x 75 x 3 JSON with null for undetected points."""
    lm = tiny_clips().landmarks[i]
    return [[[None if np.isnan(v) else float(v) for v in pt] for pt in frame] for frame in lm]


def _check_answer(body: dict[str, Any], classes: tuple[str, ...]) -> None:
    assert set(body) == {"top_k", "hands_detected", "frames", "timings_ms", "low_confidence", "unknown"}
    assert set(body["timings_ms"]) == {"decode", "landmarks", "features", "model", "total"}
    assert 1 <= len(body["top_k"]) <= 5
    probs = [t["prob"] for t in body["top_k"]]
    assert probs == sorted(probs, reverse=True) and all(0.0 <= p <= 1.0 for p in probs)
    assert {t["sign"] for t in body["top_k"]} <= set(classes)
    assert 0.0 < body["hands_detected"] <= 1.0 and body["frames"] > 0


def test_landmarks_both_layouts_match_the_predictor(client, predictor) -> None:
    lm = tiny_clips().landmarks[0]
    expected = predictor.predict_landmarks(lm, 4)
    r1 = client.post("/predict/landmarks", params={"k": 4}, json={"landmarks": _clip_json(0)})
    r2 = client.post("/predict/landmarks", params={"k": 4}, json={"landmarks": to_258(lm).tolist()})
    for r in (r1, r2):
        assert r.status_code == 200, r.text
        body = r.json()
        _check_answer(body, predictor.classes)
        assert [t["sign"] for t in body["top_k"]] == [s for s, _ in expected.top_k]
        np.testing.assert_allclose([t["prob"] for t in body["top_k"]], [p for _, p in expected.top_k], atol=1e-6)
        assert body["frames"] == lm.shape[0]


@pytest.mark.video
def test_real_video_upload(client, predictor, real_videos_dir: Path, uploads: Path) -> None:
    video = real_videos_dir / "slp_pose_SOUP.mp4"
    with open(video, "rb") as fh:
        r = client.post("/predict", files={"video": ("../../etc/evil name.mp4", fh, "video/mp4")})
    assert r.status_code == 200, r.text
    body = r.json()
    _check_answer(body, predictor.classes)
    assert body["timings_ms"]["decode"] > 0 and body["timings_ms"]["landmarks"] > 0
    assert list(uploads.iterdir()) == []  # the private upload folder is gone



@pytest.mark.video
def test_shutdown_releases_the_mediapipe_graphs(predictor, real_videos_dir: Path, uploads: Path) -> None:
    from fastapi.testclient import TestClient

    from signlang.serve.app import ServiceSettings, create_app

    app = create_app(predictor, ServiceSettings(upload_root=str(uploads)))
    with TestClient(app) as tc, open(real_videos_dir / "slp_pose_SOUP.mp4", "rb") as fh:
        assert tc.post("/predict", files={"video": ("soup.mp4", fh, "video/mp4")}).status_code == 200
        assert app.state.service.landmarker._graphs.qsize() == 1  # kept for the next video
    assert app.state.service.landmarker._graphs.qsize() == 0  # closed by the lifespan's shutdown

def test_signs_health_docs(client, predictor) -> None:
    assert client.get("/signs").json() == {"signs": list(predictor.classes), "count": len(predictor.classes)}
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["backend"] == "torch" and health["version"]
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert "video" in spec["paths"]["/predict"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]


@pytest.mark.parametrize(
    ("payload", "field", "fragment"),
    [
        ({"landmarks": [[[0.1, 0.2]] * 75]}, "landmarks[0][0]", "3 coordinates"),
        ({"landmarks": [[[0.1, 0.2, 0.3]] * 75, [[0.1, 0.2, 0.3]] * 74]}, "landmarks[1]", "same length"),
        ({"landmarks": [[[0.1, "x", 0.3]] * 75]}, "landmarks[0][0][1]", "number"),
        ({"landmarks": [[0.0] * 100]}, "landmarks[0]", "258 numbers"),
        ({"landmarks": [[[[0.0]]]]}, "landmarks", "T x 75 x 3"),
        ({"landmarks": "abc"}, "landmarks", "valid array"),
        ({"frames": []}, "landmarks", "required"),
    ],
)
def test_malformed_landmarks_name_the_field(client, payload, field: str, fragment: str) -> None:
    r = client.post("/predict/landmarks", json=payload)
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert detail.startswith(field) and fragment.lower() in detail.lower(), detail


def test_invalid_json_and_oversize_json(client) -> None:
    r = client.post("/predict/landmarks", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["detail"].startswith("body: Invalid JSON")
    r = client.post("/predict/landmarks", content=b"[" + b"0," * 600_000 + b"0]", headers={"content-type": "application/json"})
    assert r.status_code == 413 and "limit" in r.json()["detail"]


def test_no_hands_and_no_person_are_422(client) -> None:
    lm = tiny_clips().landmarks[0].copy()
    lm[:, 33:] = np.nan
    r = client.post("/predict/landmarks", json={"landmarks": to_258(lm).tolist()})
    assert r.status_code == 422 and "no hand" in r.json()["detail"]
    r = client.post("/predict/landmarks", json={"landmarks": np.zeros((10, 258)).tolist()})
    assert r.status_code == 422 and "no person" in r.json()["detail"]


def test_bad_uploads(client, uploads: Path) -> None:
    r = client.post("/predict", files={"video": ("empty.mp4", b"", "video/mp4")})
    assert r.status_code == 422 and "empty" in r.json()["detail"]
    r = client.post("/predict", files={"video": ("notes.mp4", b"this is plain text, not a video\n" * 20, "video/mp4")})
    assert r.status_code == 415 and "plain text" in r.json()["detail"]
    assert r.json()["detail"].startswith("uploaded file:") and str(uploads) not in r.json()["detail"]
    r = client.post("/predict", files={"other": ("a.mp4", b"abc", "video/mp4")})
    assert r.status_code == 422 and "'video'" in r.json()["detail"]
    r = client.post("/predict", content=b"not multipart", headers={"content-type": "application/octet-stream"})
    assert r.status_code == 422 and "multipart" in r.json()["detail"]
    assert list(uploads.iterdir()) == []


def test_oversize_upload_is_413_by_header_and_while_streaming(client, uploads: Path) -> None:
    big = b"\0" * (2 * 1024 * 1024)  # limit is 1 MB
    r = client.post("/predict", files={"video": ("big.mp4", big, "video/mp4")})
    assert r.status_code == 413 and "limit" in r.json()["detail"]

    boundary = "b0undary"

    def chunked():  # no Content-Length: the server must count the bytes itself
        yield f'--{boundary}\r\nContent-Disposition: form-data; name="video"; filename="x.mp4"\r\n\r\n'.encode()
        for _ in range(64):
            yield b"\1" * 65536
        yield f"\r\n--{boundary}--\r\n".encode()

    r = client.post("/predict", content=chunked(), headers={"content-type": f"multipart/form-data; boundary={boundary}"})
    assert r.status_code == 413 and "limit" in r.json()["detail"]
    assert list(uploads.iterdir()) == []


def test_metrics_count_requests(client) -> None:
    before = client.get("/metrics").text
    client.get("/signs")
    client.post("/predict/landmarks", json={"landmarks": "bad"})
    text = client.get("/metrics").text

    def count(body: str, route: str, status: str) -> float:
        m = re.search(rf'signlang_requests_total\{{method="\w+",route="{re.escape(route)}",status="{status}"\}} ([0-9.]+)', body)
        return float(m.group(1)) if m else 0.0

    assert count(text, "/signs", "200") == count(before, "/signs", "200") + 1
    assert count(text, "/predict/landmarks", "422") == count(before, "/predict/landmarks", "422") + 1
    assert "signlang_stage_seconds_bucket" in text and "signlang_request_seconds_count" in text


class _GatedPredictor:
    """The real predictor, but ``predict_batch`` waits for a gate (to hold a batch in flight)."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.entered = threading.Event()
        self.release = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def predict_batch(self, *args: Any, **kwargs: Any):
        self.entered.set()
        assert self.release.wait(30)
        return self.inner.predict_batch(*args, **kwargs)


def test_queue_then_503_when_full_or_past_the_deadline(predictor) -> None:
    from signlang.serve.app import ServiceSettings, create_app
    from signlang.serve.server import BackgroundServer

    gated = _GatedPredictor(predictor)
    app = create_app(gated, ServiceSettings(max_concurrency=1, max_queue=1, queue_deadline_s=1.5))
    payload = {"landmarks": to_258(tiny_clips().landmarks[1]).tolist()}
    with BackgroundServer(app) as srv, httpx.Client(base_url=srv.url, timeout=60) as c:
        first: dict[str, Any] = {}
        t1 = threading.Thread(target=lambda: first.update(r=c.post("/predict/landmarks", json=payload)))
        t1.start()
        assert gated.entered.wait(30)  # the first clip runs (and blocks)
        second: dict[str, Any] = {}
        t2 = threading.Thread(target=lambda: second.update(r=c.post("/predict/landmarks", json=payload)))
        t2.start()  # the second waits in the queue (1 slot)
        deadline = time.monotonic() + 10
        while app.state.service.batcher.queued_clips < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        start = time.perf_counter()
        r = c.post("/predict/landmarks", json=payload)  # the queue is full: refused at once
        assert time.perf_counter() - start < 1.0
        assert r.status_code == 503 and r.headers["retry-after"] == "1" and "queue is full" in r.json()["detail"]
        t2.join(30)  # still waiting when its 1.5 s deadline passed: 503
        assert second["r"].status_code == 503 and "deadline" in second["r"].json()["detail"]
        gated.release.set()
        t1.join(30)
        assert first["r"].status_code == 200  # what started, finishes
        assert c.post("/predict/landmarks", json=payload).status_code == 200
        assert c.get("/ready").json() == {"ready": True, "reason": "ok"}
        text = c.get("/metrics").text
        assert 'signlang_rejected_total{reason="queue_full"} 1.0' in text
        assert 'signlang_rejected_total{reason="deadline"} 1.0' in text


def test_concurrent_clips_are_batched_and_answer_alike(predictor) -> None:
    """50 clients at once: answers equal the one-by-one answers, and some model calls hold > 1 clip."""
    from concurrent.futures import ThreadPoolExecutor

    from signlang.serve.app import ServiceSettings, create_app
    from signlang.serve.server import BackgroundServer

    clips = tiny_clips().landmarks
    expected = [predictor.predict_landmarks(c, 3) for c in clips]
    app = create_app(predictor, ServiceSettings(max_concurrency=1, max_batch=16, batch_window_ms=5))
    with BackgroundServer(app) as srv, httpx.Client(base_url=srv.url, timeout=60,
                                                    limits=httpx.Limits(max_connections=64)) as c:
        bodies = [_npy(clips[i % len(clips)]) for i in range(50)]
        with ThreadPoolExecutor(25) as pool:
            answers = list(pool.map(lambda b: c.post("/predict/landmarks", params={"k": 3}, content=b,
                                                     headers={"content-type": "application/x-npy"}), bodies))
        for i, r in enumerate(answers):
            assert r.status_code == 200, r.text
            exp = expected[i % len(clips)]
            assert [t["sign"] for t in r.json()["top_k"]] == [s for s, _ in exp.top_k]
            np.testing.assert_allclose([t["prob"] for t in r.json()["top_k"]], [p for _, p in exp.top_k], atol=1e-5)
        text = c.get("/metrics").text
    count = float(re.search(r"signlang_batch_size_count ([0-9.]+)", text).group(1))
    total = float(re.search(r"signlang_batch_size_sum ([0-9.]+)", text).group(1))
    assert total == 50 and count < 50  # fewer model calls than clips: batching happened


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.asarray(array), allow_pickle=False)
    return buf.getvalue()


@pytest.mark.parametrize("layout", ["75x3", "225", "258"])
def test_npy_single_clip_matches_json(client, predictor, layout: str) -> None:
    lm = tiny_clips().landmarks[2]
    arr = {"75x3": lm, "225": lm.reshape(len(lm), -1), "258": to_258(lm)}[layout]
    r = client.post("/predict/landmarks", params={"k": 4}, content=_npy(arr), headers={"content-type": "application/x-npy"})
    j = client.post("/predict/landmarks", params={"k": 4}, json={"landmarks": _clip_json(2)})
    assert r.status_code == 200 and j.status_code == 200, r.text
    assert [t["sign"] for t in r.json()["top_k"]] == [t["sign"] for t in j.json()["top_k"]]
    np.testing.assert_allclose([t["prob"] for t in r.json()["top_k"]], [t["prob"] for t in j.json()["top_k"]], atol=1e-6)


def test_npy_batch_answers_in_order_and_one_bad_clip_stays_alone(client, predictor) -> None:
    clips = tiny_clips().landmarks
    batch = np.stack([to_258(c[:24]) for c in clips[:5]])
    batch[3, :, 132:] = 0.0  # no hands in clip 3
    r = client.post("/predict/landmarks", params={"k": 2}, content=_npy(batch), headers={"content-type": "application/x-npy"})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["index"] for x in results] == [0, 1, 2, 3, 4]
    assert results[3]["prediction"] is None and results[3]["error"]["error"] == "nothing_detected"
    for i in (0, 1, 2, 4):
        exp = predictor.predict_landmarks(clips[i][:24], 2)
        assert [t["sign"] for t in results[i]["prediction"]["top_k"]] == [s for s, _ in exp.top_k]


@pytest.mark.parametrize("layout", ["75x3", "258"])
def test_raw_float32_clip_and_batch_match_the_npy_answers(client, layout: str) -> None:
    clips = tiny_clips().landmarks
    one = clips[1] if layout == "75x3" else to_258(clips[1])
    batch = np.stack([to_258(c[:20]) for c in clips[:3]])
    raw = {"content-type": "application/octet-stream"}
    npy = {"content-type": "application/x-npy"}
    shape = ",".join(map(str, one.shape))
    r = client.post("/predict/landmarks", params={"k": 3, "shape": shape}, content=one.astype("<f4").tobytes(), headers=raw)
    n = client.post("/predict/landmarks", params={"k": 3}, content=_npy(one), headers=npy)
    assert r.status_code == 200 and n.status_code == 200, r.text
    assert r.json()["top_k"] == n.json()["top_k"] and r.json()["frames"] == len(one)
    rb = client.post("/predict/landmarks", params={"shape": "3,20,258"}, content=batch.astype("<f4").tobytes(), headers=raw)
    nb = client.post("/predict/landmarks", content=_npy(batch), headers=npy)
    assert rb.status_code == 200 and [x["prediction"]["top_k"] for x in rb.json()["results"]] == \
        [x["prediction"]["top_k"] for x in nb.json()["results"]]


def test_raw_float32_refusals_name_the_shape_or_the_body(client) -> None:
    raw = {"content-type": "application/octet-stream"}
    body = np.zeros((8, 258), "<f4").tobytes()
    for params, content, fragment in [({}, body, "shape: a raw float32 body"),
                                      ({"shape": "8,258"}, body[:-4], "body: 8252 bytes do not hold float32 values of shape [8, 258]"),
                                      ({"shape": "2064"}, body, "query[shape]"),  # one number is no clip shape
                                      ({"shape": "8,258,1"}, body, "body: expected one clip (T, ...) or a batch"),
                                      ({"shape": "8,86,3"}, body, "body: expected one clip"),
                                      ({"shape": "8;258"}, body, "query[shape]")]:
        r = client.post("/predict/landmarks", params=params, content=content, headers=raw)
        assert r.status_code == 422 and r.json()["error"] == "invalid_request" and fragment in r.json()["detail"], (params, r.text)
    schema = client.get("/openapi.json").json()["paths"]["/predict/landmarks"]["post"]
    assert "application/octet-stream" in schema["requestBody"]["content"] and "shape" in {p["name"] for p in schema["parameters"]}


def test_json_fast_path_equals_the_pydantic_path_and_keeps_its_errors() -> None:
    import json

    from pydantic import ValidationError

    from signlang.serve.schemas import LandmarkRequest, parse_landmark_json, validation_message

    for i in range(3):
        body = json.dumps({"landmarks": _clip_json(i)}).encode()
        np.testing.assert_array_equal(parse_landmark_json(body), LandmarkRequest.model_validate_json(body).landmarks)
    for body in [b'{"landmarks": [[1, 2]]}', b'{"landmarks": [[1, "x"]]}', b'{"landmarks": []}', b'{"other": 1}',
                 b'{"landmarks": [[1, 2]', b"[1]", b'{"landmarks": [[[0.1, 0.2]]]}']:
        with pytest.raises(ValidationError) as fast:
            parse_landmark_json(body)
        with pytest.raises(ValidationError) as slow:
            LandmarkRequest.model_validate_json(body)
        assert validation_message(fast.value.errors()) == validation_message(slow.value.errors()), body  # what the client reads


def test_npy_refuses_pickles_without_unpickling_and_bad_shapes(client, tmp_path: Path) -> None:
    import pickle

    marker = tmp_path / "unpickled"

    class Boom:
        def __reduce__(self):
            return (marker.touch, ())

    buf = io.BytesIO()
    np.save(buf, np.array([Boom()], dtype=object), allow_pickle=True)
    assert pickle.loads(buf.getvalue()[buf.getvalue().index(b"\n") + 1:]) is not None and marker.exists()  # a live pickle
    marker.unlink()
    npy = {"content-type": "application/x-npy"}
    r = client.post("/predict/landmarks", content=buf.getvalue(), headers=npy)
    assert r.status_code == 422 and "pickle" in r.json()["detail"] and not marker.exists()
    for arr, fragment in [(np.zeros((10, 74, 3), np.float32), "shape"), (np.zeros((10, 100), np.float32), "shape"),
                          (np.zeros((5,), np.float32), "shape"), (np.array(["a", "b"]), "dtype"),
                          (np.full((8, 258), np.inf, np.float32), "infinite")]:
        r = client.post("/predict/landmarks", content=_npy(arr), headers=npy)
        assert r.status_code == 422 and fragment in r.json()["detail"], (arr.shape, r.text)
    for raw in (b"", b"\x93NUMPY garbage", b"not an npy at all"):
        r = client.post("/predict/landmarks", content=raw, headers=npy)
        assert r.status_code == 422 and ".npy" in r.json()["detail"]
    r = client.post("/predict/landmarks", content=b"abc", headers={"content-type": "text/plain"})
    assert r.status_code == 415


def test_health_and_ready_are_distinct(client, predictor) -> None:
    h = client.get("/health").json()
    assert h["status"] == "ok" and len(h["model_id"]) == 16 and h["model_version"] != "unknown" and h["backend"] == "torch"
    assert client.get("/ready").json()["ready"] is True
    assert f'model_id="{h["model_id"]}"' in client.get("/metrics").text


def test_hand_made_bad_json_bodies(client) -> None:
    frame = ", ".join(["0.5"] * 258)
    cases = {
        "infinity": f'{{"landmarks": [[{frame.replace("0.5", "Infinity", 1)}]]}}',
        "nan literal": f'{{"landmarks": [[{frame.replace("0.5", "NaN", 1)}], [{frame}]]}}',
        "deeply nested": '{"landmarks": ' + "[" * 100_000 + "]" * 100_000 + "}",
        "nested objects": '{"landmarks": [[' + '{"a":' * 5000 + "1" + "}" * 5000 + "]]}",
        "huge number": f'{{"landmarks": [[1e999, {frame[5:]}]]}}',
        "truncated": '{"landmarks": [[0.5, 0.5',
    }
    for name, body in cases.items():
        r = client.post("/predict/landmarks", content=body.encode(), headers={"content-type": "application/json"})
        if name == "nan literal":  # NaN reads as "not detected": a clip with one missing value is answered
            assert r.status_code == 200 and r.json()["frames"] == 2, (name, r.text[:300])
            continue
        assert r.status_code == 422 and r.json()["error"] == "invalid_request", (name, r.status_code, r.text[:300])
