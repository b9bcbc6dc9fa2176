"""The pretrained model inside the package: found offline by name, pinned by sha256, and right on known clips."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from signlang.inference.pretrained import PretrainedError, pretrained_path, resolve_model


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
