"""Judging a trained model on the driver, before registration: the constant baseline it must beat, the binary
decision threshold chosen on the validation split, and the figures (ROC, PR, confusion, curves) logged to its run.
"""
