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
