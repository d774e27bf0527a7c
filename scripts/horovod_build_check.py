"""Read `horovodrun --check-build` on stdin; exit 1 with the fix when the build lacks what this machine needs.

Called by scripts/install_horovod.sh (and tested in tests/unit/test_horovod_build_check.py). Every build needs
`[X] PyTorch` and `[X] Gloo`; the cuda flavour (a GPU, CUDA torch) also needs `[X] NCCL`: without it Horovod's
first CUDA allreduce throws inside its background loop and every rank waits forever.

Usage: horovodrun --check-build | python scripts/horovod_build_check.py cpu|cuda
"""

from __future__ import annotations

import re
import sys

REQUIRED = {"cpu": ("PyTorch", "Gloo"), "cuda": ("PyTorch", "Gloo", "NCCL")}


def missing_features(check_build_output: str, flavour: str) -> list[str]:
    """The required features `horovodrun --check-build` does not mark `[X]`."""
    built = set(re.findall(r"\[X\]\s+(\w+)", check_build_output))
    return [feature for feature in REQUIRED[flavour] if feature not in built]


def main(argv: list[str]) -> int:
    flavour = argv[1] if len(argv) > 1 else "cpu"
    if flavour not in REQUIRED:
        print(f"ERROR: unknown flavour {flavour!r}; expected one of {sorted(REQUIRED)}", file=sys.stderr)
        return 2
    missing = missing_features(sys.stdin.read(), flavour)
    if missing:
        print(
            f"ERROR: this Horovod build lacks {', '.join(missing)}, which the {flavour} flavour needs "
            "(see `horovodrun --check-build`).",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
