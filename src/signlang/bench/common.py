"""What every benchmark shares: the shared-data location, timing, machine info (the result type and its
one writer: :mod:`signlang.bench.registry`)."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


SHARED_DATA_ENV = "SIGNLANG_SHARED_DATA"


def shared_data_dir() -> Path:
    """The shared data folder: ``$SIGNLANG_SHARED_DATA``, else ``../shared/data`` beside the working dir.

    The working directory is used rather than ``__file__`` so a non-editable install finds the data
    when run from a checkout (``cd repo && signlang benchmark ...``).
    """
    env = os.environ.get(SHARED_DATA_ENV)
    if env:
        return Path(env)
    for base in (Path.cwd(), *Path.cwd().parents):
        candidate = base.parent / "shared" / "data"
        if candidate.is_dir():
            return candidate
    return Path.cwd().parent / "shared" / "data"


def shared_data_path(*parts: str) -> Path:
    """A path under :func:`shared_data_dir`, with a clear error when it is missing."""
    path = shared_data_dir().joinpath(*parts)
    if not path.exists():
        raise FileNotFoundError(f"{path}: not found (set ${SHARED_DATA_ENV} to the folder holding the shared data)")
    return path


def machine_info() -> dict[str, Any]:
    """CPU count, platform, Python, 1-minute load average and the torch thread count (if torch is there)."""
    info: dict[str, Any] = {"cpus": os.cpu_count(), "platform": platform.platform(),
                            "python": platform.python_version(), "load_avg_1m": round(os.getloadavg()[0], 2)}
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
    except ImportError:  # pragma: no cover - torch-less installs
        pass
    return info


def machine_line(info: dict[str, Any] | None = None) -> str:
    """One markdown line describing the machine."""
    m = info or machine_info()
    extra = f", torch threads {m['torch_threads']}" if "torch_threads" in m else ""
    return f"Machine: {m['cpus']} CPU(s){extra}, load {m['load_avg_1m']} (1 min), Python {m['python']}, {m['platform']}."


@contextmanager
def stopwatch() -> Iterator[Callable[[], float]]:
    """``with stopwatch() as elapsed: ...; elapsed()`` -> seconds since entry (frozen at exit)."""
    start = time.perf_counter()
    end: list[float] = []
    yield lambda: (end[0] if end else time.perf_counter()) - start
    end.append(time.perf_counter())
