"""spark-submit entry point: hyperparameter search (tune.space) with every trial a distributed training run."""

import sys

from pipeline.cli import main

if __name__ == "__main__":
    sys.exit(main(["tune", *sys.argv[1:]]))
