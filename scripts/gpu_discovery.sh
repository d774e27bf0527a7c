#!/usr/bin/env bash
# Spark GPU discovery script: prints {"name": "gpu", "addresses": [...]} for spark.*.resource.gpu.discoveryScript.
#
# On a GPU machine it lists nvidia-smi's indices. SPARKTRAIN_GPU_ADDRESSES (e.g. "0,1") overrides that: the test
# cluster uses it to advertise GPUs that do not exist (Spark does not check them), which exercises the task ->
# rank -> device mapping and GPU-aware slot arithmetic on CPU-only machines (docs/operating.md, GPU section).
set -euo pipefail
if [ -n "${SPARKTRAIN_GPU_ADDRESSES:-}" ]; then
    addresses="$SPARKTRAIN_GPU_ADDRESSES"
else
    addresses="$(nvidia-smi --query-gpu=index --format=csv,noheader 2>/dev/null | paste -sd, - || true)"
fi
quoted="$(tr ',' '\n' <<<"$addresses" | sed '/^$/d; s/.*/"&"/' | paste -sd, -)"
echo "{\"name\": \"gpu\", \"addresses\": [${quoted}]}"
