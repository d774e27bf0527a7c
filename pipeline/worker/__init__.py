"""Training ranks: the per-rank loop, loader, backends, checkpoints, placement.

Runs inside Horovod or TorchDistributor worker processes. Takes a plan of plain values and reports each epoch
through a callback the driver provides; imports no pyspark, no config and no tracking module.
"""
