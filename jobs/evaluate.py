"""spark-submit entry point: realised metrics of one scored --date once its outcomes arrived; exit code 0 / 2."""

import sys

from pipeline.cli import main

if __name__ == "__main__":
    sys.exit(main(["evaluate", *sys.argv[1:]]))
