"""What `multiLine=true` costs Spark's CSV reader: one file read with and without it, local[2], side by side.

A multi-line CSV cannot be split (a record may cross any byte offset), so each file is one task; without it Spark
splits a file into `spark.max_partition_mb` pieces read in parallel. pipeline/data/csv_dialect.py therefore turns
multiLine on only where a file's head shows a quoted line break. Input: the flights demo CSV (336,776 rows, from
`python -m pipeline demo-data`), parsed fully (`count` of a typed column forces every field to be read).

    python benchmarks/csv_multiline.py [--csv data/raw/flights/flights.csv] [--repeat 3] [--smoke]

Last run (results/csv_multiline.json): the demo CSV 8 times over in one 248 MB file, idle 2-core machine: best
4.06 s split vs 5.59 s multiLine (1.38x). On 2 cores the loss is one core; on a cluster it is every core but one
per file, hence the sniff rather than multiLine always.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from harness import ROOT, bench_parser, scratch_dir, write_result


def quoted_csv(path: Path, rows: int = 2_000) -> Path:
    """A small RFC 4180 file whose text field has line breaks and doubled quotes (--smoke)."""
    lines = ["id,text,value"] + [f'{i},"line one\nsaid ""hi"", {i}",{i / 7:.3f}' for i in range(rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--csv", default=str(ROOT / "data/raw/flights/flights.csv"))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    if args.smoke:
        args.csv, args.repeat = str(quoted_csv(scratch_dir(args, ROOT / "data" / "bench") / "quoted.csv")), 1
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark.sql import functions as F

    from pipeline.config.schema import SparkConfig
    from pipeline.data.session import build_spark

    spark = build_spark(SparkConfig(master="local[2]", app_name="csv-multiline"))
    seconds: dict[str, list[float]] = {"false": [], "true": []}
    for _ in range(args.repeat):
        for multiline in ("false", "true"):  # interleaved: the machine's noise hits both
            frame = spark.read.options(header="true", quote='"', escape='"', multiLine=multiline).csv(args.csv)
            started = time.perf_counter()
            rows = frame.select(F.count(F.coalesce(*[F.col(c) for c in frame.columns]))).first()[0]
            seconds[multiline].append(time.perf_counter() - started)
    spark.stop()
    best = {k: min(v) for k, v in seconds.items()}
    result = {
        "csv": args.csv,
        "rows": rows,
        "bytes": Path(args.csv).stat().st_size,
        "seconds": seconds,
        "multiline_true_over_false": round(best["true"] / best["false"], 2),
    }
    write_result(args, "csv_multiline", result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
