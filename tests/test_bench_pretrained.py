"""``signlang benchmark pretrained``: the joint model is trained on both sets in one vocabulary (the
crowd set's ``thanks`` read as ``thank-you``), saved as a loadable bundle and pinned by sha256 in
``index.json`` (small synthetic stand-ins for the two data sets, the XGBoost base model only)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from signlang.bench.accuracy import renamed
from signlang.datasets.loaders import save_npz
from signlang.datasets.synthetic import make_synthetic_dataset


@pytest.fixture()
def two_sets(tmp_path: Path) -> tuple[Path, Path]:
    main = make_synthetic_dataset(n_classes=3, n_signers=2, clips_per_signer=3, seed=0, frames=(16, 24))
    main = renamed(main, {main.classes[0]: "thank-you"})
    crowd = make_synthetic_dataset(n_classes=2, n_signers=2, clips_per_signer=3, seed=1, frames=(16, 24))
    crowd = renamed(crowd, {crowd.classes[0]: "thanks", crowd.classes[1]: "iloveyou"})
    return save_npz(main, tmp_path / "main.npz"), save_npz(crowd, tmp_path / "crowd.npz")


def test_build_pretrained_joint_vocabulary_and_index(two_sets: tuple[Path, Path], tmp_path: Path) -> None:
    from signlang._io import sha256_file
    from signlang.bench.pretrained import build_pretrained
    from signlang.inference.predictor import Predictor
    from signlang.training.pipeline import load_data

    main, crowd = two_sets
    out = tmp_path / "pretrained"
    report = build_pretrained(out, name="joint", combiner="mean", models=["xgboost"], main=main, crowd=crowd, min_people=2)
    main_clips, _ = load_data(main)
    expected = sorted(set(main_clips.classes) | {"iloveyou"})  # "thanks" joined "thank-you"
    assert report["classes"] == expected and "thanks" not in report["classes"]
    assert report["data"]["n_clips"] == 30 and report["data"]["n_main"] == 18 and report["data"]["n_crowd"] == 12
    assert report["data"]["rename"] == {"thanks": "thank-you"} and report["bytes"] > 0 and report["fit_s"] > 0
    assert report["command"].endswith("--combiner mean --models xgboost")
    assert report["config"]["ensemble"]["combiner"] == "mean" and report["config"]["ensemble"]["models"] == ["xgboost"]
    index = json.loads((out / "index.json").read_text())
    assert set(index) == {"joint"}
    assert index["joint"]["manifest_sha256"] == sha256_file(out / "joint" / "manifest.json")
    onnx_manifest = out / "joint" / "onnx" / "manifest.json"  # the ONNX export ships with it, pinned too
    assert index["joint"]["onnx_manifest_sha256"] == sha256_file(onnx_manifest)
    assert json.loads(onnx_manifest.read_text())["source"]["bundle_manifest_sha256"] == index["joint"]["manifest_sha256"]
    assert f"{len(expected)} ASL signs" in index["joint"]["description"] and "mean combiner" in index["joint"]["description"]
    with Predictor(out / "joint", threads=1) as p:
        assert list(p.classes) == expected
        probs = p.proba(main_clips.landmarks[:4])
    assert probs.shape == (4, len(expected)) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    with Predictor(out / "joint", backend="onnx", threads=1) as p:  # the shipped export, not a new one
        assert p.model_info["onnx_dir"] == str(out / "joint" / "onnx")
        assert np.abs(p.proba(main_clips.landmarks[:4]) - probs).max() <= 1e-4


def test_build_pretrained_names_a_missing_data_set(two_sets: tuple[Path, Path], tmp_path: Path) -> None:
    from signlang.bench.pretrained import build_pretrained

    main, _ = two_sets
    with pytest.raises(ValueError, match="nope.npz"):
        build_pretrained(tmp_path / "out", models=["xgboost"], main=main, crowd=tmp_path / "nope.npz")
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_pretrained_is_calibrated_on_the_joint_benchmarks_heldout_probabilities(two_sets: tuple[Path, Path], tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from signlang._io import sha256_file
    from signlang.bench.pretrained import build_pretrained, heldout_temperature
    from signlang.cli import app
    from signlang.models.bundle import load_bundle

    main, crowd = two_sets
    out = tmp_path / "pretrained"
    build_pretrained(out, name="joint", combiner="mean", models=["xgboost"], main=main, crowd=crowd, min_people=2)
    classes = list(load_bundle(out / "joint").classes)
    rng = np.random.default_rng(0)
    y = rng.integers(0, len(classes), 200)
    logits = rng.normal(size=(200, len(classes))) + 4 * np.eye(len(classes))[y]
    proba = np.exp(3 * logits) / np.exp(3 * logits).sum(1, keepdims=True)
    flip = rng.random(200) < 0.3
    y[flip] = rng.integers(0, len(classes), int(flip.sum()))  # 30 % of the labels disagree: overconfident, T > 1
    npz = tmp_path / "acc_joint_proba.npz"
    np.savez(npz, crowd_proba=proba[:120], crowd_y=y[:120], main_proba=proba[None, 120:], main_y=y[120:], classes=np.asarray(classes))
    fitted = heldout_temperature(npz)
    assert fitted["n_clips"] == 200 and fitted["temperature"] > 1.5
    res = CliRunner().invoke(app, ["benchmark", "pretrained", "--out", str(out), "--name", "joint", "--calibrate-only",
                                   "--temperature-from", str(npz)])
    assert res.exit_code == 0, res.output
    b = load_bundle(out / "joint")
    assert b.ensemble.temperature_ == pytest.approx(fitted["temperature"])
    assert b.manifest["extra"]["calibration"]["fitted_on"].endswith("(acc_joint_proba.npz)")
    index = json.loads((out / "index.json").read_text())
    assert index["joint"]["manifest_sha256"] == sha256_file(out / "joint" / "manifest.json")
    onnx_manifest = out / "joint" / "onnx" / "manifest.json"  # the ONNX export ships with it, pinned too
    assert index["joint"]["onnx_manifest_sha256"] == sha256_file(onnx_manifest)
    assert json.loads(onnx_manifest.read_text())["source"]["bundle_manifest_sha256"] == index["joint"]["manifest_sha256"]  # re-pinned
    np.savez(tmp_path / "other.npz", crowd_proba=proba[:, :2], crowd_y=y % 2, main_proba=proba[None, :, :2], main_y=y % 2,
             classes=np.asarray(["a", "b"]))
    res = CliRunner().invoke(app, ["benchmark", "pretrained", "--out", str(out), "--name", "joint", "--calibrate-only",
                                   "--temperature-from", str(tmp_path / "other.npz")])
    assert res.exit_code != 0 and "classes differ" in res.output
    with pytest.raises(ValueError, match="not the held-out probabilities"):
        heldout_temperature(main)


def test_pretrained_open_set_rule_is_fitted_on_the_heldout_known_and_left_out_signs(two_sets: tuple[Path, Path], tmp_path: Path) -> None:
    """--open-set with --calibrate-only: the rule's threshold declines the target share of the held-out known clips
    (after the temperature), the left-out signs' clips are reported as unknowns, and the rule is in meta.open_set."""
    from typer.testing import CliRunner

    from signlang.bench.pretrained import build_pretrained
    from signlang.cli import app
    from signlang.models.bundle import load_bundle
    from signlang.models.openset import OpenSetRule

    main, crowd = two_sets
    out = tmp_path / "pretrained"
    build_pretrained(out, name="joint", combiner="mean", models=["xgboost"], main=main, crowd=crowd, min_people=2)
    classes = list(load_bundle(out / "joint").classes)
    rng = np.random.default_rng(1)
    y = rng.integers(0, len(classes), 400)
    known = np.exp(4 * np.eye(len(classes))[y] + rng.normal(size=(400, len(classes))))
    known /= known.sum(1, keepdims=True)
    unknown = np.exp(rng.normal(size=(100, len(classes))))  # flat: no sign stands out
    unknown /= unknown.sum(1, keepdims=True)
    npz = tmp_path / "acc_joint_proba.npz"
    np.savez(npz, crowd_proba=known[:300], crowd_y=y[:300], main_proba=known[None, 300:], main_y=y[300:], classes=np.asarray(classes),
             unknown_proba=unknown, unknown_sign=np.asarray(["yes"] * 100))
    res = CliRunner().invoke(app, ["benchmark", "pretrained", "--out", str(out), "--name", "joint", "--calibrate-only",
                                   "--temperature-from", str(npz), "--open-set", "max_prob", "--false-rejection", "0.1"])
    assert res.exit_code == 0, res.output
    b = load_bundle(out / "joint")
    rule = OpenSetRule.from_json(b.manifest["meta"]["open_set"])
    assert rule is not None and rule.method == "max_prob"
    from signlang.models.temperature import apply_temperature

    declined = rule.unknown(apply_temperature(known, b.ensemble.temperature_)).mean()
    assert 0.05 <= declined <= 0.12  # about the 10 % target
    assert rule.record["n_unknown"] == 100 and rule.record["unknown_declined"] > 0.5 and "yes" in rule.record["fitted_on"]
    assert "open set: max_prob threshold" in res.output


