"""Pretrained models shipped inside the package, loaded offline by name.

``signlang/pretrained/<name>/`` is an ordinary model bundle (sha256 of every file in its
``manifest.json``) plus a ``MODEL_CARD.md`` and its ONNX export in ``onnx/`` (sha256 of every
``.onnx`` file in ``onnx/manifest.json``), so that the shipped model runs on ONNX Runtime without
torch and is never exported at start; ``signlang/pretrained/index.json`` pins the sha256 of both
manifests, so a changed manifest is refused as well as a changed weight file.
:func:`resolve_model` is what ``predict``, ``serve`` and ``live`` call for their ``--model``: a
path is used as it is, a name is looked up here, and no model at all means :data:`DEFAULT_PRETRAINED`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from signlang._io import sha256_file

PRETRAINED_DIR = Path(__file__).resolve().parents[1] / "pretrained"
"""Folder of the shipped pretrained bundles (``src/signlang/pretrained``)."""
INDEX_FILE = "index.json"
ONNX_SUBDIR = "onnx"
"""The shipped ONNX export inside a pretrained folder (pinned in the index as ``onnx_manifest_sha256``)."""
DEFAULT_PRETRAINED = "asl-cafe"
"""The model used when a command is given no ``--model``."""


class PretrainedError(ValueError):
    """A pretrained model that is unknown, missing or does not match its pinned hash."""


def pretrained_index(folder: Path = PRETRAINED_DIR) -> dict[str, dict[str, str]]:
    """``{name: {"manifest_sha256": ..., "onnx_manifest_sha256": ..., "description": ...}}`` from
    ``index.json`` (empty when absent); ``description`` is the model card's one line (``signlang signs``)."""
    path = folder / INDEX_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise PretrainedError(f"{path}: unreadable ({exc})") from None
    if not isinstance(data, dict):
        raise PretrainedError(f"{path}: expected a mapping of model names")
    return data


def pretrained_names(folder: Path = PRETRAINED_DIR) -> list[str]:
    """The names of the pretrained models this installation ships."""
    return sorted(pretrained_index(folder))


def pretrained_path(name: str, folder: Path = PRETRAINED_DIR) -> Path:
    """The bundle folder of pretrained model ``name``, after checking its manifest's pinned sha256.

    The bundle's own files are checked against that manifest when it is loaded
    (:func:`signlang.models.bundle.load_bundle`), so the whole model is pinned by ``index.json``.
    """
    index = pretrained_index(folder)
    if name not in index:
        known = ", ".join(sorted(index)) or "none installed"
        raise PretrainedError(f"unknown pretrained model {name!r}; known: {known}")
    path = folder / name
    manifest = path / "manifest.json"
    if not manifest.is_file():
        raise PretrainedError(f"{manifest}: pretrained model {name!r} is listed in {folder / INDEX_FILE} but its files are missing")
    pins = {manifest: index[name].get("manifest_sha256")}
    if index[name].get("onnx_manifest_sha256"):
        pins[path / ONNX_SUBDIR / "manifest.json"] = index[name]["onnx_manifest_sha256"]
    for file, pinned in pins.items():
        if not file.is_file():
            raise PretrainedError(f"{file}: pretrained model {name!r} is listed in {folder / INDEX_FILE} but this file is missing")
        digest = sha256_file(file)
        if digest != pinned:
            raise PretrainedError(f"{file}: sha256 {digest} does not match {folder / INDEX_FILE} ({pinned}); "
                                  "the pretrained model was modified")
    return path


def resolve_model(model: str | os.PathLike[str] | None, folder: Path = PRETRAINED_DIR) -> Path:
    """A model folder for ``--model``: an existing path as given, else a pretrained name, else (None) the default."""
    if model is None:
        return pretrained_path(DEFAULT_PRETRAINED, folder)
    path = Path(model)
    if path.exists():
        return path
    if str(model) in pretrained_index(folder):
        return pretrained_path(str(model), folder)
    known = ", ".join(pretrained_names(folder)) or "none installed"
    raise PretrainedError(f"--model {model}: no such folder, and not a pretrained model name (pretrained: {known})")


def model_vocabulary(folder: str | os.PathLike[str]) -> list[str]:
    """The signs a model folder (a bundle or an ONNX export) answers with, in its class order, read
    from its ``manifest.json`` without loading the model."""
    path = Path(folder) / "manifest.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: unreadable manifest ({exc}); not a signlang model folder") from None
    classes = data.get("classes") if isinstance(data, dict) else None
    if not isinstance(classes, list) or not classes:
        raise ValueError(f"{path}: has no 'classes' list; not a signlang model folder")
    return [str(c) for c in classes]
