"""Kaggle GISLR parquet: a tree in the competition's layout built here by hand is read through the
loader registry (participant_id as signer, missing points NaN, the face dropped), real clips make
the round trip through the writer, and the CLI trains with --split signer and predicts on it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from signlang.cli import app
from signlang.datasets.clip import ClipSet
from signlang.datasets.gislr import load_gislr, read_sequence, save_gislr
from signlang.datasets.formats import load_dataset
from signlang.landmarks import layout as L

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

PARTS = (("face", 468), ("left_hand", 21), ("pose", 33), ("right_hand", 21))


def _kaggle_parquet(path: Path, points: np.ndarray, first_frame: int, drop: tuple[int, str] | None = None) -> None:
    """Write ``points (T, 543, 3)`` as the competition does: frame-major rows, parts in Kaggle order.

    ``drop=(t, part)`` leaves out that part's rows in frame ``t`` (a point without a row).
    """
    cols: dict[str, list] = {k: [] for k in ("frame", "row_id", "type", "landmark_index", "x", "y", "z")}
    for t in range(points.shape[0]):
        k = 0
        for part, n in PARTS:
            for i in range(n):
                if drop != (t, part):
                    f = first_frame + t
                    cols["frame"].append(f)
                    cols["row_id"].append(f"{f}-{part}-{i}")
                    cols["type"].append(part)
                    cols["landmark_index"].append(i)
                    for c, name in enumerate("xyz"):
                        cols[name].append(float(points[t, k, c]))
                k += 1
    table = pa.table({
        "frame": pa.array(cols["frame"], pa.int16()), "row_id": cols["row_id"], "type": cols["type"],
        "landmark_index": pa.array(cols["landmark_index"], pa.int16()),
        "x": cols["x"], "y": cols["y"], "z": cols["z"],
    })
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


def test_a_hand_built_competition_tree_loads_through_the_registry(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rows = ["path,participant_id,sequence_id,sign"]
    want = {}
    for seq, (pid, sign, n_frames) in enumerate([(26734, "TV", 5), (26734, "after", 4), (28656, "TV", 6)], start=1000035562):
        pts = rng.uniform(0.1, 0.9, (n_frames, 543, 3))
        pts[:, 468:489] = np.nan  # left hand never detected (NaN rows, as Kaggle writes them)
        pts[1, 522:543] = np.nan  # right hand lost in frame 1
        rel = f"train_landmark_files/{pid}/{seq}.parquet"
        _kaggle_parquet(tmp_path / rel, pts, first_frame=17, drop=(2, "right_hand"))  # frame 2: no right-hand rows at all
        rows.append(f"{rel},{pid},{seq},{sign}")
        exp = pts[:, np.r_[489:522, 468:489, 522:543]].astype(np.float32)
        exp[2, 54:75] = np.nan
        want[str(seq)] = exp
    (tmp_path / "train.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "sign_to_prediction_index_map.json").write_text(json.dumps({"TV": 0, "after": 1, "zebra": 2}))

    assert read_sequence(tmp_path / rows[1].split(",")[0]).shape == (5, 543, 3)
    for target in (tmp_path, tmp_path / "train.csv"):
        clips = load_dataset(target)
        assert clips.classes == ("TV", "after", "zebra")  # the map's order, a sign without clips kept
        assert list(clips.clip_ids) == list(want) and list(clips.seq_ids) == [int(s) for s in want]
        assert list(clips.signers) == ["26734", "26734", "28656"]
        assert list(clips.labels) == ["TV", "after", "TV"]
        for lm, cid in zip(clips.landmarks, clips.clip_ids):
            np.testing.assert_array_equal(lm, want[cid])
        presence = L.part_present(clips.landmarks[0])
        assert not presence[:, 1].any() and presence[:, 2].tolist() == [True, False, False, True, True]


def test_bad_rows_are_skipped_naming_them_and_bad_files_named(tmp_path: Path) -> None:
    pts = np.random.default_rng(1).uniform(0.1, 0.9, (3, 543, 3))
    _kaggle_parquet(tmp_path / "train_landmark_files/1/1.parquet", pts, first_frame=0)
    (tmp_path / "train_landmark_files/1/2.parquet").write_bytes(b"not parquet")
    (tmp_path / "train.csv").write_text(
        "path,participant_id,sequence_id,sign\n"
        "train_landmark_files/1/1.parquet,1,1,a\n"
        "train_landmark_files/1/2.parquet,1,2,a\n"
        "train_landmark_files/1/3.parquet,1,3,b\n"
    )
    with pytest.warns(RuntimeWarning) as record:
        clips = load_gislr(tmp_path)
    assert list(clips.clip_ids) == ["1"]
    text = " | ".join(str(w.message) for w in record)
    assert "2.parquet" in text and "not a readable GISLR parquet" in text and "3.parquet" in text and "not found" in text
    (tmp_path / "train.csv").write_text("path,participant,sequence_id,sign\n")
    with pytest.raises(ValueError, match=r"train\.csv: missing column\(s\) \['participant_id'\]"):
        load_dataset(tmp_path)


def test_real_clips_round_trip_through_the_writer(traduttore_npz: Path, tmp_path: Path) -> None:
    clips = load_dataset(traduttore_npz)
    rows = np.concatenate([np.flatnonzero(clips.y == c)[:4] for c in range(0, len(clips.classes), 4)])
    part = clips.subset(rows)
    part.signers = np.array([f"p{i % 3}" for i in range(len(part))], dtype=object)
    save_gislr(part, tmp_path / "gislr")
    assert not list((tmp_path / "gislr").rglob(".*"))  # no temporaries left
    back = load_dataset(tmp_path / "gislr")
    assert back.classes == part.classes and np.array_equal(back.y, part.y)
    assert list(back.signers) == list(part.signers)
    assert len(back) == len(part) and any(np.isnan(lm).any() for lm in back.landmarks)
    for a, b in zip(part.landmarks, back.landmarks):
        np.testing.assert_array_equal(a, b)  # NaN in the same places, values exact
    table = pq.read_table(tmp_path / "gislr" / back.paths[0])
    assert table.column_names == ["frame", "row_id", "type", "landmark_index", "x", "y", "z"]
    assert table.num_rows == 543 * part.landmarks[0].shape[0]
    assert table.column("row_id")[0].as_py() == "0-face-0" and table.column("type")[468].as_py() == "left_hand"


def test_cli_trains_with_signer_split_and_predicts_on_a_gislr_tree(shared_data: Path, tmp_path: Path) -> None:
    with np.load(shared_data / "asl_crowd_3signs" / "asl_crowd_3signs.npz") as z:
        X, y, classes, signer = z["X"], z["y"].astype(np.int64), z["classes"], z["signer"]
    with_hands = np.any(X[..., 132:] != 0, axis=(1, 2))  # predict answers a clip without hands with an error
    rows = np.concatenate([np.flatnonzero((signer == s) & (y == c) & with_hands)[:4] for s in range(5) for c in range(3)])
    clips = ClipSet(landmarks=[L.from_258(X[i].astype(np.float32))[0] for i in rows], y=y[rows], classes=tuple(classes),
                    clip_ids=np.arange(len(rows)).astype(str), signers=signer[rows].astype(str).astype(object))
    root = save_gislr(clips, tmp_path / "asl")
    run = tmp_path / "run"
    res = CliRunner().invoke(app, ["train", "--data", str(root), "--out", str(run), "--config", "cpu", "--model", "xgboost",
                                   "--split", "signer", "--no-track", "--quiet", "--seed", "0",
                                   "--set", "xgboost.n_estimators=8", "--set", "xgboost.max_depth=2", "--set", "augment=[]"])
    assert res.exit_code == 0, res.output
    split = json.loads((run / "manifest.json").read_text())["extra"]["split"]
    assert split["spec"] == "signer"
    res = CliRunner().invoke(app, ["predict", "--model", str(run), "--json", str(root)])
    assert res.exit_code == 0, res.output
    lines = [json.loads(line) for line in res.stdout.strip().splitlines()]
    assert [r["clip_id"] for r in lines] == list(clips.clip_ids)
    assert np.mean([int(np.argmax(r["probs"])) == t for r, t in zip(lines, clips.y)]) > 0.8
