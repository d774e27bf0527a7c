"""spark-submit entry point: champion/challenger retraining for one --date (its policy decides); exit code 0 / 2."""

import sys

from pipeline.cli import main

if __name__ == "__main__":
    sys.exit(main(["retrain", *sys.argv[1:]]))
