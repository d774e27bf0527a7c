"""The "bring your own dataset" YAML of docs/configuration.md, run for real on generated data of that shape."""

from __future__ import annotations

import datetime as dt
import json
import random
import re

import pandas as pd
import pytest

from tests.helpers import ROOT

pytestmark = pytest.mark.integration


def _readme_example() -> str:
    readme = (ROOT / "docs" / "configuration.md").read_text()
    block = re.search(r"<!-- BYO-EXAMPLE:BEGIN -->\n```yaml\n(.*?)```", readme, flags=re.DOTALL)
    assert block, "docs/configuration.md lost its BYO-EXAMPLE block"
    return block.group(1)


def _write_orders(raw, days: int = 6, per_day: int = 300) -> dict:
    """JSON-lines orders (one folder per day) and a Parquet customers table, with planted dirt."""
    rng = random.Random(3)
    customers = pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(200)],
            "signup_date": [dt.date(2023, 1, 1) + dt.timedelta(days=rng.randrange(400)) for _ in range(200)],
            "country": [rng.choice(["DE", "FR", "US", "JP"]) for _ in range(200)],
            "segment": [rng.choice(["consumer", "business"]) for _ in range(200)],
        }
    )
    (raw / "customers").mkdir(parents=True)
    customers.to_parquet(raw / "customers" / "part-0.parquet", index=False)
    n = 0
    for day in range(days):
        date = dt.date(2024, 5, 1) + dt.timedelta(days=day)
        folder = raw / "orders" / date.isoformat()
        folder.mkdir(parents=True)
        lines = []
        for i in range(per_day):
            amount = round(rng.lognormvariate(3.5, 1.0), 2)
            lines.append(
                json.dumps(
                    {
                        "order_id": f"{date}-{i}",
                        "customer_id": f"c{rng.randrange(200)}",
                        "ordered_at": f"{date}T{rng.randrange(24):02d}:{rng.randrange(60):02d}:00",
                        "amount": amount,
                        "items": rng.randint(1, 8),
                        "channel": rng.choice(["web", "app", "store"]),
                        "returned": int(rng.random() < min(0.9, amount / 200)),
                    }
                )
            )
            n += 1
        if day == 0:  # planted dirt, one of each
            lines.append(lines[0])  # duplicate order_id
            lines.append('{"order_id": "bad-1", "customer_id": "c1", "amount": "lots"')  # malformed line
            bad_channel = json.loads(lines[1]) | {"order_id": "bad-2", "channel": "fax"}
            open_order = json.loads(lines[2]) | {"order_id": "bad-3", "returned": None}
            lines += [json.dumps(bad_channel), json.dumps(open_order)]
            n += 4
        (folder / "orders.jsonl").write_text("\n".join(lines) + "\n")
    return {"rows": n}


@pytest.mark.slow  # the docs example, prepared for real on generated data: make test-all
def test_readme_byo_example_prepares(spark, tmp_path, monkeypatch):
    from pipeline.config.load import load_config
    from tests.helpers import run_prepare

    raw = tmp_path / "raw"
    written = _write_orders(raw)
    conf = tmp_path / "orders.yaml"
    conf.write_text(_readme_example())
    monkeypatch.setenv("RAW_DIR", str(raw))
    config = load_config([conf, ROOT / "conf/local.yaml"], [f"work_dir={tmp_path / 'work'}"])

    result = run_prepare(spark, config)

    counts = result.report.counts
    assert counts.input_rows == written["rows"]
    assert counts.clean_rows + counts.quarantined_rows == counts.input_rows
    reasons = " | ".join(r["reason"] for r in result.report.quarantine_reasons)
    for expected in ("duplicate key", "malformed", "channel", "order still open"):
        assert expected in reasons, (expected, reasons)
    assert counts.quarantined_rows == 4, result.report.quarantine_reasons  # exactly the planted rows
    assert set(result.report.split_rows) >= {"train", "val", "test"}
    assert {"amount", "channel", "tenure_days", "ordered_at"} <= set(result.spec.input_columns)
