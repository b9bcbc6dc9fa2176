"""The one decision policy (inference/policy.py): nobody, no hands, the no-sign class, unsure, unknown.

Every path that answers (predict, evaluate, the service, explain, spot / streaming) must give the same
verdict from the same code; a bundle whose manifest carries an open-set rule answers ``unknown`` on
both backends; ``evaluate`` scores exactly what ``predict --json`` answers.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from bundle_fixtures import tiny_clips

ALWAYS_UNKNOWN = {"method": "max_prob", "threshold": 1.01, "params": {}, "record": {"why": "test: every answer is unknown"}}
"""A max-prob open-set rule with a threshold no probability reaches."""


def _cli(*args: object):
    import torch

    from signlang.cli import app

    torch.set_num_threads(1)
    return CliRunner().invoke(app, [str(a) for a in args])


def _edit_manifest(bundle: Path, dst: Path, *, open_set: dict | None = None, first_class: str | None = None) -> Path:
    """A copy of ``bundle`` with ``meta.open_set`` and/or class 0 renamed (the manifest is not in its own sha256 list)."""
    shutil.copytree(bundle, dst)
    path = dst / "manifest.json"
    manifest = json.loads(path.read_text())
    if open_set is not None:
        manifest["meta"] = {**manifest["meta"], "open_set": open_set}
    if first_class is not None:
        manifest["classes"][0] = first_class
    path.write_text(json.dumps(manifest))
    return dst


@pytest.fixture(scope="module")
def unknown_bundle(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _edit_manifest(tiny_bundle, tmp_path_factory.mktemp("unk") / "bundle", open_set=ALWAYS_UNKNOWN)


@pytest.fixture(scope="module")
def nosign_bundle(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny ensemble with its class 0 called ``-``: a vocabulary with a no-sign class."""
    return _edit_manifest(tiny_bundle, tmp_path_factory.mktemp("nosign") / "bundle", first_class="-")


def _rule_clips() -> dict[str, np.ndarray]:
    normal = tiny_clips().landmarks[5]
    no_hands = normal.copy()
    no_hands[:, 33:] = np.nan
    return {"normal": normal, "no_hands": no_hands, "nobody": np.full_like(normal, np.nan)}


# --- the policy on its own -----------------------------------------------------------------------
def test_one_list_of_no_sign_names_for_predictor_and_streaming() -> None:
    from signlang.inference import predictor, streaming
    from signlang.inference.policy import NO_SIGN_NAMES, DecisionPolicy, no_sign_class

    assert not hasattr(predictor, "NO_SIGN_NAMES") and not hasattr(streaming, "IDLE_CLASS_NAMES")
    for name in ("-", "Idle", "_", "rest", "background"):
        assert no_sign_class(["a", name, "b"]) == name
        assert DecisionPolicy(["a", name]).is_no_sign(1)
    assert no_sign_class(["a", "b"]) is None and not DecisionPolicy(["a", "b"]).is_no_sign(0)
    assert len(set(NO_SIGN_NAMES)) == len(NO_SIGN_NAMES)


def test_policy_rules() -> None:
    from signlang.inference.policy import (
        NO_HANDS_RULE, NO_PERSON_RULE, DecisionPolicy, NoHandsError, NoPersonError, OpenSetRule,
    )

    clips = _rule_clips()
    with_ns, without = DecisionPolicy(["-", "a", "b"]), DecisionPolicy(["a", "b"])
    assert with_ns.screen(clips["nobody"], "c").rule == NO_PERSON_RULE
    assert with_ns.screen(clips["no_hands"], "c").rule == NO_HANDS_RULE
    assert with_ns.screen(clips["normal"], "c").rule is None and with_ns.screen(clips["normal"], "c").hands > 0
    with pytest.raises(NoPersonError, match="c: no person"):
        without.screen(clips["nobody"], "c")
    with pytest.raises(NoHandsError, match="c: a person is visible"):
        without.screen(clips["no_hands"], "c")
    np.testing.assert_array_equal(with_ns.rule_proba(2), [[1, 0, 0], [1, 0, 0]])
    proba = np.array([[0.2, 0.3, 0.5], [0.05, 0.9, 0.05]])
    np.testing.assert_array_equal(with_ns.low_confidence(proba), [False, False])
    np.testing.assert_array_equal(DecisionPolicy(["-", "a", "b"], min_confidence=0.6).low_confidence(proba), [True, False])
    np.testing.assert_array_equal(with_ns.unknown(proba), [False, False])  # no rule: never unknown
    rule = OpenSetRule("max_prob", 0.8)
    gated = DecisionPolicy(["-", "a", "b"], open_set=rule)
    np.testing.assert_array_equal(gated.unknown(proba), [True, False])
    np.testing.assert_array_equal(gated.unknown(proba, ruled=np.array([True, False])), [False, False])
    with pytest.raises(ValueError, match=r"min_confidence must be in \[0, 1\]"):
        DecisionPolicy(["a"], min_confidence=2)
    bad = np.zeros((3, 75, 3), np.float32)
    bad[1, 4, 0] = np.inf
    with pytest.raises(ValueError, match=r"clip\[1\]: contains infinite values"):
        with_ns.check_clip(bad, "clip")


