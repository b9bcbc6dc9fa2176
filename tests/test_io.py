"""Shared helpers of signlang._io: whole-folder replacement and the YAML loader."""

from __future__ import annotations

from pathlib import Path

import pytest

from signlang._io import TMP_PREFIX, atomic_dir, load_yaml


def test_atomic_dir_replaces_the_whole_folder_or_nothing(tmp_path: Path) -> None:
    target = tmp_path / "bundle"
    with atomic_dir(target) as staging:
        (staging / "a.txt").write_text("one")
    assert [p.name for p in target.iterdir()] == ["a.txt"]
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as staging:
            (staging / "b.txt").write_text("half")
            raise RuntimeError("killed half-way")
    assert [p.name for p in target.iterdir()] == ["a.txt"]  # untouched
    with atomic_dir(target) as staging:
        (staging / "c.txt").write_text("two")
    assert [p.name for p in target.iterdir()] == ["c.txt"]  # replaced as a whole
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(TMP_PREFIX)]  # nothing left behind


def test_load_yaml_reads_exponents_without_a_dot_as_floats() -> None:
    assert load_yaml("lr: 1e-4\nwd: 1.0e-2\nn: 3\nname: x1e4\n") == {"lr": 1e-4, "wd": 1e-2, "n": 3, "name": "x1e4"}
