"""The 75-point layout: 258 <-> 75x3 conversion on the real data, missing parts, mirroring."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from signlang.landmarks import layout as L


@pytest.fixture(scope="module")
def real_flat(traduttore_npz: Path) -> np.ndarray:
    """The first 300 real sequences, (300, 20, 258) float32."""
    with np.load(traduttore_npz) as z:
        return z["X"][:300].astype(np.float32)


def test_from_258_round_trip_on_real_data(real_flat: np.ndarray) -> None:
    lm, vis = L.from_258(real_flat)
    assert lm.shape == (300, 20, 75, 3) and lm.dtype == np.float32
    assert vis.shape == (300, 20, 33)
    back = L.to_258(lm, vis)
    np.testing.assert_array_equal(back, real_flat)
    # coordinates are the ones in the flat vector, visibility is the pose's fourth value
    pose4 = real_flat[..., :132].reshape(300, 20, 33, 4)
    present = ~np.isnan(lm[..., 0, 0])
    np.testing.assert_array_equal(lm[..., :33, :][present], pose4[..., :3][present])
    np.testing.assert_array_equal(vis[present], pose4[..., 3][present])
    right = real_flat[..., 195:].reshape(300, 20, 21, 3)
    has_right = ~np.all(right == 0, axis=(-2, -1))
    np.testing.assert_array_equal(lm[..., 54:75, :][has_right], right[has_right])


def test_undetected_hands_in_real_data_become_nan(real_flat: np.ndarray) -> None:
    lm, _ = L.from_258(real_flat)
    left_zero = np.all(real_flat[..., 132:195] == 0, axis=-1)
    assert left_zero.any() and (~left_zero).any()  # the sample has both cases
    assert np.all(np.isnan(lm[..., L.LEFT_HAND, :][left_zero]))
    assert not np.any(np.isnan(lm[..., L.LEFT_HAND, :][~left_zero]))


def test_zeros_become_nan_per_part_only() -> None:
    rng = np.random.default_rng(0)
    flat = rng.uniform(0.1, 0.9, (4, L.FLAT_DIM)).astype(np.float32)
    flat[0, 132:195] = 0.0  # frame 0: left hand missing
    flat[1, 195:] = 0.0  # frame 1: right hand missing
    flat[2, :132] = 0.0  # frame 2: pose missing
    lm, vis = L.from_258(flat)
    present = L.part_present(lm)
    np.testing.assert_array_equal(
        present, [[True, False, True], [True, True, False], [False, True, True], [True, True, True]]
    )
    assert np.all(np.isnan(lm[0, L.LEFT_HAND])) and not np.any(np.isnan(lm[0, L.RIGHT_HAND]))
    assert np.all(vis[2] == 0.0) and np.all(vis[0] > 0)
    # a single zero coordinate inside a detected part is kept, not turned into NaN
    flat2 = flat[3:4].copy()
    flat2[0, 195] = 0.0
    assert L.from_258(flat2)[0][0, L.RIGHT_HAND.start, 0] == 0.0


def test_to_258_without_visibility_marks_present_pose_points() -> None:
    lm = np.full((2, 75, 3), 0.5, dtype=np.float32)
    lm[1, L.POSE] = np.nan
    flat = L.to_258(lm)
    assert flat.shape == (2, 258) and not np.isnan(flat).any()
    pose4 = flat[:, :132].reshape(2, 33, 4)
    assert np.all(pose4[0, :, 3] == 1.0) and np.all(pose4[1] == 0.0)


def test_from_258_rejects_wrong_width() -> None:
    with pytest.raises(ValueError, match="258"):
        L.from_258(np.zeros((5, 257)))
    with pytest.raises(ValueError, match="75, 3"):
        L.to_258(np.zeros((5, 75, 2)))


def test_mirror_permutation_is_an_involution_swapping_sides() -> None:
    perm = L.MIRROR_PERMUTATION
    assert sorted(perm.tolist()) == list(range(75))
    np.testing.assert_array_equal(perm[perm], np.arange(75))
    assert perm[L.LEFT_SHOULDER] == L.RIGHT_SHOULDER and perm[L.RIGHT_SHOULDER] == L.LEFT_SHOULDER
    assert perm[L.LEFT_WRIST_POSE] == L.RIGHT_WRIST_POSE
    assert perm[L.NOSE] == L.NOSE
    np.testing.assert_array_equal(perm[L.LEFT_HAND], np.arange(54, 75))
    np.testing.assert_array_equal(perm[L.RIGHT_HAND], np.arange(33, 54))
    names = L.landmark_names()
    for i, j in enumerate(perm):  # every swap pairs a left_ name with the matching right_ name
        a, b = names[i], names[j]
        assert a.replace("left", "X").replace("right", "X") == b.replace("left", "X").replace("right", "X")


def test_as_landmarks_shapes_and_error() -> None:
    rng = np.random.default_rng(1)
    a = rng.random((7, 75, 3))
    np.testing.assert_allclose(L.as_landmarks(a), a.astype(np.float32))
    np.testing.assert_allclose(L.as_landmarks(a.reshape(7, 225)), a.astype(np.float32))
    flat = L.to_258(a.astype(np.float32))
    assert L.as_landmarks(flat).shape == (7, 75, 3)
    assert L.as_landmarks(a).dtype == np.float32
    with pytest.raises(ValueError, match=r"myclip: expected shape .*\(7, 74, 3\)"):
        L.as_landmarks(np.zeros((7, 74, 3)), name="myclip")
    with pytest.raises(ValueError, match="myclip"):
        L.as_landmarks(np.zeros(10), name="myclip")


def test_atomic_write_leaves_ordinary_permissions_and_no_temporary(tmp_path) -> None:
    import os

    from signlang._io import atomic_write

    target = tmp_path / "out.bin"
    with atomic_write(target) as fh:
        fh.write(b"abc")
    umask = os.umask(0)
    os.umask(umask)
    assert target.read_bytes() == b"abc"
    assert (target.stat().st_mode & 0o777) == (0o666 & ~umask)
    try:
        with atomic_write(target) as fh:
            fh.write(b"half")
            raise RuntimeError("killed mid-write")
    except RuntimeError:
        pass
    assert target.read_bytes() == b"abc"  # the old file is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]
