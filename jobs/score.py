"""spark-submit entry point: score one --date with the registered model; exit code 0 / non-zero for schedulers."""

import sys

from pipeline.cli import main

if __name__ == "__main__":
    sys.exit(main(["score", *sys.argv[1:]]))
