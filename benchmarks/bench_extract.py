"""Extraction benchmark (same as ``signlang benchmark extract``): raw Holistic loop vs. extract, 1 vs. 2 workers.

Usage: ``python benchmarks/bench_extract.py [VIDEOS_DIR] [--max-side S] [--repeats R]``.
Prints a markdown table for docs/benchmarks.md. The logic lives in
:mod:`signlang.landmarks.benchmark`, so the CLI and this script measure the same thing.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from signlang.landmarks.benchmark import default_videos_dir, markdown_table, run_benchmark


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("videos", nargs="?", type=Path, default=None, help="folder of videos (default: the 7 real ones)")
    parser.add_argument("--max-side", type=int, default=0, help="--max-side of the extract runs (0 = same pixels as raw)")
    parser.add_argument("--repeats", type=int, default=1, help="runs per variant; the fastest counts")
    args = parser.parse_args()
    result = run_benchmark(args.videos or default_videos_dir(), max_side=args.max_side or None, repeats=args.repeats)
    print(markdown_table(result))


if __name__ == "__main__":
    main()
