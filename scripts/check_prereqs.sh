#!/usr/bin/env bash
# Stop setup at once, with what to install, when a build/run prerequisite is missing.
set -uo pipefail
fail=0
need() { echo "MISSING: $1. Fix: $2" >&2; fail=1; }

PY="${PYTHON:-python3}"
if ! command -v "$PY" >/dev/null; then
    need "$PY" "install Python >= 3.10 (e.g. apt-get install python3 python3-venv)"
elif ! "$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)'; then
    need "Python >= 3.10 (found $("$PY" --version 2>&1))" "install Python 3.10+ or run 'make setup PYTHON=python3.11'"
fi
if ! command -v java >/dev/null; then
    need "Java 17+ (pyspark 4 needs it)" "apt-get install openjdk-17-jre-headless, or set JAVA_HOME"
else
    jv="$(java -version 2>&1 | awk -F'"' '/version/ {print $2}' | cut -d. -f1)"
    if [ "${jv:-0}" -lt 17 ] 2>/dev/null; then
        need "Java 17+ (found Java $jv)" "apt-get install openjdk-17-jre-headless and put it first on PATH"
    fi
fi
command -v g++ >/dev/null || command -v c++ >/dev/null || need "a C++ compiler (Horovod is built from source)" "apt-get install g++"
command -v make >/dev/null || need "make" "apt-get install make"
# cmake comes from PyPI into the venv when absent on the system (see Makefile), so it is not required here.
exit $fail
