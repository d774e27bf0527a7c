"""The pipeline's configuration: its shape (schema.py), loading and merging (load.py), its reference (reference.py).

Driver side only: workers and the registered model receive plain values resolved from it, never the config.
"""
