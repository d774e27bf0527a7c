"""RFC 4180 CSV as exports write it (quoted line breaks, doubled quotes, commas, unicode): every record arrives
whole, with its text byte for byte, in prepare's reader and in infer-schema's draft."""

from __future__ import annotations

import csv

from pipeline.config.schema import SourceConfig
from pipeline.data.schema_inference import infer_source
from pipeline.data.sources import load_source

TEXTS = [
    'your "rally" was great',
    "first line\nsecond line",
    "windows\r\nline break, and a comma",
    "",
    'only ""doubled"" quotes, "quoted"',
    "unicode: naïve café — 日本語 🚀",
    "plain",
    'ends with a quote "',
    "three\n\nlines",
]


def write_export(path, texts=TEXTS) -> None:
    """As pandas/Excel write it: quotes doubled, fields with separators, quotes or line breaks quoted."""
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file, lineterminator="\r\n")
        writer.writerow(["id", "text", "score"])
        for i, text in enumerate(texts):
            writer.writerow([i, text, i / 2])


def test_every_record_arrives_with_identical_text(spark, tmp_path, caplog):
    path = tmp_path / "export.csv"
    write_export(path)
    schema = {"id": "int", "text": "string", "score": "double"}
    source = SourceConfig(name="t", format="csv", path=str(path), schema=schema)
    with caplog.at_level("INFO", logger="pipeline.data.sources"):
        loaded = load_source(spark, source, max_string_length=1000)
    assert loaded.bad.count() == 0, loaded.bad.collect()
    rows = sorted(loaded.valid.collect(), key=lambda r: r["id"])
    assert [r["id"] for r in rows] == list(range(len(TEXTS)))
    # Spark reads the one empty quoted field as null (its emptyValue for reads), and its parser (univocity)
    # normalises a CRLF inside quotes to LF, with no option to turn that off; every other byte is exact.
    expected = [t.replace("\r\n", "\n").encode() for t in TEXTS]
    assert [(r["text"] or "").encode() for r in rows] == expected
    assert [r["score"] for r in rows] == [i / 2 for i in range(len(TEXTS))]
    assert "multiLine=true" in caplog.text


def test_single_line_files_keep_split_reading_and_user_options_win(spark, tmp_path):
    path = tmp_path / "flat.csv"
    write_export(path, ['a "quoted" word', "plain, with comma"] * 3)
    schema = {"id": "int", "text": "string", "score": "double"}
    loaded = load_source(spark, SourceConfig(name="t", format="csv", path=str(path), schema=schema), 1000)
    assert [r["text"] for r in loaded.valid.orderBy("id").collect()][:2] == ['a "quoted" word', "plain, with comma"]

    # The user's own choice is kept: multiLine off splits the multi-line export and quarantines the pieces.
    split = tmp_path / "split.csv"
    write_export(split)
    user = SourceConfig(name="t", format="csv", path=str(split), schema=schema, options={"multiline": "false"})
    assert load_source(spark, user, 1000).bad.count() > 0


def test_infer_schema_writes_multiline_into_the_entry(spark, tmp_path):
    path = tmp_path / "export.csv"
    write_export(path)
    entry = infer_source(spark, str(path))
    assert entry["options"] == {"multiLine": "true"}
    assert entry["schema"] == {"id": "int", "text": "string", "score": "double"}

    flat = tmp_path / "flat.csv"
    write_export(flat, ["a", 'b "c"'])
    assert "options" not in infer_source(spark, str(flat))
