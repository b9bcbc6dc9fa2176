"""The field's other layouts, 1662 (Holistic with face) and 543 x 3 (Kaggle ISLR), on real data:
converted to (T, 75, 3) with the face dropped, accepted by the loaders, the service's parser and
the CLI (train on a 1662 data set, predict 543 x 3 / 1629 / 1662 clips), and a clear error for
any other width."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from signlang.cli import app
from signlang.datasets.formats import load_dataset
from signlang.landmarks import layout as L


@pytest.fixture(scope="module")
def real_258(traduttore_npz: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """60 real sequences of 3 classes (20 each, no duplicates): X (60, 20, 258) float32, y, classes."""
    with np.load(traduttore_npz) as z:
        keep = ~z["is_duplicate"]
        X, y, classes = z["X"][keep], z["y"][keep], z["classes"]
    chosen = [int(np.flatnonzero(classes == c)[0]) for c in ("hello", "coffee", "no")]
    rows = np.concatenate([np.flatnonzero(y == c)[:20] for c in chosen])
    return X[rows].astype(np.float32), np.searchsorted(sorted(chosen), y[rows]), classes[sorted(chosen)]


def _face(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """A made-up face block (468, 3) per frame: the converters must drop it whatever it holds."""
    return np.random.default_rng(seed).uniform(0.2, 0.8, (*shape, L.N_FACE, 3)).astype(np.float32)


def _as_1662(flat258: np.ndarray) -> np.ndarray:
    """The tutorials' vector built by hand: pose 33x4 | face 468x3 | left 21x3 | right 21x3."""
    face = _face(flat258.shape[:-1]).reshape(*flat258.shape[:-1], -1)
    return np.concatenate([flat258[..., :132], face, flat258[..., 132:]], axis=-1)


def _as_543(flat258: np.ndarray) -> np.ndarray:
    """Kaggle's points built by hand: face 468 | left hand 21 | pose 33 | right hand 21, NaN = missing."""
    lead = flat258.shape[:-1]
    pose = flat258[..., :132].reshape(*lead, 33, 4)[..., :3]
    left = flat258[..., 132:195].reshape(*lead, 21, 3)
    right = flat258[..., 195:].reshape(*lead, 21, 3)
    parts = []
    for part in (left, pose, right):
        part = part.copy()
        part[np.all(part == 0, axis=(-2, -1))] = np.nan
        parts.append(part)
    return np.concatenate([_face(lead, 1), *parts], axis=-2)


def test_1662_and_543_give_the_same_landmarks_as_258_on_real_data(real_258) -> None:
    X, _, _ = real_258
    want = L.from_258(X)[0]
    assert np.isnan(want).any() and not np.isnan(want).all()  # real missing hands are in the sample
    for arr in (_as_1662(X), _as_543(X), _as_543(X).reshape(*X.shape[:2], 1629)):
        got = L.to_landmarks(arr, lead=2)
        assert got.shape == want.shape and got.dtype == np.float32
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(L.as_landmarks(_as_1662(X)[0]), want[0])
    # the writers invert the readers (the face is not kept: zeros / NaN)
    lm, vis = L.from_258(X)
    np.testing.assert_array_equal(L.from_1662(L.to_1662(lm, vis))[0], lm)
    np.testing.assert_array_equal(L.from_1662(L.to_1662(lm, vis))[1], vis)
    np.testing.assert_array_equal(L.from_543(L.to_543(lm)), lm)
    assert np.isnan(L.to_543(lm)[..., L.KAGGLE_PART_SLICES["face"], :]).all()


def test_unknown_width_names_every_layout_and_how_to_convert() -> None:
    with pytest.raises(ValueError) as info:
        L.as_landmarks(np.zeros((5, 1404)), name="clip.npy")
    msg = str(info.value)
    assert msg.startswith("clip.npy:") and "(5, 1404)" in msg
    for shape in ("(T, 75, 3)", "(T, 258)", "(T, 1662)", "(T, 543, 3)"):
        assert shape in msg
    assert "np.concatenate" in msg