# --- unknown everywhere ----------------------------------------------------------------------------
def test_a_bundle_without_a_rule_never_answers_unknown(predictor) -> None:
    preds, _ = predictor.predict_batch(tiny_clips().landmarks[:6])
    assert not any(p.unknown for p in preds) and all(p.to_dict()["unknown"] is False for p in preds)


def test_unknown_from_the_manifest_on_both_backends(unknown_bundle: Path, tmp_path: Path) -> None:
    import torch

    from signlang.inference.export import export_bundle
    from signlang.inference.predictor import Predictor

    torch.set_num_threads(1)
    clips = tiny_clips().landmarks[:4]
    export_bundle(unknown_bundle, tmp_path / "onnx")
    assert json.loads((tmp_path / "onnx" / "manifest.json").read_text())["plan"]["open_set"]["threshold"] == 1.01
    for model, backend in ((unknown_bundle, "torch"), (tmp_path / "onnx", "onnx")):
        with Predictor(model, backend=backend, threads=1) as p:
            assert p.policy.open_set is not None and p.policy.open_set.method == "max_prob"
            preds, errors = p.predict_batch(clips)
            assert not errors and all(q.unknown and q.to_dict()["unknown"] is True for q in preds), backend


def test_unknown_in_predict_json_and_text(unknown_bundle: Path, tiny_bundle: Path, tmp_path: Path) -> None:
    clip = tmp_path / "clip.npy"
    np.save(clip, tiny_clips().landmarks[3])
    line = json.loads(_cli("predict", "--model", unknown_bundle, clip, "--json").stdout)
    assert line["unknown"] is True and "low_confidence" in line and line["top_k"]
    res = _cli("predict", "--model", unknown_bundle, clip)
    assert res.exit_code == 0 and ": unknown (not a sign this model knows; closest: " in res.stdout, res.output
    res = _cli("predict", "--model", tiny_bundle, clip, "--min-confidence", "1.0")
    assert res.exit_code == 0 and ": unsure (below 100%): " in res.stdout, res.output
    res = _cli("predict", "--model", tiny_bundle, clip, "--min-confidence", "0.0")
    assert "unsure" not in res.stdout and "unknown" not in res.stdout


def test_unknown_in_every_http_answer(unknown_bundle: Path) -> None:
    from fastapi.testclient import TestClient

    from signlang.inference.predictor import Predictor
    from signlang.serve.app import create_app
    from signlang.serve.schemas import NPY_MEDIA_TYPE

    clips = tiny_clips().landmarks
    rows = np.where(np.isnan(clips[2]), None, clips[2]).tolist()
    batch = np.stack([clips[i][:20] for i in range(3)])
    batch[1] = np.nan  # nobody in clip 1: an error for that clip alone (no no-sign class)
    import io

    buf = io.BytesIO()
    np.save(buf, batch)
    with TestClient(create_app(Predictor(unknown_bundle, backend="torch", threads=1))) as client:
        single = client.post("/predict/landmarks", json={"landmarks": rows}).json()
        assert single["unknown"] is True and "low_confidence" in single
        many = client.post("/predict/landmarks", content=buf.getvalue(), headers={"content-type": NPY_MEDIA_TYPE}).json()["results"]
        assert [r["prediction"] is None for r in many] == [False, True, False]
        assert many[1]["error"]["error"] == "nothing_detected" and "no person" in many[1]["error"]["detail"]
        assert all(r["prediction"]["unknown"] is True for r in many if r["prediction"])
        exp = client.post("/explain", json={"landmarks": rows})
        assert exp.status_code == 200, exp.text
        assert exp.json()["unknown"] is True and exp.json()["top_k"][0]["sign"] == single["top_k"][0]["sign"]


