"""Driver-side environment changes that last for one block only (the house rule: environment changes are scoped).

Used to hand the launchers' variables to the ranks and to turn off the MLflow client's own retries where the
pipeline backs off itself, bounded by tracking.outage_limit_s.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

# MLflow's client retries each request 7 times over about 4 minutes by default, which would override the limit.
NO_CLIENT_RETRIES = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}


@contextlib.contextmanager
def scoped_env(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the body only, restoring what was there before."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old
