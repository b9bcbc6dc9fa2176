"""Shared fixtures: where the real data lives, and the rule for when it is absent.

Tests that need ``../shared/data`` take one of the fixtures below. Without that folder they
skip with the reason, except under ``CI=true``, where a missing data folder is a failure: CI must
never pass by skipping the tests that matter.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SIGNLANG_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


def _require(path: Path) -> Path:
    if path.exists():
        return path
    reason = f"real data not found at {path} (set SIGNLANG_SHARED_DATA or place ../shared/data beside the repo)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true and {reason}")
    pytest.skip(reason)


def require(ok: bool, reason: str) -> None:
    """Skip with ``reason`` when ``ok`` is false (a missing system part: chromium, ffmpeg, node), fail under CI=true."""
    if not ok:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true and {reason}")
        pytest.skip(reason)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return _require(SHARED_DATA)


@pytest.fixture(scope="session")
def traduttore_npz() -> Path:
    """``traduttore_asl_mediapipe.npz``: X (4693, 20, 258) float16, y, classes, seq_id, is_duplicate."""
    return _require(SHARED_DATA / "traduttore_asl_mediapipe" / "traduttore_asl_mediapipe.npz")


@pytest.fixture(scope="session")
def real_videos_dir() -> Path:
    """Folder of 7 short real signing videos (mp4)."""
    return _require(SHARED_DATA / "videos_real_signing")


@pytest.fixture(scope="session")
def include50_dir() -> Path:
    """INCLUDE-50 metadata: normalized_glosses.csv, train_include50.csv, test_include50.csv."""
    return _require(SHARED_DATA / "include50_split_metadata")


@pytest.fixture(scope="session")
def camera_clip(real_videos_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A .y4m for Chromium's fake camera (``--use-file-for-fake-video-capture``), made with ffmpeg from a real signing video."""
    import shutil
    import subprocess

    require(shutil.which("ffmpeg") is not None, "ffmpeg is not installed (apt-get install ffmpeg)")
    out = tmp_path_factory.mktemp("camera") / "clip.y4m"
    subprocess.run(["ffmpeg", "-y", "-loglevel", "error", "-i", str(real_videos_dir / "slp_pose_FOOTBALL.mp4"),
                    "-vf", "scale=640:360,fps=15", "-pix_fmt", "yuv420p", str(out)], check=True, timeout=120)
    return out


# The session-scoped ``tiny_bundle`` (a small trained ensemble saved as a bundle) and ``tiny_onnx``
# (its ONNX export) fixtures, shared by the inference, export, service and explanation tests.
from bundle_fixtures import predictor, tiny_bundle, tiny_onnx  # noqa: E402,F401
