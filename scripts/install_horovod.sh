#!/usr/bin/env bash
# Build Horovod 0.28.1 (PyTorch + Gloo, NCCL when CUDA is present) into the given venv and cache the wheel.
#
# Why this script exists:
#  * Horovod 0.28.1 (June 2023) is the last release. Its CMake files ask for C++14, but PyTorch >= 2.1
#    headers need C++17 ("C++17 or later compatible compiler is required"). Upstream fixed this on master
#    (CMAKE_CXX_STANDARD 17) but never released it, so we patch the two CMakeLists.txt files of the sdist.
#  * Its bundled third-party CMake files declare cmake_minimum_required < 3.5, which cmake >= 4 refuses;
#    CMAKE_POLICY_VERSION_MINIMUM=3.5 lets such a cmake accept them (harmless with cmake 3.x).
#  * `horovod[spark]` pins pyarrow < 11 and Petastorm needs pyarrow APIs removed in 15, so neither is
#    installed: the pipeline only uses horovod.spark.run, which needs neither.
#  * The build takes ~5 minutes on 2 cores, so the wheel is cached outside the clone, keyed by the
#    horovod, torch, python versions and GPU flavour; a second setup on the same machine takes seconds.
#
# Usage: scripts/install_horovod.sh PATH/TO/VENV
set -euo pipefail

VENV="${1:?usage: install_horovod.sh VENV}"
PY="$VENV/bin/python"
HOROVOD_VERSION="0.28.1"
CACHE_DIR="${SPARKTRAIN_CACHE:-$HOME/.cache/sparktrain}/wheels"

torch_version="$("$PY" -c 'import torch; print(torch.__version__.split("+")[0])')"
py_tag="$("$PY" -c 'import sys; print(f"py{sys.version_info[0]}{sys.version_info[1]}")')"
# The cuda flavour (Horovod with NCCL) wherever a GPU and a CUDA build of torch are present. Its build needs a CUDA
# toolkit (nvcc); NCCL itself comes from pip's nvidia-nccl wheel (installed with CUDA torch), linked as a shared
# library: pip ships no static NCCL, Horovod's default link.
if nvidia-smi -L >/dev/null 2>&1 && "$PY" -c 'import torch,sys; sys.exit(0 if torch.version.cuda else 1)'; then
    flavour="cuda"
    if ! command -v nvcc >/dev/null 2>&1; then
        echo "ERROR: a GPU and CUDA torch are present but no CUDA toolkit (nvcc) to build Horovod's NCCL" >&2
        echo "operations; a Gloo-only Horovod would hang on the first CUDA tensor." >&2
        echo "Fix: install the CUDA toolkit matching torch $("$PY" -c 'import torch; print(torch.version.cuda)')" >&2
        echo "(e.g. apt-get install cuda-toolkit-12-x) and re-run make setup, or use train.backend: torch_distributor." >&2
        exit 1
    fi
    nccl_home="$("$PY" -c 'import nvidia.nccl, os; print(os.path.dirname(nvidia.nccl.__file__))' 2>/dev/null || true)"
else
    flavour="cpu"
fi
key="horovod-${HOROVOD_VERSION}-torch${torch_version}-${py_tag}-${flavour}"
wheel_dir="$CACHE_DIR/$key"

# What this flavour needs compiled in (PyTorch and Gloo; NCCL for cuda): scripts/horovod_build_check.py.
build_matches() {
    "$VENV/bin/horovodrun" --check-build | "$PY" "$(dirname "$0")/horovod_build_check.py" "$flavour"
}

check_build() {
    "$VENV/bin/horovodrun" --check-build
    if ! build_matches; then
        echo "Fix: delete $wheel_dir and re-run 'make setup' to rebuild it." >&2
        exit 1
    fi
}

# An installed build is kept only if it is this flavour's: a CPU build left from before a GPU appeared is rebuilt.
if "$PY" -c "import horovod, sys; sys.exit(0 if horovod.__version__ == '$HOROVOD_VERSION' else 1)" 2>/dev/null \
   && "$PY" -c "import horovod.torch" 2>/dev/null && build_matches 2>/dev/null; then
    echo "horovod $HOROVOD_VERSION ($flavour) already installed in $VENV"
    exit 0
fi

if ! ls "$wheel_dir"/horovod-*.whl >/dev/null 2>&1; then
    echo "Building horovod $HOROVOD_VERSION for torch $torch_version ($flavour); takes ~5 minutes on 2 cores..."
    build_dir="$(mktemp -d)"
    trap 'rm -rf "$build_dir"' EXIT
    "$PY" -m pip download --quiet --no-deps --no-binary :all: "horovod==$HOROVOD_VERSION" -d "$build_dir"
    tar -xzf "$build_dir"/horovod-"$HOROVOD_VERSION".tar.gz -C "$build_dir"
    src="$build_dir/horovod-$HOROVOD_VERSION"
    # The C++17 patch (see header). Fail loudly if the sdist ever changes shape.
    for f in "$src/CMakeLists.txt" "$src/horovod/torch/CMakeLists.txt"; do
        grep -q 'CMAKE_CXX_STANDARD 14' "$f" || { echo "ERROR: expected 'CMAKE_CXX_STANDARD 14' in $f" >&2; exit 1; }
        sed -i 's/CMAKE_CXX_STANDARD 14/CMAKE_CXX_STANDARD 17/' "$f"
    done
    export HOROVOD_WITH_PYTORCH=1 HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_MPI=1
    export HOROVOD_WITHOUT_TENSORFLOW=1 HOROVOD_WITHOUT_MXNET=1
    export CMAKE_POLICY_VERSION_MINIMUM=3.5
    export MAKEFLAGS="-j$(nproc)"
    if [ "$flavour" = "cuda" ]; then
        export HOROVOD_GPU_OPERATIONS=NCCL HOROVOD_NCCL_LINK=SHARED
        if [ -n "$nccl_home" ]; then
            export HOROVOD_NCCL_HOME="$nccl_home"  # pip's nvidia-nccl wheel: include/ and lib/
        fi
    fi
    mkdir -p "$wheel_dir"
    "$PY" -m pip wheel --no-build-isolation --no-deps "$src" -w "$build_dir/out"
    mv "$build_dir"/out/horovod-*.whl "$wheel_dir/"
else
    echo "Using cached horovod wheel from $wheel_dir"
fi

"$PY" -m pip install --quiet --no-deps --force-reinstall "$wheel_dir"/horovod-*.whl
check_build
