"""The driver side of training: derive the ranks' plan from the config (planning.py, the one constructor), check
the model before launch, check task slots, launch the ranks with Horovod or TorchDistributor, and relaunch them
from the last checkpoint after a lost rank (recovery.py).

Runs on the Spark driver only; what it hands the ranks is a plan of plain values (pipeline/worker/plan.py).
"""
