"""spark-submit entry point: train on the prepared features (Horovod or TorchDistributor) and log to MLflow."""

import sys

from pipeline.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
