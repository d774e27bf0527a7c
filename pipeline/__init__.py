"""sparktrain: a distributed training pipeline on Spark (prepare -> train -> register -> score)."""

__version__ = "0.1.0"
