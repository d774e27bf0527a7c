"""A user's model code (train.model.code: a .py file or a package folder) carried to the training ranks as a zip.

Built on the driver (`CodeArchive.build`), pickled inside the TrainPlan, unpacked by each rank before the model
factory is imported (`activate`). Carrying the bytes in the plan, rather than relying on SparkContext.addPyFile,
reaches every process that runs a rank: Horovod's and torchrun's child processes as well as Spark's Python
workers, on local, local-cluster and standalone masters alike, with no shared file system. The registered
model gets the same file or folder through MLflow's `code_paths` (pipeline/tracking/registry.py).
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import shutil
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)
_SKIPPED = ("__pycache__", ".pyc", ".pyo")


@dataclass(frozen=True)
class CodeArchive:
    """The user's code as a zip whose top level is the importable name (`name.py` or `name/`)."""

    name: str  # the top-level module or package name it provides
    source: str  # where it came from on the driver (absolute), for messages
    digest: str
    payload: bytes

    @staticmethod
    def build(path: str | Path) -> CodeArchive:
        """Zip a .py file or a folder (deterministic order, caches left out). The caller checked that it exists."""
        root = Path(path).resolve()
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            if root.is_file():
                archive.write(root, root.name)
            else:
                for file in sorted(root.rglob("*")):
                    relative = file.relative_to(root.parent)
                    if file.is_file() and not any(part.endswith(_SKIPPED) for part in relative.parts):
                        archive.write(file, str(relative))
        payload = buffer.getvalue()
        name = root.stem if root.is_file() else root.name
        return CodeArchive(name, str(root), hashlib.sha256(payload).hexdigest()[:16], payload)

    def activate(self) -> str:
        """Unpack once per host and digest, and put it first on sys.path; returns the folder. Runs in a rank."""
        target = Path(tempfile.gettempdir()) / f"sparktrain-code-{self.digest}"
        if not target.exists():
            staging = Path(tempfile.mkdtemp(prefix=f"sparktrain-code-{self.digest}-"))
            with zipfile.ZipFile(io.BytesIO(self.payload)) as archive:
                archive.extractall(staging)
            try:
                os.rename(staging, target)  # atomic: ranks on one host may race; the loser's copy is dropped
            except OSError:
                shutil.rmtree(staging, ignore_errors=True)
                if not target.exists():
                    raise
        if str(target) not in sys.path:
            sys.path.insert(0, str(target))
        log.debug("user code %s (%s) on sys.path from %s", self.name, self.digest, target)
        return str(target)