def test_npz_loader_reads_1662_and_543(real_258, tmp_path: Path) -> None:
    X, y, classes = real_258
    want = L.from_258(X)[0]
    for name, arr in (("h.npz", _as_1662(X)), ("k.npz", _as_543(X))):
        np.savez(tmp_path / name, X=arr, y=y, classes=classes)
        clips = load_dataset(tmp_path / name)
        assert len(clips) == len(X) and clips.classes == tuple(classes)
        np.testing.assert_array_equal(np.stack(clips.landmarks), want)
    np.savez(tmp_path / "bad.npz", X=np.zeros((2, 5, 100), np.float32), y=np.zeros(2, np.int64), classes=np.array(["a"]))
    with pytest.raises(ValueError, match=r"bad\.npz: array 'X'.*\(2, 5, 100\).*\(T, 1662\)"):
        load_dataset(tmp_path / "bad.npz")


def test_service_parser_accepts_the_same_layouts(real_258) -> None:
    pytest.importorskip("fastapi")
    from signlang.serve.schemas import parse_landmark_rows

    X, _, _ = real_258
    want = L.from_258(X[0])[0]
    pts = _as_543(X[0])
    rows = np.where(np.isnan(pts), None, pts).tolist()  # JSON: null = not detected
    np.testing.assert_array_equal(parse_landmark_rows(rows), want)
    np.testing.assert_array_equal(parse_landmark_rows(_as_1662(X[0]).tolist()), want)
    with pytest.raises(ValueError, match="1662"):
        parse_landmark_rows([[0.0] * 100])


def test_cli_trains_on_1662_and_predicts_543_and_1662_clips(real_258, tmp_path: Path) -> None:
    X, y, classes = real_258
    data = tmp_path / "holistic1662.npz"
    np.savez(data, X=_as_1662(X), y=y, classes=classes)
    run = tmp_path / "run"
    res = CliRunner().invoke(app, ["train", "--data", str(data), "--out", str(run), "--config", "cpu", "--model", "xgboost",
                                   "--no-track", "--quiet", "--seed", "0", "--set", "xgboost.n_estimators=8",
                                   "--set", "xgboost.max_depth=2", "--set", "augment=[]"])
    assert res.exit_code == 0, res.output
    assert json.loads((run / "manifest.json").read_text())["classes"] == list(classes)

    i = len(X) - 1  # a clip of the held-out end of the blocked split
    inputs = {"c258.npy": X[i], "c1662.npy": _as_1662(X[i]), "c543.npy": _as_543(X[i]),
              "c1629.npy": _as_543(X[i]).reshape(len(X[i]), -1), "bad.npy": np.zeros((len(X[i]), 1404), np.float32)}
    for name, arr in inputs.items():
        np.save(tmp_path / name, arr)
    res = CliRunner().invoke(app, ["predict", "--model", str(run), "--json", *(str(tmp_path / n) for n in inputs), str(data)])
    assert res.exit_code == 1  # the unknown width is reported, the rest predicted
    lines = [json.loads(line) for line in res.stdout.strip().splitlines()]
    assert len(lines) == len(inputs) + len(X)
    by_input = {Path(r["input"]).name: r for r in lines[: len(inputs)]}
    assert "error" in by_input["bad.npy"] and "1404" in by_input["bad.npy"]["error"] and "(T, 543, 3)" in by_input["bad.npy"]["error"]
    probs = by_input["c258.npy"]["probs"]
    assert abs(sum(probs) - 1.0) < 1e-4
    for name in ("c1662.npy", "c543.npy", "c1629.npy"):
        assert by_input[name]["probs"] == probs, name  # face dropped: the very same prediction
    assert lines[len(inputs) + i]["probs"] == probs  # and the same clip inside the 1662 data set
    accuracy = np.mean([int(np.argmax(r["probs"])) == t for r, t in zip(lines[len(inputs):], y)])
    assert accuracy > 0.9  # trained on real signs it recognises them (mostly training clips here)
