"""Small I/O helpers shared by every stage: atomic writes and checksums.

Everything the project writes goes through :func:`atomic_write` (temporary file in the same
folder, fsync, then ``os.replace``) so that a killed process never leaves a half-written file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

TMP_PREFIX = ".tmp-"
_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary sibling of ``path`` for writing; rename it over ``path`` on success.

    On an exception the temporary file is removed and ``path`` is untouched.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX + target.name + ".", dir=target.parent)
    try:
        # mkstemp creates 0600; give the file the permissions an ordinary open() would.
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary sibling folder of ``path`` to fill; on success it replaces ``path`` as a whole
    (the old folder is moved aside, then removed). On an exception it is removed and ``path`` is
    untouched, so readers see the old folder or the new one, never a half-written one."""
    import shutil
    import uuid

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f"{TMP_PREFIX}{target.name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
        old = None
        if target.exists():
            old = target.parent / f"{TMP_PREFIX}{target.name}-old-{uuid.uuid4().hex[:8]}"
            os.replace(target, old)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_write(path, "w") as fh:
        json.dump(obj, fh, indent=2, sort_keys=False)
        fh.write("\n")


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def remove_stale_temporaries(folder: str | os.PathLike[str]) -> int:
    """Delete leftovers of :func:`atomic_write` from a killed run; returns how many."""
    n = 0
    for p in Path(folder).glob(TMP_PREFIX + "*"):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
            n += 1
    return n


YAML_EXP_FLOAT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+$")
"""``1e-4``: a float in YAML 1.2 but a string to PyYAML's YAML 1.1 resolver (which needs a dot)."""


def load_yaml(text: str) -> Any:
    """``yaml.safe_load`` that also reads ``1e-4`` (no dot) as a float, as YAML 1.2 does."""
    import yaml

    global _YamlLoader
    if _YamlLoader is None:
        loader = type("SignlangYamlLoader", (yaml.SafeLoader,), {})
        loader.add_implicit_resolver("tag:yaml.org,2002:float", YAML_EXP_FLOAT, list("-+0123456789."))
        _YamlLoader = loader
    return yaml.load(text, Loader=_YamlLoader)  # noqa: S506 - a SafeLoader subclass


_YamlLoader: Any = None
