"""The docs' generated parts (config reference, benchmark table) match the code and the results; links resolve."""

from __future__ import annotations

import re

import yaml

from pipeline.config.reference import reference_markdown, reference_rows
from pipeline.config.schema import PipelineConfig
from tests.helpers import ROOT

README = (ROOT / "README.md").read_text()
CONFIGURATION = ROOT / "docs" / "configuration.md"
BENCHMARKS = ROOT / "benchmarks" / "README.md"
# Null in conf/base.yaml; the loaded config fills them in from work_dir.
DERIVED_FROM_WORK_DIR = {"tracking.uri", "tracking.artifact_root"}


def _block(name: str, path) -> str:
    match = re.search(rf"<!-- {name}:BEGIN -->\n(.*?)<!-- {name}:END -->", path.read_text(), flags=re.DOTALL)
    assert match, f"{path.name} has no {name} markers"
    return match.group(1)


def test_every_config_key_is_documented():
    rows = reference_rows()
    missing = [key for key, _, _, description in rows if not description]
    assert not missing, f"config fields without a docstring: {missing}"
    keys = {key for key, *_ in rows}
    assert {"train.num_proc", "data.sources[].schema", "cleaning.ranges.<column>.min", "tracking.uri"} <= keys


def test_readme_config_reference_is_current():
    assert _block("CONFIG-REFERENCE", CONFIGURATION) == reference_markdown(), (
        "docs/configuration.md reference is stale. Fix: paste `python -m pipeline config --reference` there"
    )


def test_base_yaml_matches_the_defaults_in_the_reference():
    base = yaml.safe_load((ROOT / "conf/base.yaml").read_text())
    defaults = PipelineConfig().to_dict()

    def compare(section: dict, expected: dict, prefix: str = "") -> None:
        for key, value in section.items():
            if isinstance(value, dict) and value and isinstance(expected.get(key), dict):
                compare(value, expected[key], f"{prefix}{key}.")
            elif f"{prefix}{key}" in DERIVED_FROM_WORK_DIR:
                assert value is None, f"conf/base.yaml {prefix}{key} should be null (derived from work_dir)"
            else:
                assert value == expected[key], (
                    f"conf/base.yaml {prefix}{key}={value!r} but the class says {expected[key]!r}"
                )

    compare(base, defaults)


def test_readme_benchmark_table_matches_the_committed_results(monkeypatch):
    import importlib.util

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))  # as when run as a script: benchmarks/harness.py
    spec = importlib.util.spec_from_file_location("bench_report", ROOT / "benchmarks" / "report.py")
    report = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(report)
    table = report.markdown(report.rows(report.load_results(ROOT / "benchmarks" / "results")))
    assert table.count("\n") >= 8  # prepare, train and score rows are all there
    assert _block("BENCHMARK-TABLE", BENCHMARKS) == table, (
        "benchmarks/README.md table is stale. Fix: python benchmarks/report.py --readme"
    )


def test_quickstart_commands_exist():
    quickstart = README.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    makefile = (ROOT / "Makefile").read_text()
    for target in ("demo", "test", "test-all", "run"):
        assert f"make {target}" in quickstart
        assert re.search(rf"^{target}:", makefile, flags=re.MULTILINE), target


def test_readme_is_a_front_door_and_every_doc_link_resolves():
    assert len(README.encode()) <= 12_500
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), BENCHMARKS]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text()):
            if not target.startswith(("http://", "https://")):
                assert (doc.parent / target).exists(), f"{doc.relative_to(ROOT)} links to missing {target}"


def _map_entry(layout: str, folder: str) -> str:
    """The README module map's text for pipeline/<folder>/: its line and the indented lines that continue it."""
    lines = layout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"  {folder}/"))
    entry = [lines[start]]
    for line in lines[start + 1 :]:
        if not line.startswith("    "):
            break
        entry.append(line)
    return "\n".join(entry)


FOLDERS = sorted(p.parent.name for p in (ROOT / "pipeline").glob("*/__init__.py"))


def test_readme_module_map_matches_the_folders():
    layout = README.split("## Layout: where code runs", 1)[1].split("\n## ", 1)[0]
    for folder in FOLDERS:
        entry = _map_entry(layout, folder)
        modules = sorted(p.stem for p in (ROOT / "pipeline" / folder).glob("*.py") if p.stem != "__init__")
        missing = [m for m in modules if not re.search(rf"\b{m}\b", entry)]
        assert not missing, f"README module map lacks pipeline/{folder}/ {missing}"
