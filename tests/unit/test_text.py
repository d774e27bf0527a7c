"""Text features without Spark: the tokenizer, TextVocab encoding and JSON, top-K order, the text_cnn network."""

from __future__ import annotations

import dataclasses
import json
import time

import numpy as np
import pandas as pd
import pytest
import torch

from pipeline.model.inputs import ModelInputs, TensorInput
from pipeline.model.text import OOV_ID, PAD_ID, TextVocab, tokenize, top_k_vocab
from pipeline.model.text_cnn import text_cnn

# ---- tokenize ----------------------------------------------------------------------------------------------


def test_word_tokens_keep_inner_apostrophes_and_drop_punctuation():
    texts = pd.Series(["Don't STOP me now!", "'quoted' l’homme, 3.5 x_y"])
    assert tokenize(texts, "word", lowercase=False) == [
        ["Don't", "STOP", "me", "now"],
        ["quoted", "l’homme", "3", "5", "x_y"],
    ]


def test_lowercase_and_unicode_words():
    texts = pd.Series(["Café NAÏVE Ελληνικά", "ＦＵＬＬ ﬁlm"])  # full-width letters and a ligature fold (NFKC)
    assert tokenize(texts, "word", lowercase=True) == [["café", "naïve", "ελληνικά"], ["full", "film"]]
    assert tokenize(texts, "word", lowercase=False)[0] == ["Café", "NAÏVE", "Ελληνικά"]


def test_char_tokens_collapse_and_strip_whitespace():
    texts = pd.Series(["  Ab\t\n c! ", "é"])
    assert tokenize(texts, "char", lowercase=True) == [["a", "b", " ", "c", "!"], ["é"]]
    assert tokenize(texts, "char", lowercase=False)[0][:2] == ["A", "b"]


def test_null_text_has_no_tokens_and_other_values_are_strings():
    texts = pd.Series(["a b", None, np.nan, pd.NA, 12], dtype="object")
    assert tokenize(texts, "word", lowercase=True) == [["a", "b"], [], [], [], ["12"]]
    assert tokenize(pd.Series(["x", None], dtype="string"), "char", lowercase=False) == [["x"], []]


def test_unknown_level_is_an_error():
    with pytest.raises(ValueError, match="level"):
        tokenize(pd.Series(["a"]), "sentence", lowercase=True)


# ---- TextVocab ---------------------------------------------------------------------------------------------


def vocab(**overrides) -> TextVocab:
    fields = {"name": "review", "level": "word", "lowercase": True, "max_len": 4, "vocab": ("good", "bad", "film")}
    return TextVocab(**{**fields, **overrides})


def test_encode_pads_at_the_end_and_maps_unknown_tokens_to_oov():
    ids = vocab().encode(pd.Series(["Good film", "awful FILM", "", None]))
    assert ids.dtype == np.int32 and ids.shape == (4, 4)
    assert PAD_ID == 0 and OOV_ID == 1
    assert ids.tolist() == [[2, 4, 0, 0], [1, 4, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]


def test_encode_keeps_the_first_max_len_tokens():
    ids = vocab(max_len=3).encode(pd.Series(["bad bad good film good", "film x good"]))
    assert ids.tolist() == [[3, 3, 2], [4, 1, 2]]


def test_encode_char_level_and_empty_input():
    chars = vocab(level="char", lowercase=False, max_len=5, vocab=("a", " ", "b"))
    assert chars.encode(pd.Series(["aB  b"])).tolist() == [[2, 1, 3, 4, 0]]
    assert chars.encode(pd.Series([], dtype="object")).shape == (0, 5)


def test_encode_is_fast_enough_for_scoring():
    rng = np.random.default_rng(0)
    words = np.array([f"w{i}" for i in range(2000)])
    texts = pd.Series([" ".join(rng.choice(words, 12)) for _ in range(100_000)])
    fitted = vocab(max_len=16, vocab=tuple(words[:1000]))
    start = time.perf_counter()
    ids = fitted.encode(texts)
    assert time.perf_counter() - start < 5.0  # ~1 s on one core; generous for a shared machine
    assert ids.shape == (100_000, 16) and (ids[:, :12] > PAD_ID).all() and (ids[:, 12:] == PAD_ID).all()


def test_size_counts_pad_and_oov():
    assert vocab().size == 5
    assert vocab(vocab=()).size == 2


def test_json_round_trip():
    fitted = vocab(level="char", lowercase=False, max_len=7)
    restored = TextVocab.from_dict(json.loads(json.dumps(dataclasses.asdict(fitted))))
    assert restored == fitted
    assert isinstance(restored.vocab, tuple)
    assert set(dataclasses.asdict(fitted)) == {"name", "level", "lowercase", "max_len", "vocab"}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [({"level": "bytes"}, "level"), ({"max_len": 0}, "max_len"), ({"vocab": ("a", "a")}, "repeats")],
)
def test_invalid_vocab_is_rejected(overrides, message):
    with pytest.raises(ValueError, match=message):
        vocab(**overrides)


# ---- top_k_vocab -------------------------------------------------------------------------------------------


def test_top_k_orders_by_count_then_token():
    counts = {"b": 3, "a": 3, "c": 5, "d": 1, "e": 3}
    assert top_k_vocab(counts, 4) == ("c", "a", "b", "e")
    assert top_k_vocab(counts, 10) == ("c", "a", "b", "e", "d")
    assert top_k_vocab(counts, 0) == ()


