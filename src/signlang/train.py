"""Deprecated shim (one release): ``python -m signlang.train`` / ``torchrun ... -m signlang.train``.

Runs ``signlang train --ddp ...`` (a DDP worker of the main CLI: same config resolution, ``--set``
parser, preprocessing and split default). Use ``signlang train --nproc N`` on one machine, or
``torchrun ... -m signlang train --model NETWORK ...`` on several nodes.
"""

from __future__ import annotations

import sys
import warnings


def main(argv: list[str] | None = None) -> int:
    from signlang.cli import app

    args = list(sys.argv[1:] if argv is None else argv)
    if "--model" not in args:
        args = ["--model", "transformer", *args]  # this entry point always trained one network
    warnings.warn("`python -m signlang.train` is deprecated: use `signlang train --nproc N` "
                  "(or `torchrun ... -m signlang train`)", FutureWarning, stacklevel=2)
    app(["train", "--ddp", *args], prog_name="signlang")
    return 0


if __name__ == "__main__":
    sys.exit(main())
