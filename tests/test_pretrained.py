"""The pretrained model inside the package: found offline by name, pinned by sha256, and right on known clips."""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest

from signlang.inference.pretrained import (
    DEFAULT_PRETRAINED,
    PRETRAINED_DIR,
    PretrainedError,
    pretrained_index,
    pretrained_path,
    resolve_model,
)


def _tiny_index(tmp_path: Path, tiny_bundle: Path) -> Path:
    from signlang._io import sha256_file

    shutil.copytree(tiny_bundle, tmp_path / "tiny")
    (tmp_path / "index.json").write_text(json.dumps({"tiny": {"manifest_sha256": sha256_file(tmp_path / "tiny" / "manifest.json")}}))
    return tmp_path


def test_resolver_by_path_name_and_refusals(tmp_path: Path, tiny_bundle: Path) -> None:
    folder = _tiny_index(tmp_path, tiny_bundle)
    assert resolve_model(tiny_bundle, folder) == tiny_bundle
    assert resolve_model("tiny", folder) == folder / "tiny"
    with pytest.raises(PretrainedError, match="not a pretrained model name.*tiny"):
        resolve_model("nope", folder)
    with pytest.raises(PretrainedError, match="unknown pretrained model"):
        resolve_model(None, folder)  # the default is not in this folder
    manifest = folder / "tiny" / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"classes"', '"classes" ', 1))
    with pytest.raises(PretrainedError, match="sha256"):
        pretrained_path("tiny", folder)
@pytest.fixture
def offline():
    """Every socket connection attempt fails: the model must load without a network."""
    real = socket.socket.connect

    def refuse(self, address):  # noqa: ANN001
        raise OSError(f"network disabled in this test (tried {address})")

    socket.socket.connect = refuse
    yield
    socket.socket.connect = real


def test_shipped_model_loads_offline_by_name_and_its_hashes_match(offline) -> None:
    from signlang._io import sha256_file
    from signlang.models.bundle import load_bundle

    index = pretrained_index()
    assert DEFAULT_PRETRAINED in index, f"{PRETRAINED_DIR}/index.json does not list {DEFAULT_PRETRAINED!r}"
    path = resolve_model(None)
    assert path == resolve_model(DEFAULT_PRETRAINED) == PRETRAINED_DIR / DEFAULT_PRETRAINED
    assert sha256_file(path / "manifest.json") == index[DEFAULT_PRETRAINED]["manifest_sha256"]
    manifest = json.loads((path / "manifest.json").read_text())
    for name, digest in manifest["files"].items():
        assert sha256_file(path / name) == digest, name
    size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())  # the bundle and its ONNX export
    assert size <= 12 * 1024 * 1024, f"pretrained model is {size / 1e6:.1f} MB (limit 12 MB)"
    bundle = load_bundle(path)
    assert "iloveyou" in bundle.classes and "thank-you" in bundle.classes and "hello" in bundle.classes
    assert (path / "MODEL_CARD.md").is_file()