def test_unknown_in_signlang_explain_json(unknown_bundle: Path, tmp_path: Path) -> None:
    clip = tmp_path / "clip.npy"
    np.save(clip, tiny_clips().landmarks[3])
    res = _cli("explain", "--model", unknown_bundle, clip, "--out", tmp_path / "exp", "--steps", "2")
    assert res.exit_code == 0, res.output
    doc = json.loads((tmp_path / "exp" / "explanation.json").read_text())
    assert doc["unknown"] is True and doc["low_confidence"] in (True, False)


def test_unknown_in_spot_events_and_subtitles(unknown_bundle: Path, tiny_bundle: Path, tmp_path: Path) -> None:
    from signlang.cli._common import UNKNOWN_CUE
    from signlang.inference.predictor import Predictor
    from signlang.inference.streaming import StreamConfig, StreamingRecognizer

    clips = tiny_clips()
    seq = np.concatenate([clips.landmarks[i] for i in (0, 9, 18)])
    path = tmp_path / "long.npy"
    np.save(path, seq)
    lines = {}
    for name, model in (("known", tiny_bundle), ("unknown", unknown_bundle)):
        res = _cli("spot", "--model", model, path, "--json", "--threshold", "0.0", "--srt", tmp_path / f"{name}.srt")
        assert res.exit_code == 0, res.output
        lines[name] = json.loads(res.stdout.strip().splitlines()[-1])["segments"]
    assert lines["unknown"] and [s["sign"] for s in lines["unknown"]] == [s["sign"] for s in lines["known"]]
    assert all(s["unknown"] is True for s in lines["unknown"]) and all(s["unknown"] is False for s in lines["known"])
    srt_unknown = (tmp_path / "unknown.srt").read_text()
    assert srt_unknown.count(UNKNOWN_CUE) == len(lines["unknown"])
    assert UNKNOWN_CUE not in (tmp_path / "known.srt").read_text()
    with Predictor(unknown_bundle, threads=1) as p:  # the live path: events and the latest window carry the verdict
        rec = StreamingRecognizer(p, StreamConfig(threshold=0.0, batch_size=8))
        events = rec.push_many(seq, np.arange(len(seq)) / 30.0) + rec.finish()
        assert events and all(e.to_dict()["unknown"] is True for e in events)
        assert rec.latest is not None and "unknown" in rec.latest.to_dict() and "low_confidence" in rec.latest.to_dict()


