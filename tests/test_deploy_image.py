"""The serving image's recipe: exact pins that satisfy the `serve-onnx` extra, and a build script
that leaves no base tarball behind. The real podman build runs in tests/test_container.py (slow)."""

from __future__ import annotations

import os
import subprocess
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "deploy" / "requirements-serve-onnx.txt"


def _pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in LOCK.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, sep, version = line.partition("==")
            assert sep and version and not any(c in version for c in "<>=~!*,"), f"{LOCK.name}: not an exact pin: {line!r}"
            pins[name.strip().lower().replace("_", "-")] = version.strip()
    return pins


def test_lock_pins_every_serve_onnx_requirement_within_its_range() -> None:
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["serve-onnx"]
    pins = _pins()
    for spec in extra:
        req = Requirement(spec)
        if req.marker is not None and not req.marker.evaluate({"sys_platform": "linux"}):
            continue
        name = req.name.lower().replace("_", "-")
        assert name in pins, f"{LOCK.name} lacks {name} (serve-onnx requires {spec})"
        assert req.specifier.contains(pins[name], prereleases=True), f"{LOCK.name}: {name}=={pins[name]} outside {spec}"
    assert "torch" not in pins and "mediapipe" not in pins


def test_dockerfile_installs_the_pins_not_the_ranges() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "COPY deploy/requirements-serve-onnx.txt" in dockerfile
    assert "pip install --no-deps -r deploy/requirements-serve-onnx.txt" in dockerfile
    assert "optional-dependencies']['serve-onnx']" not in dockerfile  # the ranges are no longer read at build time


def _fake_tools(bin_dir: Path, log: Path) -> None:
    """podman and mmdebstrap that record their calls (the real ones run in test_container.py)."""
    bin_dir.mkdir()
    (bin_dir / "podman").write_text(f'#!/bin/sh\necho "podman $*" >> {log}\n'
                                    'case "$*" in *"image exists"*) exit 1;; esac\nexit 0\n')
    (bin_dir / "mmdebstrap").write_text(f'#!/bin/sh\necho "mmdebstrap $*" >> {log}\n'
                                        'for last; do :; done\nhead -c 4096 /dev/zero > "$last"\n')
    for tool in ("podman", "mmdebstrap"):
        (bin_dir / tool).chmod(0o755)


@pytest.mark.parametrize("keep", [False, True])
def test_build_script_removes_its_own_base_tarball(tmp_path: Path, keep: bool) -> None:
    log = tmp_path / "calls.log"
    _fake_tools(tmp_path / "bin", log)
    base_tar = tmp_path / "mine.tar"
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}", "TMPDIR": str(tmp_path / "tmp"),
           "BASE_TAR": str(base_tar) if keep else ""}
    (tmp_path / "tmp").mkdir()
    run = subprocess.run([str(ROOT / "deploy" / "build-image.sh"), "localhost/signlang:unit"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    calls = log.read_text()
    assert "mmdebstrap" in calls and "import" in calls and " build " in calls
    if keep:
        assert base_tar.stat().st_size == 4096  # the caller's tarball is kept for the next build
    else:
        assert not any((tmp_path / "tmp").rglob("*.tar")), "the script's own 225 MB base tarball was left behind"
