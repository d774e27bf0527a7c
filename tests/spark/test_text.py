"""Text features in Spark: the vocabulary fitted on the executors, and Spark's ids equal the pandas path's."""

from __future__ import annotations

import pandas as pd
import pytest

from pipeline.data.text_fitting import encode_column, fit_text_vocab
from pipeline.errors import DataError
from pipeline.model.text import TextVocab

TEXTS = [
    "The film was good, really GOOD",
    "the plot was bad",
    None,
    "good acting; bad film",
    "Café naïve — ＦＵＬＬ ﬁlm",
    "",
    "日本語 テキスト and emoji 🙂🙂",
    "don't   stop\tthe film",
]


def frame(spark, texts=TEXTS, partitions: int = 3):
    rows = [(i, text) for i, text in enumerate(texts)]
    return spark.createDataFrame(rows, "id long, text string").repartition(partitions)


def test_fit_counts_tokens_across_partitions(spark):
    fitted = fit_text_vocab(frame(spark), "text", level="word", lowercase=True, top_k=4, max_len=6)
    # film 4 (the ligature folds to "film"), then good 3 before the 3, then bad 2 before was 2 (ties by token)
    assert fitted == TextVocab("text", "word", True, 6, ("film", "good", "the", "bad"))


def test_fit_char_level_without_lowercase(spark):
    fitted = fit_text_vocab(
        frame(spark, ["aab", "b A", None]), "text", level="char", lowercase=False, top_k=10, max_len=3
    )
    assert fitted.vocab == ("a", "b", " ", "A")


@pytest.mark.parametrize(("level", "lowercase"), [("word", True), ("char", False)])
def test_spark_encoding_equals_pandas_encoding(spark, level, lowercase):
    df = frame(spark)
    fitted = fit_text_vocab(df, "text", level=level, lowercase=lowercase, top_k=12, max_len=8)
    rows = df.select("id", "text", encode_column("text", fitted).alias("ids")).orderBy("id").collect()
    texts = pd.Series([r["text"] for r in rows], dtype="object")
    assert [r["text"] for r in rows] == TEXTS  # null text included
    assert [list(r["ids"]) for r in rows] == fitted.encode(texts).tolist()
    assert list(rows[2]["ids"]) == [0] * 8  # null text: all padding, not a null array
    assert any(1 in r["ids"] for r in rows)  # some tokens are out of the vocabulary


def test_encoded_column_type(spark):
    fitted = TextVocab("text", "word", True, 4, ("a",))
    schema = frame(spark).select(encode_column("text", fitted).alias("ids")).schema
    assert schema["ids"].dataType.simpleString() == "array<int>"


def test_missing_column_is_a_data_error(spark):
    with pytest.raises(DataError, match="review"):
        fit_text_vocab(frame(spark), "review", level="word", lowercase=True, top_k=5, max_len=4)


def test_fit_on_null_and_empty_texts_gives_an_empty_vocabulary(spark):
    fitted = fit_text_vocab(
        frame(spark, [None, "", "  ", None]), "text", level="word", lowercase=True, top_k=5, max_len=4
    )
    assert fitted.vocab == () and fitted.size == 2
