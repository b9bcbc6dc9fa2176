"""Fuzzing every route of a real ``signlang serve`` (the ONNX backend, started with the arguments of the
container's ``CMD`` in the Dockerfile; host, port and model folder swapped for loopback, a free port
and the shipped model's export) with bodies derived from the service's own OpenAPI schema.

A seeded generator walks ``/openapi.json``: for every operation it fills each query parameter and
each request body from its schema (required fields, types, enums, bounds, ``anyOf``), with real
landmark clips (traduttore_asl_mediapipe, every layout of :data:`signlang.landmarks.layout.LAYOUTS`)
where the schema asks for the clip, signs from ``/signs`` where it asks for a sign, the served folder
where it asks for a model folder and a real video where it asks for one. Those VALID requests must be
answered 200 (or the documented 501 of a gradient method on ONNX). Each valid body is then MUTATED
(a field dropped, retyped or added, values made non-finite, shapes broken, bytes truncated, the
content type swapped, out-of-range parameters): those must get a documented 4xx with the JSON error
body. Nothing may get a 5xx other than that 501, and every request must end with an HTTP status (no
dropped connection). Bounded in count (rounds) and wall time.

Not covered here: the container itself (podman is not installed on this machine; the image's own
build and run are tests/test_container.py, slow, skipped without podman) — so the process runs with
this environment's packages (torch present), not the image's pinned ONNX-only set.
"""

from __future__ import annotations

import copy
import io
import json
import re
import socket
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from signlang.explain.explainer import gradient_methods
from signlang.landmarks.layout import LAYOUTS, to_258, to_543, to_1662

pytestmark = pytest.mark.data
REPO = Path(__file__).resolve().parents[1]

# (T, 75, 3) -> each accepted layout (the test fails when a layout is added without an encoder here)
ENCODE = {
    "75x3": lambda lm: lm,
    "225": lambda lm: lm.reshape(*lm.shape[:-2], -1),
    "258": lambda lm: to_258(lm),
    "1662": lambda lm: to_1662(lm),
    "543x3": lambda lm: to_543(lm),
    "1629": lambda lm: to_543(lm).reshape(*lm.shape[:-2], -1),
}


def container_command() -> list[str]:
    """The Dockerfile's ``CMD`` (exec form) as a list."""
    text = (REPO / "Dockerfile").read_text(encoding="utf-8")
    m = re.search(r"^CMD\s+(\[.*\])\s*$", text, re.M)
    assert m, "the Dockerfile has no exec-form CMD"
    return json.loads(m.group(1))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    """``signlang serve`` as the container's CMD starts it, on loopback, serving the shipped model's ONNX
    export (what the image runs with that export mounted at /model: ``model.onnx``, the one graph, for
    predictions; the split files for explanations); yields (url, model folder)."""
    from signlang.inference.pretrained import PRETRAINED_DIR

    served_model = PRETRAINED_DIR / "asl-cafe" / "onnx"
    cmd = container_command()
    assert cmd[:2] == ["signlang", "serve"] and cmd[cmd.index("--backend") + 1] == "onnx", cmd
    swap = {"--host": "127.0.0.1", "--port": str(_free_port()), "--model": str(served_model)}
    args = [swap.get(cmd[i - 1], a) if i > 0 else a for i, a in enumerate(cmd)]
    log = tmp_path_factory.mktemp("fuzz") / "serve.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "signlang", *args[1:]], stdout=out, stderr=subprocess.STDOUT,
                                cwd=tmp_path_factory.mktemp("cwd"))
    url = f"http://127.0.0.1:{swap['--port']}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, f"signlang serve exited: {log.read_text()[-2000:]}"
            try:
                if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "signlang serve did not become ready"
            time.sleep(0.2)
        yield url, served_model
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


@dataclass
class Case:
    method: str
    path: str
    params: dict[str, Any] = field(default_factory=dict)
    content: bytes | None = None
    ctype: str | None = None
    files: dict[str, Any] | None = None
    valid: bool = True
    what: str = "valid"


