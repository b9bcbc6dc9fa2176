"""Input discovery, labels from folders, official splits, clip ids, resampling and .pose interop (no MediaPipe)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from signlang.landmarks.posefile import read_pose, write_pose
from signlang.landmarks.sources import (
    clip_id_for,
    find_videos,
    label_from_path,
    normalize_gloss,
    read_glosses,
    read_split_csvs,
    split_for,
)
from signlang.landmarks.video import output_size, resample_mask


@pytest.mark.parametrize(
    ("name", "gloss"),
    [("12. Football", "FOOTBALL"), ("16. train ticket", "TRAIN_TICKET"), ("  3.  Fish ", "FISH"), ("hello world", "HELLO_WORLD")],
)
def test_normalize_gloss(name: str, gloss: str) -> None:
    assert normalize_gloss(name) == gloss


def test_labels_from_folder_layout(include50_dir: Path) -> None:
    glosses = read_glosses(include50_dir / "normalized_glosses.csv")
    assert label_from_path("Sports/12. Football/MVI_1.MOV") == "FOOTBALL"
    assert label_from_path("Places/28. Store or Shop/MVI_3634.MOV") == "STORE_OR_SHOP"
    assert label_from_path("Places/28. Store or Shop/MVI_3634.MOV", glosses) == "SHOP"  # official mapping wins
    assert label_from_path("Animals/1. Dog/x.mp4", glosses) == "DOG"
    assert label_from_path("hello/clip.mp4") == "hello"  # plain label folder, kept as written
    assert label_from_path("Animals/4. Bird/Extra/MVI_3045.MOV") == "BIRD"  # INCLUDE's deeper folders
    assert label_from_path("signs/hello/clip.mp4") == "hello"  # nearest folder when none is numbered
    assert label_from_path("FOOTBALL.mp4") == "FOOTBALL"  # lone file: its stem
    assert label_from_path("12. Ball.MOV") == "BALL"
    assert label_from_path("") == ""


def test_read_glosses_rejects_wrong_columns(tmp_path: Path) -> None:
    bad = tmp_path / "g.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match=r"g\.csv.*actual_gloss"):
        read_glosses(bad)


def test_read_split_csvs_on_official_include50(include50_dir: Path) -> None:
    splits = read_split_csvs([include50_dir / "train_include50.csv", include50_dir / "test_include50.csv"])
    values = list(splits.values())
    assert values.count("train") == 766 and values.count("test") == 192
    assert splits["Animals/4. Bird/MVI_2987.MOV"] == "train"
    assert splits["Animals/4. Bird/MVI_2988.MOV"] == "test"
    # the split can also be named explicitly, whatever the file name
    named = read_split_csvs([f"val={include50_dir / 'test_include50.csv'}"])
    assert set(named.values()) == {"val"} and len(named) == 192


def test_read_split_csvs_errors(tmp_path: Path) -> None:
    noname = tmp_path / "fold.csv"
    noname.write_text("Category,Word,Video,FilePath\nA,1. X,v.MOV,A/1. X/v.MOV\n")
    with pytest.raises(ValueError, match=r"fold\.csv.*train=PATH"):
        read_split_csvs([noname])
    nocol = tmp_path / "train_x.csv"
    nocol.write_text("Category,Word\nA,B\n")
    with pytest.raises(ValueError, match=r"train_x\.csv.*FilePath"):
        read_split_csvs([nocol])
    test_dup = tmp_path / "test_x.csv"
    test_dup.write_text(noname.read_text())
    with pytest.raises(ValueError, match="listed in both"):
        read_split_csvs([f"train={noname}", test_dup])


def test_split_for_matches_relative_path_or_its_tail() -> None:
    splits = {"Sports/12. Football/a.MOV": "train", "b.mp4": "test"}
    assert split_for("Sports/12. Football/a.MOV", splits) == "train"
    assert split_for("INCLUDE/Sports/12. Football/a.MOV", splits) == "train"  # input root above the dataset root
    assert split_for("x/b.mp4", splits) == "test"
    assert split_for("Sports/12. Football/c.MOV", splits) == ""


def test_find_videos_recursive_case_insensitive(tmp_path: Path) -> None:
    for rel in ["A/1. X/v.MOV", "A/1. X/w.mp4", "b/c.WebM", "d.pose", "notes.txt", ".hidden/x.mp4", "A/.y.mp4"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    found = [p.relative_to(tmp_path).as_posix() for p in find_videos(tmp_path)]
    assert found == ["A/1. X/v.MOV", "A/1. X/w.mp4", "b/c.WebM", "d.pose"]
    assert find_videos(tmp_path / "d.pose") == [tmp_path / "d.pose"]
    with pytest.raises(ValueError, match="no such file or folder"):
        find_videos(tmp_path / "missing")


def test_clip_ids_are_stable_safe_and_distinct() -> None:
    a = clip_id_for("Sports/12. Football/x.MOV")
    assert a == clip_id_for("Sports/12. Football/x.MOV")
    assert a.startswith("Sports_12_Football_x_MOV-")
    assert all(ch.isalnum() or ch in "_-" for ch in a)
    assert a != clip_id_for("Sports/12. Football/x.mov")  # same slug, different path -> different hash
    assert len(clip_id_for("a" * 300 + ".mp4")) <= 71


def test_resample_mask_and_output_size() -> None:
    t = np.arange(30) / 30.0
    keep = resample_mask(t, 10.0)
    assert keep.sum() == 10 and np.array_equal(np.flatnonzero(keep), np.arange(0, 30, 3))
    assert resample_mask(t, 60.0).all()  # never invents frames
    assert resample_mask(t, None).all()
    assert output_size(1920, 1080, 640) == (640, 360)
    assert output_size(320, 240, 640) == (320, 240)
    assert output_size(1920, 1080, None) == (1920, 1080)


def test_pose_file_roundtrip_and_foreign_pose(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    lm = rng.uniform(0, 1, size=(5, 75, 3)).astype(np.float32)
    lm[1, 33:54] = np.nan  # left hand missing in frame 1
    lm[3, 0:33] = np.nan  # no pose in frame 3
    path = write_pose(tmp_path / "c.pose", lm, fps=25.0, width=640, height=480)
    back, fps = read_pose(path)
    assert fps == 25.0 and back.shape == (5, 75, 3)
    assert np.array_equal(np.isnan(back), np.isnan(lm))
    np.testing.assert_allclose(back, lm, atol=1e-5, equal_nan=True)
    assert not list(tmp_path.glob(".tmp-*"))

    from pose_format import Pose
    from pose_format.numpy.pose_body import NumPyPoseBody
    from pose_format.pose_header import PoseHeader, PoseHeaderComponent, PoseHeaderDimensions

    comp = PoseHeaderComponent("BODY_25", [str(i) for i in range(25)], [(0, 1)], [(255, 0, 0)], "XYC")
    other = Pose(PoseHeader(0.2, PoseHeaderDimensions(10, 10, 0), [comp]),
                 NumPyPoseBody(10.0, np.zeros((2, 1, 25, 2), np.float32), np.ones((2, 1, 25), np.float32)))
    with open(tmp_path / "openpose.pose", "wb") as fh:
        other.write(fh)
    with pytest.raises(ValueError, match=r"openpose\.pose.*lacks MediaPipe Holistic.*BODY_25"):
        read_pose(tmp_path / "openpose.pose")
    (tmp_path / "junk.pose").write_text("not a pose")
    with pytest.raises(ValueError, match=r"junk\.pose: not a readable \.pose file"):
        read_pose(tmp_path / "junk.pose")
