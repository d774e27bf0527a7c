"""Driver side, before any work: the configured MLflow tracking server answers and accepts this job's credentials.

A job authenticates with MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN) from its
environment, which MLflow's client reads itself; they never come from the config. A server run with MLflow's
basic-auth app (`mlflow server --app-name basic-auth`, as docker-compose.yml runs it) answers its /health without
credentials, so they are checked on an endpoint that needs them, with what the client will send.
"""

from __future__ import annotations

import os

from pipeline.errors import TrackingError

USERNAME, PASSWORD, TOKEN = "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"
PROBE = "/api/2.0/mlflow/experiments/search"  # any user may search (results are filtered by permission)
FIX = (
    f"Fix: set {USERNAME} and {PASSWORD} in the job's environment (for a user the server knows; "
    "an admin creates users, see docs/operating.md#a-cluster)"
)


def check_server(uri: str) -> None:
    """Raise TrackingError, naming the URL and the fix, unless the server is up and accepts these credentials."""
    import requests

    base = uri.rstrip("/")
    try:
        response = requests.get(f"{base}/health", timeout=5)
        response.raise_for_status()
    except Exception as exc:
        raise TrackingError(
            f"MLflow tracking server {uri} is unreachable ({type(exc).__name__}). "
            "Fix: start it (mlflow server --host 127.0.0.1 --port 5000) or correct tracking.uri"
        ) from None
    try:
        response = requests.get(f"{base}{PROBE}", params={"max_results": 1}, timeout=30, **_credentials())
    except requests.RequestException as exc:
        raise TrackingError(
            f"MLflow tracking server {uri} answered /health but not {PROBE} ({type(exc).__name__}). "
            "Fix: check the server's log"
        ) from None
    if response.status_code == 401:
        raise TrackingError(_refused(uri))
    if response.status_code == 403:
        raise TrackingError(
            f"MLflow tracking server {uri} denied user '{os.environ.get(USERNAME)}' ({USERNAME}) access to "
            f"experiments (HTTP 403). Fix: have an admin grant that user a permission on the experiment "
            "(MLflow's auth REST API), or run the job as another user"
        )
    if response.status_code != 200:
        raise TrackingError(
            f"MLflow tracking server {uri} answered HTTP {response.status_code} to {PROBE}: "
            f"{response.text.strip()[:200]}. Fix: check the server's log (its backend store may be down)"
        )


def _credentials() -> dict:
    """requests' arguments for the credentials MLflow's client would send: basic auth when both variables are
    set, else a bearer token when one is."""
    username, password, token = (os.environ.get(name) for name in (USERNAME, PASSWORD, TOKEN))
    if username and password:
        return {"auth": (username, password)}
    if token:
        return {"headers": {"Authorization": f"Bearer {token}"}}
    return {}


def _refused(uri: str) -> str:
    """The 401 message: which variables are missing, or whose credentials were rejected (never the password)."""
    username, password = os.environ.get(USERNAME), os.environ.get(PASSWORD)
    if username and password:
        return (
            f"MLflow tracking server {uri} refused the credentials of user '{username}' from {USERNAME} / "
            f"{PASSWORD} (HTTP 401): wrong password or unknown user. {FIX}"
        )
    missing = [name for name, value in ((USERNAME, username), (PASSWORD, password)) if not value]
    unset = f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set"
    return f"MLflow tracking server {uri} requires credentials (HTTP 401) but {unset}. {FIX}"