class Fuzzer:
    """Requests for every operation of an OpenAPI document: valid ones from the schema, then mutations."""

    def __init__(self, api: dict[str, Any], rng: np.random.Generator, clips: list[np.ndarray], signs: list[str],
                 model: Path, videos: list[Path]) -> None:
        self.api, self.rng, self.clips, self.signs, self.model, self.videos = api, rng, clips, signs, model, videos

    # --- values from schemas -------------------------------------------------------------------
    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            node: Any = self.api
            for part in schema["$ref"].lstrip("#/").split("/"):
                node = node[part]
            schema = node
        return schema

    def clip(self, layout: str | None = None, frames: int | None = None) -> np.ndarray:
        """A real clip (T, 75, 3), cropped to ``frames``, in ``layout`` (default: a random accepted one)."""
        lm = self.clips[int(self.rng.integers(len(self.clips)))]
        t = frames or int(self.rng.integers(4, lm.shape[0] + 1))
        lay = layout or str(self.rng.choice([lay.name for lay in LAYOUTS]))
        return np.asarray(ENCODE[lay](lm[:t]), dtype=np.float32)

    def value(self, schema: dict[str, Any], name: str = "") -> Any:
        schema = self.resolve(schema)
        if name == "landmarks":  # the clip: a real one, in a layout JSON carries (75 x 3 with null, or 258 flat)
            arr = self.clip(layout=str(self.rng.choice(["75x3", "258"])))
            rows = arr.round(5).tolist()
            return json.loads(json.dumps(rows).replace("NaN", "null"))
        if name == "target":
            return str(self.rng.choice(self.signs)) if self.rng.random() < 0.7 else None
        if name == "model":
            return str(self.model) if self.rng.random() < 0.5 else None
        for key in ("anyOf", "oneOf"):
            if key in schema:
                options = [self.resolve(s) for s in schema[key]]
                non_null = [s for s in options if s.get("type") != "null"]
                return self.value(non_null[int(self.rng.integers(len(non_null)))], name) if non_null else None
        if "enum" in schema:
            return schema["enum"][int(self.rng.integers(len(schema["enum"])))]
        if "const" in schema:
            return schema["const"]
        kind = schema.get("type")
        if kind == "object":
            required = set(schema.get("required", ()))
            return {k: self.value(s, k) for k, s in schema.get("properties", {}).items()
                    if k in required or self.rng.random() < 0.6}
        if kind == "integer":
            lo = int(schema.get("minimum", 0))
            return int(self.rng.integers(lo, int(schema.get("maximum", lo + 10)) + 1))
        if kind == "number":
            return float(self.rng.uniform(schema.get("minimum", 0.0), schema.get("maximum", 1.0)))
        if kind == "boolean":
            return bool(self.rng.random() < 0.5)
        if kind == "string":
            if "pattern" in schema:
                m = re.fullmatch(r"\^\(([\w|]+)\)\$", schema["pattern"])  # an alternation such as ^(json|png)$
                if m:
                    return str(self.rng.choice(m.group(1).split("|")))
                candidate = schema.get("default")  # else only a default that matches (a shape is set by its body)
                return candidate if isinstance(candidate, str) and re.fullmatch(schema["pattern"], candidate) else None
            return schema.get("default") or "x"
        if kind == "array":
            return [self.value(schema.get("items", {})) for _ in range(int(schema.get("minItems", 1)))]
        return None

    def params(self, op: dict[str, Any], skip: set[str] = frozenset()) -> dict[str, Any]:
        out = {}
        for p in op.get("parameters", []):
            if p.get("in") == "query" and p["name"] not in skip and (p.get("required") or self.rng.random() < 0.5):
                v = self.value(p.get("schema", {}), p["name"])
                if v is not None:
                    out[p["name"]] = json.dumps(v) if isinstance(v, bool) else v
        return out

    # --- cases ---------------------------------------------------------------------------------
    def valid(self, path: str, method: str, op: dict[str, Any], videos: bool) -> list[Case]:
        body = op.get("requestBody")
        if body is None:
            return [Case(method, path, self.params(op))]
        cases = []
        for ctype, media in body["content"].items():
            schema = self.resolve(media.get("schema", {}))
            if ctype == "application/json":
                doc = self.value(schema)
                cases.append(Case(method, path, self.params(op), json.dumps(doc).encode(), ctype))
            elif ctype == "application/x-npy":
                batch = self.rng.random() < 0.4
                arr = (np.stack([self.clip(layout="258", frames=12) for _ in range(int(self.rng.integers(1, 5)))])
                       if batch else self.clip())
                buf = io.BytesIO()
                np.save(buf, arr.astype(str(self.rng.choice(["float32", "float64"]))), allow_pickle=False)
                cases.append(Case(method, path, self.params(op, {"shape"}), buf.getvalue(), ctype))
            elif ctype == "application/octet-stream":
                arr = self.clip() if self.rng.random() < 0.6 else np.stack([self.clip(layout="225", frames=10) for _ in range(3)])
                params = {**self.params(op, {"shape"}), "shape": ",".join(map(str, arr.shape))}
                cases.append(Case(method, path, params, arr.astype("<f4").tobytes(), ctype))
            elif ctype == "multipart/form-data":
                if videos:
                    (name, part), = ((k, v) for k, v in schema["properties"].items() if v.get("format") == "binary")
                    video = self.videos[int(self.rng.integers(len(self.videos)))]
                    cases.append(Case(method, path, self.params(op), files={name: (video.name, video.read_bytes(), "video/mp4")}))
            else:
                raise AssertionError(f"{method} {path}: no generator for request content {ctype!r}")
        return cases

    def mutate(self, case: Case, op: dict[str, Any]) -> Case:
        """One mutation of a valid case (a bad request the service must refuse with a 4xx)."""
        bad = copy.deepcopy(case)
        bad.valid = False
        options = []
        for p in op.get("parameters", []):
            s = self.resolve(p.get("schema", {}))
            if s.get("type") == "integer" and "maximum" in s:
                options.append(("param_over_max", lambda c, n=p["name"], s=s: c.params.update({n: s["maximum"] + 1})))
                options.append(("param_not_int", lambda c, n=p["name"]: c.params.update({n: "many"})))
            if "pattern" in s:
                options.append(("param_off_pattern", lambda c, n=p["name"]: c.params.update({n: "-1,?"})))
        if case.ctype == "application/json" and case.content:
            doc = json.loads(case.content)
            if "landmarks" in doc:
                options += [
                    ("drop_landmarks", lambda c, d=doc: setattr(c, "content", json.dumps({k: v for k, v in d.items() if k != "landmarks"}).encode())),
                    ("landmarks_string", lambda c, d=doc: setattr(c, "content", json.dumps({**d, "landmarks": "clip"}).encode())),
                    ("landmarks_empty", lambda c, d=doc: setattr(c, "content", json.dumps({**d, "landmarks": []}).encode())),
                    ("ragged_frame", lambda c, d=doc: setattr(c, "content", json.dumps({**d, "landmarks": [d["landmarks"][0][:-1]] + d["landmarks"][1:]}).encode())),
                    ("text_in_frame", lambda c, d=doc: setattr(c, "content", json.dumps({**d, "landmarks": [["x"] + d["landmarks"][0][1:]]}).encode())),
                    ("infinite_value", lambda c: setattr(c, "content", re.sub(rb"(\d)\]", rb"\1e999]", c.content, count=1))),
                    ("wrong_point_size", lambda c, d=doc: setattr(c, "content", json.dumps({**d, "landmarks": [[[0.5, 0.5]] * 75]}).encode())),
                ]
            for key, s in self.resolve(self.api_body_schema(op)).get("properties", {}).items():
                if "enum" in self.resolve(s) or key == "target":
                    options.append((f"{key}_unknown", lambda c, d=doc, k=key: setattr(c, "content", json.dumps({**d, k: "no-such-value"}).encode())))
            options.append(("truncated_json", lambda c: setattr(c, "content", c.content[: len(c.content) // 2])))
            options.append(("not_an_object", lambda c: setattr(c, "content", b"[1, 2, 3]")))
            if "model" in self.resolve(self.api_body_schema(op)).get("properties", {}):
                options.append(("model_not_a_folder", lambda c, d=doc: setattr(c, "content", json.dumps({**d, "model": "/no/such/model"}).encode())))
        if case.ctype == "application/x-npy":
            options += [
                ("npy_truncated", lambda c: setattr(c, "content", c.content[: len(c.content) - 7])),
                ("npy_pickle", lambda c: setattr(c, "content", _npy(np.array([{"a": 1}], dtype=object), pickle=True))),
                ("npy_complex", lambda c: setattr(c, "content", _npy(self.clip().astype(np.complex64)))),
                ("npy_wrong_tail", lambda c: setattr(c, "content", _npy(np.zeros((5, 74, 3), np.float32)))),
                ("npy_no_frames", lambda c: setattr(c, "content", _npy(np.zeros((0, 258), np.float32)))),
                ("npy_infinite", lambda c: setattr(c, "content", _npy(np.where(np.arange(258) == 3, np.inf, self.clip(layout="258"))))),
                ("npy_too_many_clips", lambda c: setattr(c, "content", _npy(np.zeros((257, 1, 225), np.float32)))),
                ("random_bytes", lambda c: setattr(c, "content", self.rng.bytes(int(self.rng.integers(1, 300))))),
            ]
        if case.ctype == "application/octet-stream":
            options += [
                ("raw_short", lambda c: setattr(c, "content", c.content[:-4])),
                ("raw_no_shape", lambda c: c.params.pop("shape", None)),
                ("raw_shape_no_layout", lambda c: c.params.update({"shape": f"{len(c.content) // 4}"})),
                ("raw_shape_wrong_layout", lambda c: c.params.update({"shape": f"{len(c.content) // 28},7"})),
            ]
        if case.content is not None and case.ctype is not None:
            other = {"application/json": "application/x-npy"}.get(case.ctype, "application/json")
            options.append(("content_type_swapped", lambda c, o=other: setattr(c, "ctype", o)))
            options.append(("content_type_unknown", lambda c: setattr(c, "ctype", "text/plain")))
        if case.files is not None:
            (name, (fname, data, mime)), = case.files.items()
            options += [
                ("video_empty", lambda c, n=name, f=fname: setattr(c, "files", {n: (f, b"", "video/mp4")})),
                ("video_not_a_video", lambda c, n=name: setattr(c, "files", {n: ("clip.mp4", b"not a video at all" * 20, "video/mp4")})),
                ("video_wrong_field", lambda c, f=fname, d=data: setattr(c, "files", {"file": (f, d[:2000], "video/mp4")})),
                ("video_truncated", lambda c, n=name, f=fname, d=data: setattr(c, "files", {n: (f, d[: len(d) // 3], "video/mp4")})),
            ]
        if not options:
            return None  # type: ignore[return-value]
        bad.what, apply = options[int(self.rng.integers(len(options)))]
        apply(bad)
        return bad

    def api_body_schema(self, op: dict[str, Any]) -> dict[str, Any]:
        return op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})


def _asks_gradients(body: bytes | None) -> bool:
    """Whether a JSON body asks /explain for a gradient method (a documented 501 on the ONNX backend)."""
    try:
        doc = json.loads(body or b"")
    except ValueError:
        return False
    if not isinstance(doc, dict):
        return False
    methods = [doc.get(k, "occlusion") for k in ("frame_method", "landmark_method")]
    return all(isinstance(m, str) for m in methods) and bool(gradient_methods(*methods))


def _npy(arr: np.ndarray, pickle: bool = False) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=pickle)
    return buf.getvalue()


def _real_clips(traduttore_npz: Path) -> list[np.ndarray]:
    from signlang.landmarks.layout import from_258

    data = np.load(traduttore_npz)
    signs = np.flatnonzero(data["classes"][data["y"]] != "-")[::97][:24]
    return [from_258(x.astype(np.float32))[0] for x in data["X"][signs]]


@pytest.mark.parametrize("rounds,videos,budget_s", [(2, 0, 40), pytest.param(8, 3, 300, marks=pytest.mark.slow)])
def test_every_route_with_schema_derived_bodies(served, traduttore_npz: Path, real_videos_dir: Path,
                                                rounds: int, videos: int, budget_s: float) -> None:
    url, model = served
    assert set(ENCODE) == {lay.name for lay in LAYOUTS}, "a layout without an encoder here"
    api = httpx.get(f"{url}/openapi.json", timeout=30).json()
    signs = httpx.get(f"{url}/signs", timeout=30).json()["signs"]
    clips = _real_clips(traduttore_npz)
    video_files = sorted(real_videos_dir.glob("*.mp4"), key=lambda p: p.stat().st_size)[:3]
    fuzz = Fuzzer(api, np.random.default_rng(22), clips, signs, model, video_files)
    operations = [(path, method.upper(), op) for path, item in api["paths"].items() for method, op in item.items()]
    labels = {f"{m} {p}" for p, m, _ in operations}
    assert {"POST /predict/landmarks", "POST /predict", "POST /explain", "POST /admin/reload", "GET /health", "GET /ready",
            "GET /signs", "GET /metrics"} <= labels, labels

    seen: dict[str, Counter] = defaultdict(Counter)
    kinds: Counter = Counter()  # requests per kind: valid, and each mutation
    problems: list[str] = []
    videos_left = videos
    start = time.monotonic()
    with httpx.Client(base_url=url, timeout=180) as client:
        for r in range(rounds):
            for path, method, op in operations:
                if time.monotonic() - start > budget_s:
                    break
                want_video = "multipart/form-data" in op.get("requestBody", {}).get("content", {}) and videos_left > 0
                valid = fuzz.valid(path, method, op, videos=want_video)
                videos_left -= want_video
                if "multipart/form-data" in op.get("requestBody", {}).get("content", {}) and not want_video:
                    # no video this round: mutate a tiny stand-in (the refusals need no MediaPipe run)
                    valid_stub = Case(method, path, files={"video": ("v.mp4", video_files[0].read_bytes(), "video/mp4")})
                    cases = [fuzz.mutate(valid_stub, op) for _ in range(2)]
                else:
                    cases = valid + [m for c in valid for m in (fuzz.mutate(c, op) for _ in range(3)) if m is not None]
                for case in cases:
                    label = f"{method} {path} [{case.what}{' ' + case.ctype if case.ctype else ''}]"
                    headers = {"Content-Type": case.ctype} if case.ctype else {}
                    try:
                        resp = client.request(method, path, params=case.params, content=case.content, files=case.files,
                                              headers=headers)
                    except httpx.TransportError as exc:  # no HTTP status: a dropped connection
                        problems.append(f"{label}: no answer ({type(exc).__name__}: {exc})")
                        continue
                    status = resp.status_code
                    seen[f"{method} {path}"][status] += 1
                    kinds[case.what] += 1
                    documented = {str(s) for s in op.get("responses", {})} | {"422"}
                    gradient = path == "/explain" and _asks_gradients(case.content)  # 501 on ONNX, documented
                    if status >= 500 and not (status == 501 and gradient):
                        problems.append(f"{label}: {status} {resp.text[:300]}")
                    elif case.valid and status != 200 and not (status == 501 and gradient) and not (
                            status == 404 and "404" in op.get("responses", {})):  # a documented absence (e.g. a model without a web graph)
                        problems.append(f"{label}: a valid request got {status} {resp.text[:300]}")
                    elif not case.valid and not 400 <= status < 500 and not (status == 501 and gradient):
                        problems.append(f"{label}: a bad request got {status}, not a 4xx")
                    if status != 200 and status not in (404, 405) and str(status) not in documented:
                        problems.append(f"{label}: status {status} is not documented in the schema ({sorted(documented)})")
                    if status >= 400 and "json" in resp.headers.get("content-type", ""):
                        err = resp.json()
                        if not (isinstance(err, dict) and {"error", "detail"} <= set(err)):
                            problems.append(f"{label}: error body without error/detail: {resp.text[:200]}")
        for page in ("/", "/docs", "/openapi.json"):  # the routes outside the schema: the live page and the docs
            for _ in range(2):
                resp = client.get(page)
                seen[f"GET {page}"][resp.status_code] += 1
                if resp.status_code != 200:
                    problems.append(f"GET {page}: {resp.status_code}")
    print(f"fuzz: {sum(kinds.values())} requests in {time.monotonic() - start:.1f} s; by kind {dict(kinds)}; "
          f"statuses {json.dumps({k: dict(v) for k, v in seen.items()})}")
    assert not problems, "\n".join(problems[:30])
    assert seen["POST /explain"][200] >= 1, seen["POST /explain"]  # a successful explanation, not only refusals
    assert seen["POST /predict/landmarks"][200] >= 3 * rounds and seen["POST /admin/reload"][200] >= 1, dict(seen)
    if videos:
        assert seen["POST /predict"][200] >= 1, seen["POST /predict"]
    for label in labels:  # every route, more than once
        assert sum(seen[label].values()) >= 2, (label, dict(seen))
    assert time.monotonic() - start < budget_s + 200, "the fuzz ran past its time bound"
