"""Text features as token-id sequences: one tokenizer and one vocabulary, shared by Spark and the registered model.

Numpy/pandas/stdlib only: `tokenize` and `TextVocab.encode` run inside the registered model at scoring time and
inside Spark pandas UDFs (pipeline/data/text_fitting.py), so both paths produce the same ids by construction.

Tokenization rules (applied in this order):
    1. null / NaN / pd.NA -> no tokens; any other value -> `str(value)`;
    2. Unicode NFKC normalization (full-width letters, ligatures and compatibility forms fold to their plain
       characters, so "ｆｉｌｍ" and "ﬁlm" tokenize like "film");
    3. `str.lower()` when `lowercase` is set;
    4. level "word": the regex `\\w+(?:['’]\\w+)*` (Python `re`, Unicode): runs of letters, digits and underscores,
       with an apostrophe kept *inside* a word ("don't", "l’homme" stay one token; a leading or trailing quote is
       dropped). Punctuation and whitespace separate tokens and are not tokens themselves;
       level "char": every character, except that leading/trailing whitespace is stripped and every run of
       whitespace (spaces, tabs, newlines) becomes one " " token, so word boundaries stay visible to the network.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar

import numpy as np
import pandas as pd

PAD_ID = 0  # fills a sequence after its last token
OOV_ID = 1  # a token that is not in the vocabulary
FIRST_ID = 2  # vocab[i] has id i + FIRST_ID
LEVELS = ("word", "char")
WORD_PATTERN = re.compile(r"\w+(?:['’]\w+)*")
WHITESPACE = re.compile(r"\s+")


def _words(text: str) -> list[str]:
    return WORD_PATTERN.findall(text)


def _chars(text: str) -> list[str]:
    return list(WHITESPACE.sub(" ", text.strip()))


SPLITTERS = {"word": _words, "char": _chars}


def check_level(level: str) -> None:
    """Fail early (driver, config) on a level the tokenizer does not know."""
    if level not in LEVELS:
        raise ValueError(f"text level {level!r} is not supported (expected one of {list(LEVELS)})")


def tokenize(texts: pd.Series, level: str, lowercase: bool) -> list[list[str]]:
    """One token list per row, by the rules in the module docstring (null text -> [])."""
    check_level(level)
    if not isinstance(texts, pd.Series):
        texts = pd.Series(texts, dtype="object")
    split = SPLITTERS[level]
    nulls = texts.isna().to_numpy()
    tokens: list[list[str]] = []
    for value, null in zip(texts.tolist(), nulls, strict=True):
        if null:
            tokens.append([])
            continue
        text = unicodedata.normalize("NFKC", value if isinstance(value, str) else str(value))
        tokens.append(split(text.lower() if lowercase else text))
    return tokens


def top_k_vocab(counts: Mapping[str, int] | Iterable[tuple[str, int]], top_k: int) -> tuple[str, ...]:
    """The `top_k` most frequent tokens, by count descending then token ascending (deterministic across runs).

    Pairs may repeat a token (e.g. one pair per Spark partition): their counts are summed.
    """
    if top_k < 0:
        raise ValueError(f"top_k must be >= 0, got {top_k}")
    totals: Counter[str] = Counter()
    for token, count in counts.items() if isinstance(counts, Mapping) else counts:
        totals[token] += int(count)
    ranked = sorted(totals.items(), key=lambda item: (-item[1], item[0]))
    return tuple(token for token, _ in ranked[:top_k])


@dataclass(frozen=True)
class TextVocab:
    """A fitted text feature: tokenizer settings, sequence length and the vocabulary (ids start at FIRST_ID).

    Stored in the feature spec as JSON (`dataclasses.asdict` / `from_dict`); carried into Spark UDF closures.
    """

    name: str
    level: str
    lowercase: bool
    max_len: int
    vocab: tuple[str, ...]

    PAD_ID: ClassVar[int] = PAD_ID
    OOV_ID: ClassVar[int] = OOV_ID

    def __post_init__(self) -> None:
        check_level(self.level)
        if self.max_len < 1:
            raise ValueError(f"text feature {self.name!r}: max_len must be >= 1, got {self.max_len}")
        if len(set(self.vocab)) != len(self.vocab):
            raise ValueError(f"text feature {self.name!r}: the vocabulary repeats a token")

    @property
    def column(self) -> str:
        """The features Parquet column: int32 token ids, max_len per row."""
        return f"tok__{self.name}"

    @property
    def size(self) -> int:
        """Embedding rows the model needs: the vocabulary plus PAD and OOV."""
        return len(self.vocab) + FIRST_ID

    @cached_property
    def index(self) -> dict[str, int]:
        """token -> id (built once per instance; not a dataclass field, so not in asdict)."""
        return {token: i + FIRST_ID for i, token in enumerate(self.vocab)}

    def encode(self, texts: pd.Series) -> np.ndarray:
        """Texts -> int32 [n, max_len]: the first max_len tokens' ids (OOV_ID if unknown), then PAD_ID."""
        index, max_len = self.index, self.max_len
        rows = [tokens[:max_len] for tokens in tokenize(texts, self.level, self.lowercase)]
        lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
        ids = np.fromiter((index.get(t, OOV_ID) for r in rows for t in r), dtype=np.int32, count=int(lengths.sum()))
        out = np.full((len(rows), max_len), PAD_ID, dtype=np.int32)
        # Scatter the flat ids: row i's tokens go to out[i, 0:lengths[i]].
        row_of = np.repeat(np.arange(len(rows)), lengths)
        starts = np.cumsum(lengths) - lengths
        position = np.arange(len(ids)) - np.repeat(starts, lengths)
        out[row_of, position] = ids
        return out

    @staticmethod
    def from_dict(d: Mapping[str, Any]) -> TextVocab:
        """Inverse of `dataclasses.asdict` after a JSON round trip (the vocabulary comes back as a list)."""
        return TextVocab(
            name=str(d["name"]),
            level=str(d["level"]),
            lowercase=bool(d["lowercase"]),
            max_len=int(d["max_len"]),
            vocab=tuple(d["vocab"]),
        )
