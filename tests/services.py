"""Server processes for integration tests (test process side): a Service that can be stopped, killed and restarted,
waiting for readiness, and a throwaway PostgreSQL server from Debian's packages.

tests/cluster.py composes these into the standalone cluster; fault tests use `kill()` and `restart()` directly.
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import ROOT, free_port

POSTGRES_BINARIES = ("initdb", "pg_ctl", "postgres")


class Service:
    """A server process in its own process group (its children stop with it), logging to `<folder>/<name>.log`.

    `ready` says when a (re)started process serves; start() and restart() wait for it, failing with the log's tail
    when the process dies first. The log is appended to across restarts; `log_since_start()` reads the latest.
    """

    def __init__(
        self,
        name: str,
        command: list[str],
        *,
        env: dict,
        folder: Path,
        ready: Callable[[Service], bool],
        timeout_s: float = 120,
        user: str | None = None,
        stop_signal: int = signal.SIGTERM,
        cwd: Path | None = None,
    ):
        self.name, self.command, self.env, self.folder = name, command, env, folder
        self.cwd = cwd or folder
        self.ready, self.timeout_s, self.user, self.stop_signal = ready, timeout_s, user, stop_signal
        self.log_path = folder / f"{name}.log"
        self.process: subprocess.Popen | None = None
        self._log = None
        self._log_offset = 0

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def start(self) -> Service:
        """Spawn the command and wait until `ready` says it serves."""
        if self.running():
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        self._log = open(self.log_path, "a")  # noqa: SIM115 - closed when the process is reaped
        self._log_offset = self._log.tell()
        self.process = subprocess.Popen(
            self.command,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=self.cwd,
            user=self.user,
        )
        wait_for(f"{self.name} ready", lambda: self.ready(self), self.timeout_s, [self])
        return self

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_since_start(self) -> str:
        with open(self.log_path, errors="replace") as log:
            log.seek(self._log_offset)
            return log.read()

    def died(self) -> str | None:
        if self.process is None or self.process.poll() is None:
            return None
        return f"{self.name} exited with {self.process.returncode}:\n{self.log_since_start()[-2000:]}"

    def stop(self, timeout_s: float = 30) -> None:
        """`stop_signal` to the process group; SIGKILL when it has not exited after `timeout_s`."""
        if self.running():
            os.killpg(self.process.pid, self.stop_signal)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
        self._close()

    def kill(self) -> None:
        """SIGKILL the whole process group (a crashed machine: no shutdown hooks, children die too)."""
        if self.running():
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self._close()

    def restart(self) -> Service:
        """Stop it if it still runs, then start the same command with the same environment and wait until ready."""
        self.stop()
        return self.start()

    def _close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


def wait_for(what: str, check: Callable[[], bool], timeout_s: float, services: list[Service]) -> None:
    """Poll `check` until it is true; fail with the log of a service that died, or at the timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for service in services:
            if message := service.died():
                pytest.fail(f"{what}: {message}")
        try:
            if check():
                return
        except Exception:  # not serving yet: refused connections, HTTP errors, a database still starting
            pass
        time.sleep(0.5)
    pytest.fail(f"{what}: not ready after {timeout_s} s (logs in {services[0].log_path.parent})")


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status == 200


def postgres_bin_dir() -> Path | None:
    """The folder with initdb, pg_ctl and postgres, found as scripts/install_test_postgres.sh finds it."""
    on_path = shutil.which("initdb")
    candidates = [Path(os.path.realpath(on_path)).parent] if on_path else []
    versions = glob.glob("/usr/lib/postgresql/*/bin")
    candidates += sorted((Path(p) for p in versions), key=lambda p: int(p.parent.name), reverse=True)
    for folder in candidates:
        if all(os.access(folder / name, os.X_OK) for name in POSTGRES_BINARIES):
            return folder
    return None


def find_or_install_postgres() -> Path:
    """PostgreSQL's binaries, installing Debian's package when they are missing; skips only where that fails."""
    if (found := postgres_bin_dir()) is not None:
        return found
    installed = subprocess.run(
        ["bash", str(ROOT / "scripts" / "install_test_postgres.sh")], capture_output=True, text=True, timeout=900
    )
    if (found := postgres_bin_dir()) is None:
        pytest.skip(
            "PostgreSQL (initdb, pg_ctl, postgres) is not on PATH nor under /usr/lib/postgresql/*/bin and "
            f"scripts/install_test_postgres.sh could not install it: {installed.stderr.strip()[-300:]}"
        )
    return found


class Postgres:
    """A throwaway PostgreSQL on 127.0.0.1 (free port, password auth, data in a temp folder) as a Service.

    PostgreSQL refuses to run as root: as root, initdb and the server run as the `postgres` user of Debian's
    package, with a data folder it owns outside pytest's root-only temp tree.
    """

    user = "mlflow"

    def __init__(self, log_folder: Path):
        bin_dir = find_or_install_postgres()
        self.os_user = "postgres" if os.geteuid() == 0 else None
        if self.os_user is not None:
            try:
                owner = pwd.getpwnam(self.os_user)
            except KeyError:
                pytest.skip("running as root and there is no `postgres` user to run PostgreSQL as")
        self.root = Path(tempfile.mkdtemp(prefix="sparktrain-pg-"))
        if self.os_user is not None:
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
        self.port, self.password = free_port(), secrets.token_urlsafe(18)
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self.os_user is not None:
            os.chown(pwfile, owner.pw_uid, owner.pw_gid)
        data = self.root / "data"
        initdb = [str(bin_dir / "initdb"), "-D", str(data), "-U", self.user, f"--pwfile={pwfile}"]
        subprocess.run(
            [*initdb, "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C"],
            check=True, capture_output=True, timeout=120, user=self.os_user, cwd=self.root,
        )  # fmt: skip
        pwfile.unlink()
        server = [str(bin_dir / "postgres"), "-D", str(data), "-p", str(self.port), "-c", "listen_addresses=127.0.0.1"]
        server += ["-c", f"unix_socket_directories={self.root}", "-c", "fsync=off", "-c", "full_page_writes=off"]
        env = {"PATH": os.environ.get("PATH", ""), "LANG": "C"}
        # SIGINT is PostgreSQL's fast shutdown (SIGTERM waits for every client, e.g. mlflow's connection pool).
        self.service = Service(
            "postgres", server, env=env, folder=log_folder, ready=self._accepts_connections,
            user=self.os_user, stop_signal=signal.SIGINT, timeout_s=60, cwd=self.root,
        )  # fmt: skip

    def _accepts_connections(self, _service: Service) -> bool:
        self.connect().close()
        return True

    def connect(self, dbname: str = "postgres"):
        import psycopg2

        return psycopg2.connect(self.dsn(dbname), connect_timeout=5)

    def dsn(self, dbname: str) -> str:
        """A libpq connection string (psycopg2.connect) for one database."""
        return f"host=127.0.0.1 port={self.port} user={self.user} password={self.password} dbname={dbname}"

    def sqlalchemy_uri(self, dbname: str) -> str:
        """The URI MLflow takes for a database (backend store, auth store)."""
        return f"postgresql+psycopg2://{self.user}:{self.password}@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, name: str) -> None:
        connection = self.connect()
        connection.autocommit = True  # CREATE DATABASE cannot run inside a transaction
        try:
            with connection.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{name}"')
        finally:
            connection.close()

    def remove(self) -> None:
        self.service.stop()
        shutil.rmtree(self.root, ignore_errors=True)