# --- nobody in the clip: one rule everywhere -------------------------------------------------------
def test_nobody_is_the_no_sign_class_where_there_is_one(nosign_bundle: Path, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from signlang.inference.predictor import Predictor
    from signlang.serve.app import create_app

    clips = _rule_clips()
    path = tmp_path / "nobody.npy"
    np.save(path, clips["nobody"])
    res = _cli("predict", "--model", nosign_bundle, path, "--json")
    line = json.loads(res.stdout)
    assert res.exit_code == 0 and line["rule"] == "no_person" and line["top_k"][0] == {"sign": "-", "prob": 1.0}
    assert line["unknown"] is False and line["low_confidence"] is False
    assert "nobody in the clip: the no-sign class" in _cli("predict", "--model", nosign_bundle, path).stdout
    rows = np.where(np.isnan(clips["nobody"]), None, clips["nobody"]).tolist()
    with TestClient(create_app(Predictor(nosign_bundle, backend="torch", threads=1))) as client:
        body = client.post("/predict/landmarks", json={"landmarks": rows}).json()
        assert body["rule"] == "no_person" and body["top_k"][0]["sign"] == "-" and body["unknown"] is False
        exp = client.post("/explain", json={"landmarks": rows}).json()
        assert exp["sign"] == "-" and exp["rule"] == "no_person"


def test_one_bad_clip_never_stops_predict(tiny_bundle: Path, tmp_path: Path) -> None:
    clips = _rule_clips()
    paths = []
    for name in ("normal", "nobody", "no_hands"):
        paths.append(tmp_path / f"{name}.npy")
        np.save(paths[-1], clips[name])
    paths.insert(2, tmp_path / "missing.npy")
    res = _cli("predict", "--model", tiny_bundle, *paths, "--json")
    lines = [json.loads(s) for s in res.stdout.strip().splitlines()]
    assert [("error" in d) for d in lines] == [False, True, True, True]
    assert [d.get("code") for d in lines[1:]] == ["nothing_detected", "invalid_input", "nothing_detected"]
    assert res.exit_code == 1  # documented: 0 only when every clip was answered
    assert _cli("predict", "--model", tiny_bundle, paths[0], "--json").exit_code == 0


# --- evaluate scores what predict serves -----------------------------------------------------------
@pytest.mark.parametrize("with_no_sign", [True, False])
def test_evaluate_equals_scoring_predict_json(with_no_sign: bool, tiny_bundle: Path, nosign_bundle: Path, tmp_path: Path) -> None:
    from signlang.datasets.clip import ClipSet
    from signlang.datasets.loaders import save_npz

    bundle = nosign_bundle if with_no_sign else tiny_bundle
    src = tiny_clips()
    rules = _rule_clips()
    pick = [0, 4, 9, 13, 18, 22, 27, 31]
    landmarks = [src.landmarks[i] for i in pick] + [rules["nobody"], rules["no_hands"]]
    y = np.array([src.y[i] for i in pick] + [0, 0])
    classes = ("-", *src.classes[1:]) if with_no_sign else src.classes
    data = save_npz(ClipSet(landmarks=landmarks, y=y, classes=classes, clip_ids=[f"c{i}" for i in range(len(y))]),
                    tmp_path / "held_out.npz")
    res = _cli("evaluate", "--model", bundle, "--data", data, "--split", "all", "--out", tmp_path / "ev", "--quiet")
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "ev" / "report.json").read_text())
    res = _cli("predict", "--model", bundle, data, "--json")
    lines = [json.loads(s) for s in res.stdout.strip().splitlines()]
    assert len(lines) == len(y)
    right = [("top_k" in d and d["top_k"][0]["sign"] == classes[t]) for d, t in zip(lines, y)]
    assert report["models"][report["primary"]]["accuracy"] == pytest.approx(np.mean(right), abs=1e-12)
    if with_no_sign:  # nobody and no hands: the no-sign class, right by their label
        assert [lines[-2].get("rule"), lines[-1].get("rule")] == ["no_person", "no_hands"] and right[-2] and right[-1]
        assert report["answers"]["no_person"] == 1 and report["answers"]["no_hands"] == 1 and report["answers"]["error"] == 0
    else:  # no no-sign class: an error line in predict, a wrong answer in evaluate
        assert "error" in lines[-2] and "error" in lines[-1] and res.exit_code == 1
        assert report["answers"]["error"] == 2 and any("count as wrong" in n for n in report["notes"])
    assert set(report["models"]) == {"transformer", "bilstm", "xgboost", "ensemble"}


def test_the_ensemble_combines_with_the_plans_arithmetic(tiny_bundle: Path) -> None:
    """One combiner: StackingEnsemble.predict_proba and the torch plan give the same probabilities."""
    import torch

    from signlang.features.normalize import NormalizeConfig, normalize_clips
    from signlang.inference.plan import compute_features
    from signlang.inference.torch_backend import TorchBackend
    from signlang.models import combine, ensemble
    from signlang.models.bundle import load_bundle

    torch.set_num_threads(1)
    bundle = load_bundle(tiny_bundle)
    X = normalize_clips(tiny_clips().landmarks[:5], NormalizeConfig.from_dict(dict(bundle.preprocessing["normalize"])))
    backend = TorchBackend(bundle.model, bundle.classes)
    np.testing.assert_allclose(bundle.predict_proba(X), backend.run(compute_features(X, backend.plan))[0], atol=1e-4)
    assert ensemble.combined is combine.combined and ensemble.stack_input is combine.stack_input
