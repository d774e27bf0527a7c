"""Prepare throughput: Spark local[2] and local[1] vs a straightforward pandas clean + fit + transform.

Generates a flights-like CSV (default 5M rows) with realistic dirt, then runs each contender in its own
process (so peak memory is per contender) on the same file, and writes benchmarks/results/prepare.json.
Passes over the raw input are measured, not assumed: bytes the JVM read (/proc/<pid>/io rchar) / CSV size.

    python benchmarks/prepare.py [--rows 5000000] [--smoke]
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from harness import ROOT, bench_parser, scratch_dir, write_result

CARRIERS = np.array(["UA", "B6", "EV", "DL", "AA", "MQ", "US", "9E", "WN", "VX", "FL", "AS", "F9", "YV", "HA", "OO"])
AIRPORTS = np.array([f"A{i:02d}" for i in range(100)])
COLUMNS = [
    "flight_id",
    "flight_date",
    "carrier",
    "origin",
    "dest",
    "distance",
    "dep_hour",
    "temp",
    "wind_speed",
    "precip",
    "arr_delay",
]


def generate(path: Path, rows: int, seed: int = 0) -> dict:
    """Write the CSV in chunks; returns how much dirt of each kind was planted."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    planted = {"malformed": 0, "bad_number": 0, "null_label": 0, "duplicate": 0, "out_of_range": 0}
    chunk = 500_000
    with open(path, "w") as out:
        out.write(",".join(COLUMNS) + "\n")
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            ids = np.arange(start, start + n)
            days = rng.integers(0, 365, n)
            frame = pd.DataFrame(
                {
                    "flight_id": ids,
                    "flight_date": (np.datetime64("2013-01-01") + days).astype(str),
                    "carrier": CARRIERS[rng.integers(0, len(CARRIERS), n)],
                    "origin": AIRPORTS[rng.integers(0, 3, n)],
                    "dest": AIRPORTS[rng.zipf(1.5, n) % len(AIRPORTS)],
                    "distance": rng.gamma(2.0, 500.0, n).round(0),
                    "dep_hour": rng.integers(5, 23, n),
                    "temp": rng.normal(55, 17, n).round(1),
                    "wind_speed": np.abs(rng.normal(10, 5, n)).round(2),
                    "precip": np.where(rng.random(n) < 0.9, 0.0, rng.exponential(0.1, n)).round(2),
                    "arr_delay": rng.normal(5, 40, n).round(0),
                }
            ).astype(object)
            dirt = rng.random(n)
            frame.loc[dirt < 0.01, "temp"] = None  # missing weather
            frame.loc[(dirt >= 0.01) & (dirt < 0.02), "arr_delay"] = None  # cancelled: no label
            frame.loc[(dirt >= 0.02) & (dirt < 0.021), "distance"] = "n/a"  # unparsable number
            frame.loc[(dirt >= 0.021) & (dirt < 0.022), "distance"] = -5  # out of range
            dup = (dirt >= 0.022) & (dirt < 0.023)
            frame.loc[dup, "flight_id"] = frame.loc[dup, "flight_id"] - 1  # duplicate key
            planted["null_label"] += int(((dirt >= 0.01) & (dirt < 0.02)).sum())
            planted["bad_number"] += int(((dirt >= 0.02) & (dirt < 0.021)).sum())
            planted["out_of_range"] += int(((dirt >= 0.021) & (dirt < 0.022)).sum())
            planted["duplicate"] += int(dup.sum())
            text = frame.to_csv(header=False, index=False, na_rep="NA")
            lines = text.splitlines()
            for i in rng.integers(0, n, max(1, n // 2000)):  # wrong field count
                lines[i] = lines[i].rsplit(",", 2)[0]
                planted["malformed"] += 1
            out.write("\n".join(lines) + "\n")
    return planted


def bench_config(csv: Path, work: Path, master: str) -> list[str]:
    overlay = {
        "work_dir": str(work),
        "spark": {"master": master, "shuffle_partitions": 8, "extra": {"spark.driver.memory": "6g"}},
        "data": {
            "sources": [
                {
                    "name": "flights",
                    "format": "csv",
                    "path": str(csv),
                    "options": {"nullValue": "NA"},
                    "schema": {
                        "flight_id": "bigint",
                        "flight_date": "date",
                        "carrier": "string",
                        "origin": "string",
                        "dest": "string",
                        "distance": "double",
                        "dep_hour": "int",
                        "temp": "double",
                        "wind_speed": "double",
                        "precip": "double",
                        "arr_delay": "double",
                    },
                }
            ],
            "query": "SELECT *, CASE WHEN arr_delay IS NULL THEN NULL ELSE CAST(arr_delay > 15 AS int) END AS late "
            "FROM flights",
            "key_columns": ["flight_id"],
        },
        "cleaning": {
            "required": ["flight_id", "carrier", "distance"],
            "ranges": {"distance": {"min": 1}},
            "dedup_on": ["flight_id"],
        },
        "features": {
            "numeric": [
                {"name": "distance", "log1p": True},
                {"name": "dep_hour"},
                {"name": "temp"},
                {"name": "wind_speed"},
                {"name": "precip", "log1p": True},
            ],
            "categorical": [
                {"name": "carrier", "top_k": 20},
                {"name": "origin", "top_k": 5},
                {"name": "dest", "top_k": 50},
            ],
            "label": {"column": "late", "task": "binary"},
        },
        "split": {"method": "hash", "key": "flight_id", "val_fraction": 0.1, "test_fraction": 0.1},
    }
    path = work / "bench.yaml"
    work.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(overlay))  # JSON is YAML
    return [str(path)]


def jvm_io(spark) -> int:
    pid = spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid()
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    return 0


def jvm_peak_rss_mb(spark) -> float:
    pid = spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid()
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run_spark(csv: Path, work: Path, master: str) -> dict:
    from pipeline.config.load import load_config
    from pipeline.data.preparation import prepare_data
    from pipeline.data.session import build_spark
    from pipeline.layout import Layout

    config = load_config(bench_config(csv, work, master))
    spark = build_spark(config.spark)
    before = jvm_io(spark)
    started = time.perf_counter()
    result = prepare_data(spark, config, Layout.from_config(config))
    seconds = time.perf_counter() - started
    read = jvm_io(spark) - before
    peak = jvm_peak_rss_mb(spark)
    spark.stop()
    counts = result.report.counts
    return {
        "seconds": seconds,
        "input_rows": counts.input_rows,
        "clean_rows": counts.clean_rows,
        "quarantined_rows": counts.quarantined_rows,
        # bytes read through Hadoop FileSystem during prepare / CSV size (from the quality report)
        "passes_over_input": result.report.raw_input_passes,
        "phase_seconds": result.report.phase_seconds,
        # every read() of the JVM incl. shuffle and cache spill, for context
        "jvm_bytes_read_over_input": round(read / csv.stat().st_size, 2),
        "peak_rss_mb": round(peak),
    }


def run_pandas(csv: Path, work: Path) -> dict:
    """The same clean + split + fit + transform as the Spark job, written the obvious way in pandas."""
    import pandas as pd

    from pipeline.model.spec import CategoricalVocab, FeatureSpec, LabelSpec, NumericStats

    started = time.perf_counter()
    raw = pd.read_csv(csv, dtype=str, keep_default_na=False, on_bad_lines="skip", engine="pyarrow")
    total_lines = sum(1 for _ in open(csv)) - 1
    malformed = total_lines - len(raw)
    typed = pd.DataFrame({"flight_id": pd.to_numeric(raw["flight_id"], errors="coerce")})
    reasons = pd.Series("", index=raw.index)
    for column in ["distance", "dep_hour", "temp", "wind_speed", "precip", "arr_delay"]:
        text = raw[column].replace("NA", None)
        typed[column] = pd.to_numeric(text, errors="coerce")
        failed = text.notna() & typed[column].isna()
        reasons = reasons.where(~failed, reasons + f"{column}: cannot cast; ")
    for column in ["carrier", "origin", "dest"]:
        typed[column] = raw[column].replace("NA", None)
    typed["late"] = (typed["arr_delay"] > 15).astype("float64").where(typed["arr_delay"].notna())
    reasons = reasons.where(typed["distance"].isna() | (typed["distance"] >= 1), reasons + "distance below min; ")
    reasons = reasons.where(typed["late"].notna(), reasons + "label null; ")
    reasons = reasons.where(~typed["flight_id"].duplicated(), reasons + "duplicate; ")
    bad = reasons != ""
    clean, quarantine = typed[~bad].copy(), raw[bad].assign(reason=reasons[bad])
    bucket = (pd.util.hash_pandas_object(clean["flight_id"], index=False) % 10_000) / 10_000
    split = np.where(bucket < 0.1, "test", np.where(bucket < 0.2, "val", "train"))
    train = clean[split == "train"]
    numeric = []
    for name, log1p in [
        ("distance", True),
        ("dep_hour", False),
        ("temp", False),
        ("wind_speed", False),
        ("precip", True),
    ]:
        values = train[name]
        median = float(values.median())
        shaped = values.fillna(median)
        shaped = np.sign(shaped) * np.log1p(np.abs(shaped)) if log1p else shaped
        numeric.append(NumericStats(name, median, float(shaped.mean()), float(shaped.std(ddof=0)), log1p))
    categorical = []
    for name, k in [("carrier", 20), ("origin", 5), ("dest", 50)]:
        counts = train[name].value_counts()
        categorical.append(CategoricalVocab(name, tuple(counts.index[:k])))
    spec = FeatureSpec(
        input_schema={}, numeric=tuple(numeric), categorical=tuple(categorical), label=LabelSpec("late", "binary")
    )
    out = work / "pandas"
    out.mkdir(parents=True, exist_ok=True)
    clean.to_parquet(out / "clean.parquet")
    quarantine.to_parquet(out / "quarantine.parquet")
    for name in ("train", "val", "test"):
        part = clean[split == name]
        num, cat = spec.transform_pandas(part)
        frame = pd.DataFrame(num, columns=spec.numeric_columns)
        frame[spec.categorical_columns] = cat.astype(np.int32)
        frame["label"] = part["late"].to_numpy(np.float32)
        frame.to_parquet(out / f"features_{name}.parquet", row_group_size=131_072)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "seconds": seconds,
        "input_rows": total_lines,
        "clean_rows": int((~bad).sum()),
        "quarantined_rows": int(bad.sum()) + malformed,
        "peak_rss_mb": round(peak),
    }