def test_shipped_model_is_the_eight_sign_recipe() -> None:
    """Issue 24: traduttore + the kept cells of asl_crowd_8signs, the crowd signs with >= 20 people or a traduttore
    class (hello, iloveyou, thanks -> thank-you, no, please); yes / help / sorry left out, and used as the unknown
    signs its open-set rule was fitted with; temperature and rule from the recipe's held-out probabilities."""
    description = pretrained_index()[DEFAULT_PRETRAINED]["description"]
    assert "traduttore" in description and "asl_crowd_8signs" in description and "kept cells" in description
    path = resolve_model(None)
    manifest = json.loads((path / "manifest.json").read_text())
    report = json.loads((path / "report.json").read_text())
    data = report["data"]
    assert Path(data["crowd"]["path"]).name == "asl_crowd_8signs.npz" and data["crowd"]["audit"]["n_excluded"] > 0
    assert data["crowd_signs"]["signs"] == ["hello", "iloveyou", "thanks", "no", "please"]
    assert set(data["crowd_signs"]["left_out"]) == {"yes", "help", "sorry"}
    assert data["rename"] == {"thanks": "thank-you"} and data["n_clips"] == data["n_main"] + data["n_crowd"]
    assert not {"yes", "help", "sorry", "thanks"} & set(manifest["classes"]) and len(manifest["classes"]) == 34
    meta = manifest["meta"]
    assert meta["temperature"] != 1.0 and "joint_proba" in manifest["extra"]["calibration"]["fitted_on"]
    rule = meta["open_set"]
    assert rule["method"] == "max_prob" and 0.0 < rule["threshold"] < 1.0
    assert rule["record"]["target_false_rejection"] == 0.05 and rule["record"]["n_unknown"] > 0
    assert all(s in rule["record"]["fitted_on"] for s in ("help", "sorry", "yes"))
    assert manifest.get("segmenter"), "the shipped model carries its segmenter"


def test_shipped_model_predicts_known_clips(offline, shared_data: Path) -> None:
    from signlang.datasets.loaders import load_dataset
    from signlang.inference.predictor import Predictor
    from signlang.landmarks.layout import part_present

    crowd = load_dataset(shared_data / "asl_crowd_8signs" / "asl_crowd_8signs.npz")
    main = load_dataset(shared_data / "traduttore_asl_mediapipe" / "traduttore_asl_mediapipe.npz")
    picks = [(crowd, crowd.classes.index("iloveyou")), (crowd, crowd.classes.index("hello")), (crowd, crowd.classes.index("thanks")),
             (main, main.classes.index("coffee"))]
    expected = {"iloveyou": "iloveyou", "hello": "hello", "thanks": "thank-you", "coffee": "coffee"}
    with Predictor(resolve_model(None)) as predictor:
        for clips, label in picks:
            # the first clip of the sign with a hand in most frames (a clip without hands gets the no-sign rule)
            i = next(int(j) for j in np.flatnonzero(clips.y == label) if part_present(clips.landmarks[j])[:, 1:].any(axis=1).mean() > 0.8)
            pred = predictor.predict_landmarks(clips.landmarks[i])
            assert pred.top_k[0][0] == expected[clips.classes[label]], (clips.classes[label], pred.top_k)


def test_spot_without_model_uses_the_pretrained_one(offline, shared_data: Path, tmp_path: Path) -> None:
    """`signlang spot` (like predict, serve and live) falls back to the pretrained model, whose segmenter
    cuts the stream: an idle recording, two known signs back to back, idle again -> the two signs, in order.
    (Known miss, docs/benchmarks.md: in the order coffee -> hello this hello clip is not found.)"""
    from typer.testing import CliRunner

    from signlang.cli import app
    from signlang.datasets.loaders import load_dataset
    from signlang.landmarks.layout import part_present

    main = load_dataset(shared_data / "traduttore_asl_mediapipe" / "traduttore_asl_mediapipe.npz")
    idle = main.landmarks[int(np.flatnonzero(main.y == main.classes.index("-"))[0])]
    picked = [idle]
    for sign in ("hello", "coffee"):
        label = main.classes.index(sign)
        picked.append(next(main.landmarks[int(j)] for j in np.flatnonzero(main.y == label)
                           if part_present(main.landmarks[int(j)])[:, 1:].any(axis=1).mean() > 0.8))
    np.save(tmp_path / "two_signs.npy", np.concatenate(picked + [idle]).astype(np.float32))
    res = CliRunner().invoke(app, ["spot", str(tmp_path / "two_signs.npy"), "--json"])
    assert res.exit_code == 0, res.output
    segments = json.loads(res.stdout.strip().splitlines()[-1])["segments"]
    assert [s["sign"] for s in segments] == ["hello", "coffee"]
    assert segments[0]["end_s"] <= segments[1]["start_s"]
