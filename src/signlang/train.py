"""``python -m signlang.train``: train one neural model, distributed under ``torchrun``.

    torchrun --nproc_per_node=2 -m signlang.train --data DATA.npz --out runs/x [--config CFG]
        [--split blocked:0.2] [--model transformer|bilstm] [--max-steps K] [--set optim.lr=3e-4]

Single-process without torchrun. See :mod:`signlang.training.distributed`.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from signlang.training.distributed import run

    run(argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
