"""Feature Parquet encodings: how fast each one decodes to the numpy arrays the training loader builds, one run.

Reads the train features prepare wrote (`--work-dir`, from `make demo` or `python -m pipeline prepare`), reports
the encoding Spark's writer gave them, rewrites the same rows with each candidate encoding and compression
(pyarrow, 128K-row groups), and times decoding every row group on one thread (as the loader's prefetch thread
does), interleaved, best of `--repeats`. Answers which encoding prepare should write; the loader's other costs
are in benchmarks/loader.py.

    python benchmarks/parquet_encoding.py [--work-dir work] [--repeats 15] [--smoke]
"""

from __future__ import annotations

import glob
import json
import os
import tempfile
import time

from harness import ROOT, bench_parser, write_result

VARIANTS = {
    "dictionary + snappy (Spark's default)": {"use_dictionary": True, "compression": "snappy"},
    "dictionary, uncompressed": {"use_dictionary": True, "compression": "none"},
    "plain + snappy": {"use_dictionary": False, "compression": "snappy"},
    "plain, uncompressed": {"use_dictionary": False, "compression": "none"},
    "plain + lz4": {"use_dictionary": False, "compression": "lz4"},
    "plain + zstd": {"use_dictionary": False, "compression": "zstd"},
    "byte_stream_split + zstd": {"use_dictionary": False, "compression": "zstd", "use_byte_stream_split": True},
}
ROW_GROUP = 128 * 1024


def spark_encoding(path: str) -> dict:
    """What prepare's writer gave the first feature column of one file."""
    import pyarrow.parquet as pq

    metadata = pq.ParquetFile(path).metadata
    column = metadata.row_group(0).column(0)
    return {
        "writer": metadata.created_by,
        "column": column.path_in_schema,
        "encodings": list(column.encodings),
        "compression": column.compression,
    }


def decode_seconds(path: str) -> float:
    """Every row group to numpy arrays, one thread."""
    import pyarrow.parquet as pq

    started = time.perf_counter()
    handle = pq.ParquetFile(path)
    for index in range(handle.num_row_groups):
        for column in handle.read_row_group(index, use_threads=False).columns:
            column.to_numpy()
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    parser = bench_parser(__doc__.splitlines()[0])
    parser.add_argument("--work-dir", default=str(ROOT / "work"), help="work_dir of a prepared demo")
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args(argv)
    if args.smoke:
        args.repeats = 1
    import pyarrow as pa
    import pyarrow.parquet as pq

    written = sorted(glob.glob(os.path.join(args.work_dir, "prepared", "features", "train", "*.parquet")))
    if not written:
        raise SystemExit(f"no prepared features under {args.work_dir}/prepared: run `make demo` first")
    table = pa.concat_tables([pq.read_table(path) for path in written])
    folder = tempfile.mkdtemp(prefix="encoding-bench-")
    paths = {name: os.path.join(folder, f"{i}.parquet") for i, name in enumerate(VARIANTS)}
    for name, options in VARIANTS.items():
        pq.write_table(table, paths[name], row_group_size=ROW_GROUP, **options)
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for _ in range(args.repeats):
        for name in VARIANTS:
            times[name].append(decode_seconds(paths[name]))
    default = min(times[next(iter(VARIANTS))])
    result = {
        "rows": table.num_rows,
        "columns": table.num_columns,
        "prepare_wrote": spark_encoding(written[0]),
        "variants": {
            name: {
                "megabytes": round(os.path.getsize(paths[name]) / 1e6, 1),
                "decode_seconds": round(min(times[name]), 4),
                "vs_spark_default": round(min(times[name]) / default, 2),
            }
            for name in VARIANTS
        },
        "command": "python benchmarks/parquet_encoding.py" + (" --smoke" if args.smoke else ""),
    }
    write_result(args, "parquet_encoding", result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
