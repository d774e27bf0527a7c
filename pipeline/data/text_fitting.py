"""Text features in Spark: fit a TextVocab on the train rows and encode a column to token ids (driver + executors).

Both sides call pipeline/model/text.py (`tokenize`, `TextVocab.encode`) inside pandas functions, so the tokens
counted here, the ids Spark writes and the ids the registered model computes at scoring time are the same code.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator

import pandas as pd

from pipeline.errors import DataError
from pipeline.model.text import TextVocab, tokenize, top_k_vocab

log = logging.getLogger(__name__)
COUNTS_SCHEMA = "token string, count long"


def _partition_counter(column: str, level: str, lowercase: bool):
    """mapInPandas body (runs on the executors): one (token, count) row per distinct token of the partition."""

    def count(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        counter: Counter[str] = Counter()
        for batch in batches:
            for tokens in tokenize(batch[column], level, lowercase):
                counter.update(tokens)
        if counter:  # an empty (or all-null) partition yields nothing: Arrow cannot type an empty object column
            yield pd.DataFrame({"token": list(counter), "count": pd.Series(list(counter.values()), dtype="int64")})

    return count


def _require_column(df, column: str) -> None:
    if column not in df.columns:
        raise DataError(
            f"text feature column {column!r} is not in the table ({df.columns}). "
            "Fix: select it in data.query or remove it from features"
        )


def fit_text_vocab(train_df, column: str, level: str, lowercase: bool, top_k: int, max_len: int) -> TextVocab:
    """Count tokens on the executors, keep the top_k on the driver (count desc, token asc).

    Only the top_k rows of the aggregated counts reach the driver; Spark orders them the same way as
    `top_k_vocab` (UTF-8 byte order is code-point order), so the boundary ties resolve identically.
    The column is cast to string (as `encode_column` does).
    """
    from pyspark.sql import functions as F

    _require_column(train_df, column)
    TextVocab(name=column, level=level, lowercase=lowercase, max_len=max_len, vocab=())  # bad settings fail here
    if top_k < 0:
        raise ValueError(f"text feature {column!r}: top_k must be >= 0, got {top_k}")
    counts = (
        train_df.select(F.col(column).cast("string").alias(column))
        .mapInPandas(_partition_counter(column, level, lowercase), COUNTS_SCHEMA)
        .groupBy("token")
        .agg(F.sum("count").alias("count"))
        .orderBy(F.col("count").desc(), F.col("token").asc())
        .limit(top_k)
        .collect()
    )
    vocab = top_k_vocab(((row["token"], row["count"]) for row in counts), top_k)
    log.info("text feature %s: %d tokens kept (top_k=%d, level=%s)", column, len(vocab), top_k, level)
    return TextVocab(name=column, level=level, lowercase=lowercase, max_len=max_len, vocab=vocab)


def encode_column(column_name: str, vocab: TextVocab):
    """A Column of array<int> (length vocab.max_len, never null): `vocab.encode` in a pandas UDF on the executors.

    The result is not aliased; the caller names it.
    """
    from pyspark.sql import functions as F

    def encode(texts: pd.Series) -> pd.Series:
        return pd.Series(list(vocab.encode(texts)))

    udf = F.pandas_udf(encode, "array<int>")
    return udf(F.col(column_name).cast("string"))
