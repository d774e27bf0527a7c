"""spark-submit entry point: prepare raw data into clean/quarantine/features Parquet and a feature spec."""

import sys

from pipeline.cli import main

if __name__ == "__main__":
    sys.exit(main(["prepare", *sys.argv[1:]]))
