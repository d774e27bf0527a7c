"""Checkpoint cost on object storage vs a local disk, through the pipeline's own storage layer (pipeline/storage/).

Saves and loads a checkpoint (pipeline/worker/checkpoint.py, weights + AdamW state of a network of the given size)
on a local folder and on s3:// of an S3-protocol server started on loopback (moto's server mode), interleaved,
and reports milliseconds per save and per load and the S3 ÷ local ratios. A loopback server measures the
protocol's overhead (HTTP, request signing, the multipart upload of large objects), not a network.

    python benchmarks/storage.py [--parameters 2000000] [--repeats 10] [--smoke]
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import numpy as np
from harness import ROOT, bench_parser, write_result

sys.path.insert(0, str(ROOT))
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_REGION": "us-east-1"}


def start_s3() -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        try:
            with urllib.request.urlopen(url, timeout=2):
                return server, url
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise RuntimeError("the S3 test server did not start")


def checkpoint_of(parameters: int) -> dict:
    """A checkpoint as the loop writes it: weights, AdamW's two moments per weight, counters and history."""
    import torch

    from pipeline.worker.checkpoint import checkpoint_state, new_best

    width = 1000
    model = {f"layer{i}.weight": torch.randn(width, width) for i in range(max(1, parameters // width**2))}
    state = {
        i: {"step": torch.tensor(5.0), "exp_avg": torch.randn_like(w), "exp_avg_sq": torch.rand_like(w)}
        for i, w in enumerate(model.values())
    }
    optimizer = {"state": state, "param_groups": [{"lr": 1e-3, "params": list(state)}]}
    return checkpoint_state(model, optimizer, 3, new_best(), [{"epoch": e} for e in range(4)])


def timed(action, repeats: int) -> float:
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        seconds.append(time.perf_counter() - started)
    return float(np.median(seconds)) * 1000


def main(argv: list[str] | None = None) -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--parameters", type=int, default=2_000_000)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args(argv)
    if args.smoke:
        args.parameters, args.repeats = 1_000_000, 2
    server, url = start_s3()
    try:
        os.environ.update({**CREDENTIALS, "AWS_ENDPOINT_URL": url})
        import boto3

        boto3.client("s3", endpoint_url=url, region_name="us-east-1").create_bucket(Bucket="bench")
        from pipeline.worker.checkpoint import load_checkpoint, save_checkpoint

        state = checkpoint_of(args.parameters)
        local = tempfile.mkdtemp(prefix="ckpt-bench-")
        places = {"local": local, "s3": "s3://bench/checkpoints"}
        result: dict = {"parameters": args.parameters, "repeats": args.repeats}
        for name, folder in places.items():  # interleaved per operation, each a median of its repeats
            result[f"{name}_save_ms"] = timed(lambda f=folder: save_checkpoint(f, state), args.repeats)
            result[f"{name}_load_ms"] = timed(lambda f=folder: load_checkpoint(f), args.repeats)
        result["s3_vs_local_save"] = result["s3_save_ms"] / result["local_save_ms"]
        result["s3_vs_local_load"] = result["s3_load_ms"] / result["local_load_ms"]
    finally:
        server.kill()
    path = write_result(args, "storage", result)
    print({k: round(v, 2) if isinstance(v, float) else v for k, v in result.items()}, f"-> {path}")


if __name__ == "__main__":
    main()
