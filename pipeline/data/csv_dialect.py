"""How prepare, score and infer-schema read CSV: RFC 4180 quoting by default, multi-line records found by a sniff.

Runs on the driver before Spark reads. Spark's own CSV defaults escape quotes with a backslash and split records at
every line break, so an RFC 4180 export (doubled quotes, line breaks inside quoted fields: tweets, reviews,
tickets) loses its multi-line records to "malformed line" and keeps `""` inside the text of others. Here the
quote and escape character are both `"` (RFC 4180, pandas, Excel), and `multiLine` is switched on only for
inputs whose first bytes hold a quoted line break: Spark cannot split a file it reads with `multiLine=true`, so
one large file would become one task (see benchmarks/csv_multiline.py for the measured cost). Every option
stays overridable in `data.sources[].options` (Spark reads option names case-insensitively, and so does this).

The sniff parses the head of a few files with Python's `csv` module; a record cut off by the end of the head is
not counted, so a stray quote near the end of the sample cannot switch multi-line reading on by itself.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterable

log = logging.getLogger(__name__)

RFC4180 = {"quote": '"', "escape": '"'}
SNIFF_BYTES = 1 << 20  # per file: enough for thousands of records, read in milliseconds
SNIFF_FILES = 8


def find_option(options: dict[str, str], name: str) -> str | None:
    """The value of a Spark reader option, whatever case the user wrote its name in."""
    wanted = name.lower()
    return next((value for key, value in options.items() if key.lower() == wanted), None)


def delimiter(options: dict[str, str]) -> str:
    return find_option(options, "sep") or find_option(options, "delimiter") or ","


def csv_reader_options(options: dict[str, str], heads: Iterable[bytes]) -> dict[str, str]:
    """The user's options over RFC 4180 quoting, plus `multiLine=true` when a head shows a quoted line break.

    `heads` is consumed only when the user did not set multiLine themselves (it may read files lazily).
    """
    chosen = {key: value for key, value in RFC4180.items() if find_option(options, key) is None}
    if find_option(options, "multiLine") is None:
        quote = find_option(options, "quote") or RFC4180["quote"]
        if any(has_quoted_line_break(head, delimiter(options), quote) for head in heads):
            chosen["multiLine"] = "true"
    return {**chosen, **options}


def has_quoted_line_break(head: bytes, sep: str = ",", quote: str = '"') -> bool:
    """Whether a complete record in these first bytes of a CSV file has a line break inside a quoted field."""
    if not quote or len(sep) != 1 or len(quote) != 1:
        return False  # dialects the csv module cannot describe: leave multiLine to the user
    text = head.decode("utf-8", errors="replace")
    records = csv.reader(io.StringIO(text, newline=""), delimiter=sep, quotechar=quote, doublequote=True, strict=True)
    previous: list[str] | None = None
    try:
        for record in records:
            if previous is not None and _has_line_break(previous):
                return True
            previous = record
    except csv.Error:
        pass  # the last record was cut off by the end of the head (or the file is not RFC 4180 there)
    return False


def _has_line_break(record: list[str]) -> bool:
    return any("\n" in field or "\r" in field for field in record)


def header_names(first_line: str, sep: str, quote: str = '"') -> list[str]:
    """Column names of a CSV header line, quotes removed the way Spark removes them."""
    parsed = next(csv.reader([first_line.lstrip("\ufeff")], delimiter=sep, quotechar=quote or '"'), [])
    return [name.strip() for name in parsed]
