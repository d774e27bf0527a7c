"""The command line as schedulers see it: exit codes, one-line errors, and training on 2 executor JVMs."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.helpers import ROOT, flights_cli_args

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def cli(*args: str, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_help_lists_the_built_stages():
    out = cli("--help")
    assert out.returncode == 0
    for stage in ("config", "demo-data", "prepare", "train", "score", "evaluate", "run", "demo"):
        assert stage in out.stdout


def test_user_error_is_one_line_and_exit_code_2():
    out = cli("config", "--set", "train.epochz=1")
    assert out.returncode == 2
    assert out.stderr.startswith("error: invalid config") and "Traceback" not in out.stderr
    debug = cli("--debug", "config", "--set", "train.epochz=1")
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_slot_check_counts_the_executor_jvms_of_local_cluster(prepared_flights, flights_raw, tmp_path):
    """local-cluster[2,1,1024] starts 2 executor JVMs with 1 core each: 3 workers are refused in seconds. (Ranks in
    separate executor JVMs train for real in tests/integration/test_standalone_cluster.py.)"""
    config, _ = prepared_flights
    args = flights_cli_args(
        f"work_dir={config.work_dir}",
        "spark.master=local-cluster[2,1,1024]",
        f"tracking.uri=sqlite:///{tmp_path}/mlflow.db",
        f"tracking.artifact_root={tmp_path}/art",
        "train.num_proc=3",
    )
    too_many = cli("train", *args, env={"RAW_DIR": str(flights_raw)})
    assert too_many.returncode == 2
    assert "train.num_proc=3 but the Spark application has only 2 task slot(s)" in too_many.stderr


def test_sql_mistake_is_one_line_on_the_command_line(tmp_path):
    (tmp_path / "t.csv").write_text("id,x,y\n1,2.0,0\n2,3.0,1\n")
    conf = tmp_path / "bad.yaml"
    conf.write_text(
        f"work_dir: {tmp_path}/work\nspark: {{master: 'local[1]'}}\n"
        f"data: {{sources: [{{name: t, format: csv, path: {tmp_path}/t.csv,"
        " schema: {id: bigint, x: double, y: int}}], query: 'SELECT id, nope, y FROM t'}\n"
        "features: {numeric: [{name: x}], label: {column: y}}\nsplit: {key: id}\n"
    )
    out = cli("prepare", "--conf", str(conf))
    assert out.returncode == 2
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: data.query failed: [UNRESOLVED_COLUMN")
    assert "org.apache.spark" not in out.stdout + out.stderr and "Traceback" not in out.stderr


def test_infer_schema_prints_a_source_entry(tmp_path):
    (tmp_path / "houses.csv").write_text("id,area,district,price\n1,80.5,north,250000\n2,NA,south,180000\n")
    out = cli("infer-schema", str(tmp_path / "houses.csv"), "--option", "nullValue=NA")
    assert out.returncode == 0, out.stderr[-2000:]
    import yaml

    (entry,) = yaml.safe_load(out.stdout)
    assert entry["name"] == "houses" and entry["options"] == {"nullValue": "NA"}
    assert entry["schema"] == {"id": "int", "area": "double", "district": "string", "price": "int"}
