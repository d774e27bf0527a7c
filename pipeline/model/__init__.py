"""Shipped inside the registered model: feature spec + pandas transform, networks, losses, the pyfunc.

The only code a registered model carries (its `code_paths`); imports neither pyspark nor the config package.
"""
