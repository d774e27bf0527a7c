"""The two tiers stay what the README says: `make test` leaves out every test that needs the standalone cluster,
PostgreSQL or the browser (marked `slow`), and `make test-all`, which CI runs, leaves out nothing."""

from __future__ import annotations

import re

from tests.helpers import ROOT

HEAVY = re.compile(r"\b(standalone_cluster|cluster_prepared|chromium|postgres|spark-submit|local-cluster)\b")


def test_tests_that_need_the_cluster_postgres_or_browser_are_marked_slow():
    unmarked = [
        path.name
        for path in sorted((ROOT / "tests" / "integration").glob("test_*.py"))
        if HEAVY.search(path.read_text()) and "pytest.mark.slow]" not in path.read_text()
    ]
    assert not unmarked, f"mark these modules slow (pytestmark), or make test runs them: {unmarked}"


def test_make_test_all_runs_every_tier_and_ci_calls_it():
    makefile = (ROOT / "Makefile").read_text()
    test_all = makefile.split("\ntest-all:", 1)[1].split("\n\n", 1)[0]
    assert "pytest -q tests" in test_all and "not slow" not in test_all
    assert '-m "not slow"' in makefile.split("\ntest:", 1)[1].split("\n\n", 1)[0]
    assert "make test-all" in (ROOT / ".ci" / "run").read_text()


def test_parallel_workers_keep_shared_fixtures_and_integration_modules_together():
    from types import SimpleNamespace

    from tests.conftest import xdist_groups

    def item(module: str, name: str, *fixtures: str):
        module_ = SimpleNamespace(__name__=module)
        return SimpleNamespace(module=module_, nodeid=f"{module}::{name}", fixturenames=fixtures)

    items = [
        item("tests.integration.test_a", "uses_the_model", "spark", "trained_flights_session"),
        item("tests.integration.test_a", "spark_only", "spark"),  # its module's model: the same worker
        item("tests.integration.test_b", "on_the_cluster", "cluster_prepared", "flights_raw"),
        item("tests.integration.test_c", "own_server", "spark"),
        item("tests.spark.test_d", "prepared", "spark", "prepared_flights"),
        item("tests.spark.test_d", "plain", "spark"),
    ]
    assert list(xdist_groups(items).values()) == [
        "flights", "flights", "cluster", "tests.integration.test_c", "flights", None,
    ]  # fmt: skip
    makefile = (ROOT / "Makefile").read_text()
    assert "--dist loadgroup" in makefile  # the documented opt-in; plain `load` would ignore the groups
    import pytest

    # pytest 9.2 keeps test ids where xdist 3.8 cannot append the group: both workers would build the cluster
    assert tuple(int(part) for part in pytest.__version__.split(".")[:2]) < (9, 2), pytest.__version__
