"""Benchmarks: an edge beside ``cli/`` and ``serve/``.

It may import any stage; no stage imports it. One module per benchmark (measurement logic and its
markdown/JSON rendering); ``bench/common.py`` holds what every benchmark shares: where the shared
data lives, timing, a description of the machine and the report writer. ``cli/`` only parses
arguments and calls into this package.
"""