def test_segmenter_only_adds_a_segmenter_and_repins(two_sets: tuple[Path, Path], tmp_path: Path) -> None:
    """``--segmenter-only``: the classifier's files stay, a segmenter joins the bundle and its ONNX export, and
    ``index.json`` pins the new manifests; the Predictor of both backends then carries it."""
    from signlang._io import sha256_file
    from signlang.bench.pretrained import add_segmenter, build_pretrained
    from signlang.inference.predictor import Predictor

    main, crowd = two_sets
    out = tmp_path / "pretrained"
    build_pretrained(out, name="joint", combiner="mean", models=["xgboost"], main=main, crowd=crowd, min_people=2)
    weights = sha256_file(out / "joint" / "xgboost.json")
    with pytest.raises(ValueError, match="no bundle"):
        add_segmenter(out, "missing", main=main, crowd=crowd, min_people=2)
    record = add_segmenter(out, "joint", main=main, crowd=crowd, min_people=2,
                           overrides={"segmenter.n_streams": 12, "segmenter.epochs": 1, "segmenter.hidden": 8})
    assert record["validation"] is not None and "streams of" in record["fitted_on"]
    assert sha256_file(out / "joint" / "xgboost.json") == weights
    index = json.loads((out / "index.json").read_text())
    assert index["joint"]["manifest_sha256"] == sha256_file(out / "joint" / "manifest.json")
    assert index["joint"]["onnx_manifest_sha256"] == sha256_file(out / "joint" / "onnx" / "manifest.json")
    assert (out / "joint" / "onnx" / "segmenter.onnx").is_file()
    for backend in ("torch", "onnx"):
        with Predictor(out / "joint", backend=backend, threads=1) as p:
            assert p.segmenter is not None