def test_top_k_sums_repeated_pairs():
    pairs = [("x", 2), ("y", 3), ("x", 2), ("z", 1)]
    assert top_k_vocab(pairs, 2) == ("x", "y")
    assert top_k_vocab(iter(pairs), 3) == ("x", "y", "z")


# ---- text_cnn ----------------------------------------------------------------------------------------------

if "kind" in TensorInput.__dataclass_fields__:
    Tensor = TensorInput
else:  # until the feature spec gains text features: the same fields, `kind` included

    @dataclasses.dataclass(frozen=True)
    class Tensor:
        name: str
        shape: tuple[int, ...]
        dtype: str
        columns: tuple[str, ...]
        cardinalities: tuple[int, ...] = ()
        kind: str = "numeric"


def tensors(numeric: int = 0, cardinalities: tuple[int, ...] = (), token_lens: tuple[int, ...] = (12,), size=30):
    out = {}
    for i, length in enumerate(token_lens):
        name = f"tokens__text{i}"
        out[name] = Tensor(name, (length,), "int64", (f"text{i}",), (size,), kind="tokens")
    if numeric:
        out["numeric"] = Tensor(
            "numeric", (numeric,), "float32", tuple(f"n{i}" for i in range(numeric)), kind="numeric"
        )
    if cardinalities:
        columns = tuple(f"c{i}" for i in range(len(cardinalities)))
        out["categorical"] = Tensor(
            "categorical", (len(cardinalities),), "int64", columns, cardinalities, "categorical"
        )
    return out


def random_batch(described: dict, rows: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    batch = {}
    for name, t in described.items():
        if t.kind == "numeric":
            batch[name] = torch.randn(rows, *t.shape, generator=generator)
        else:
            highs = torch.tensor(t.cardinalities if t.kind == "categorical" else t.cardinalities * t.shape[0])
            batch[name] = (torch.rand(rows, *t.shape, generator=generator) * highs).long()
    return batch


@pytest.mark.parametrize(
    ("task", "output_dim", "numeric", "cardinalities", "token_lens"),
    [
        ("binary", 1, 0, (), (12,)),
        ("multiclass", 3, 0, (), (12,)),
        ("binary", 1, 4, (), (12,)),
        ("multiclass", 3, 0, (5, 9), (12,)),
        ("multiclass", 3, 2, (7,), (12, 20)),
        ("binary", 1, 0, (), (2,)),  # shorter than the widest kernel
    ],
)
def test_text_cnn_output_shape(task, output_dim, numeric, cardinalities, token_lens):
    described = tensors(numeric, cardinalities, token_lens)
    model = text_cnn(ModelInputs(described, task, output_dim), {"filters": 8, "token_embedding_dim": 6})
    logits = model(random_batch(described, rows=5))
    assert logits.shape == (5, output_dim)
    widths = [tower.out_dim for tower in model.towers]
    expected = 8 * 3 * len(token_lens) + numeric + sum(e.embedding_dim for e in model.embeddings)
    assert widths == [24] * len(token_lens) and model.head.in_features == expected


def test_text_cnn_defaults_and_none_params():
    model = text_cnn(ModelInputs(tensors(), "binary", 1), {"token_embedding_dim": None, "hidden": [64]})
    tower = model.towers[0]
    assert tower.embedding.embedding_dim == 64 and tower.embedding.padding_idx == 0
    assert [c.kernel_size[0] for c in tower.convs] == [3, 4, 5] and tower.convs[0].out_channels == 64
    assert model.dropout.p == 0.5


def test_text_cnn_needs_a_token_tensor_and_rejects_other_kinds():
    with pytest.raises(ValueError, match="at least one text feature"):
        text_cnn(ModelInputs(tensors(numeric=3, token_lens=()), "binary", 1), {})
    image = {"image": Tensor("image", (3, 8, 8), "float32", ("img",), kind="image"), **tensors()}
    with pytest.raises(ValueError, match="image"):
        text_cnn(ModelInputs(image, "binary", 1), {})


def test_text_cnn_learns_whether_a_token_occurs():
    """Label = "magic" appears in the text: a max-pooled conv feature can find it anywhere in the sequence."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(40)]

    def sample(rows: int) -> tuple[torch.Tensor, torch.Tensor]:
        texts, labels = [], []
        for _ in range(rows):
            tokens = list(rng.choice(words, rng.integers(3, 16)))
            label = rng.random() < 0.5
            if label:
                tokens.insert(int(rng.integers(0, len(tokens) + 1)), "magic")
            texts.append(" ".join(tokens))
            labels.append(float(label))
        ids = fitted.encode(pd.Series(texts))
        return torch.from_numpy(ids).long(), torch.tensor(labels)

    fitted = TextVocab("text", "word", True, 16, ("magic", *words))
    described = {"tokens__text": Tensor("tokens__text", (16,), "int64", ("text",), (fitted.size,), kind="tokens")}
    model = text_cnn(ModelInputs(described, "binary", 1), {"token_embedding_dim": 16, "filters": 16, "dropout": 0.1})
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(200):
        x, y = sample(64)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model({"tokens__text": x}).squeeze(1), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    x, y = sample(1000)
    with torch.no_grad():
        accuracy = ((model({"tokens__text": x}).squeeze(1) > 0).float() == y).float().mean().item()
    assert accuracy > 0.9
