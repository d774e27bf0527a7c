"""The README's generated parts (config reference, benchmark table) match the code and the results."""

from __future__ import annotations

import re

import yaml

from pipeline.config_reference import reference_markdown, reference_rows
from pipeline.config_schema import PipelineConfig
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text()


def _block(name: str) -> str:
    match = re.search(rf"<!-- {name}:BEGIN -->\n(.*?)<!-- {name}:END -->", README, flags=re.DOTALL)
    assert match, f"README.md has no {name} markers"
    return match.group(1)


def test_every_config_key_is_documented():
    rows = reference_rows()
    missing = [key for key, _, _, description in rows if not description]
    assert not missing, f"config fields without a docstring: {missing}"
    keys = {key for key, *_ in rows}
    assert {"train.num_proc", "data.sources[].schema", "cleaning.ranges.<column>.min", "tracking.uri"} <= keys


def test_readme_config_reference_is_current():
    assert _block("CONFIG-REFERENCE") == reference_markdown(), (
        "README config reference is stale. Fix: paste `python -m pipeline config --reference` between its markers"
    )


def test_base_yaml_matches_the_defaults_in_the_reference():
    base = yaml.safe_load((ROOT / "conf/base.yaml").read_text())
    defaults = PipelineConfig().to_dict()

    def compare(section: dict, expected: dict, prefix: str = "") -> None:
        for key, value in section.items():
            if isinstance(value, dict) and value and isinstance(expected.get(key), dict):
                compare(value, expected[key], f"{prefix}{key}.")
            else:
                assert value == expected[key], (
                    f"conf/base.yaml {prefix}{key}={value!r} but the class says {expected[key]!r}"
                )

    compare(base, defaults)


def test_readme_benchmark_table_matches_the_committed_results():
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_report", ROOT / "benchmarks" / "report.py")
    report = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(report)
    table = report.markdown(report.rows(report.load_results()))
    assert table.count("\n") >= 8  # prepare, train and score rows are all there
    assert _block("BENCHMARK-TABLE") == table, (
        "README benchmark table is stale. Fix: python benchmarks/report.py --readme"
    )


def test_quickstart_commands_exist():
    quickstart = README.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    makefile = (ROOT / "Makefile").read_text()
    for target in ("demo", "test", "run"):
        assert f"make {target}" in quickstart
        assert re.search(rf"^{target}:", makefile, flags=re.MULTILINE), target