def child(kind: str, csv: Path, work: Path, master: str | None) -> dict:
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable}
    cmd = [sys.executable, __file__, "--child", kind, "--csv", str(csv), "--work", str(work)]
    if master:
        cmd += ["--master", master]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"{kind} {master or ''} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--data", default=str(ROOT / "data" / "bench"))
    parser.add_argument("--child", choices=["spark", "pandas"])
    parser.add_argument("--csv")
    parser.add_argument("--work")
    parser.add_argument("--master")
    args = parser.parse_args(argv)
    if args.child:
        sys.path.insert(0, str(ROOT))
        result = (
            run_spark(Path(args.csv), Path(args.work), args.master)
            if args.child == "spark"
            else run_pandas(Path(args.csv), Path(args.work))
        )
        print(json.dumps(result))
        return

    if args.smoke:
        args.rows = 3_000
    data = scratch_dir(args, Path(args.data))
    csv = data / f"flights_{args.rows}.csv"
    planted = None
    if not csv.exists():
        started = time.perf_counter()
        planted = generate(csv, args.rows)
        print(
            f"generated {csv} ({csv.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - started:.0f}s", flush=True
        )
    results = {}
    for name, kind, master in [
        ("pandas", "pandas", None),
        ("spark_local2", "spark", "local[2]"),
        ("spark_local1", "spark", "local[1]"),
    ]:
        results[name] = child(kind, csv, data / f"work_{name}", master)
        r = results[name]
        passes = f"passes over input {r['passes_over_input']}" if "passes_over_input" in r else ""
        print(
            f"{name:13s} {r['seconds']:7.1f}s {r['input_rows'] / r['seconds']:>10,.0f} rows/s "
            f"peak RSS {r['peak_rss_mb']} MB {passes}",
            flush=True,
        )
    rate = {k: v["input_rows"] / v["seconds"] for k, v in results.items()}
    summary = {
        "rows": args.rows,
        "csv_mb": round(csv.stat().st_size / 1e6),
        "planted_dirt": planted,
        "results": results,
        "ratio_spark_local2_vs_pandas": round(rate["spark_local2"] / rate["pandas"], 3),
        "ratio_local2_vs_local1": round(rate["spark_local2"] / rate["spark_local1"], 3),
        "targets": {"spark_local2_vs_pandas": 0.5, "local2_vs_local1": 1.8},
        "cpu_count": os.cpu_count(),
    }
    write_result(args, "prepare", summary)
    print(json.dumps({k: summary[k] for k in ("ratio_spark_local2_vs_pandas", "ratio_local2_vs_local1")}))


if __name__ == "__main__":
    main()
