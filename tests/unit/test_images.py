"""Image features without Spark: decode reasons, pixels, spec round trip, tensors, packed loader, augmenter, cnn."""

from __future__ import annotations

import io
import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from pipeline.model.cnn import cnn
from pipeline.model.factory import build_network
from pipeline.model.images import ImageDecodeError, decode, decode_many, open_image
from pipeline.model.inputs import TensorInput, example_batch, model_inputs, to_model_view
from pipeline.model.predictor import Predictor
from pipeline.model.spec import CategoricalVocab, FeatureSpec, LabelSpec, NumericStats
from pipeline.model.tensor_specs import ImageSpec
from pipeline.model.text import TextVocab
from pipeline.worker.augment import Augmenter
from pipeline.worker.loader import ShardedParquetLoader, _packed_rows

CNN_CONFIG = {
    "factory": "pipeline.model.cnn:cnn",
    "params": {"channels": [8], "hidden": [16], "dropout": 0.0, "embedding_dim": None},
}


def encode(pixels: np.ndarray, fmt: str = "PNG", mode: str | None = None) -> bytes:
    """uint8 HxW (L), HxWx3 (RGB) or HxWx4 (RGBA) -> the encoded file."""
    out = io.BytesIO()
    Image.fromarray(pixels, mode).save(out, format=fmt)
    return out.getvalue()


def noise(height: int, width: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    shape = (height, width) if channels == 1 else (height, width, channels)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def reason(data, **kw) -> str:
    with pytest.raises(ImageDecodeError) as info:
        open_image(data, **kw)
    return str(info.value)


def rgb_columns(height: int = 2) -> np.ndarray:
    """HxWx3: column 0 red, column 1 green, column 2 blue."""
    pixels = np.zeros((height, 3, 3), dtype=np.uint8)
    for channel in range(3):
        pixels[:, channel, channel] = 255
    return pixels


def image_spec(height: int = 8, width: int = 8) -> ImageSpec:
    return ImageSpec(name="content", mode="L", height=height, width=width, mean=(0.3,), std=(0.2,))


def text_vocab(max_len: int = 6) -> TextVocab:
    return TextVocab(name="text", level="word", lowercase=True, max_len=max_len, vocab=("good", "bad", "film"))


def make_spec(images=None, texts=None, label=None, **kw) -> FeatureSpec:
    return FeatureSpec(
        input_schema={"content": "binary", "text": "string", "y": "string"},
        images=(image_spec(),) if images is None else images,
        texts=(text_vocab(),) if texts is None else texts,
        label=LabelSpec("y", "multiclass", classes=("a", "b", "c")) if label is None else label,
        **kw,
    ).with_hash()


def packed_ids(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row id -> the 16 pixel bytes and 5 token ids that row carries in the packed Parquet."""
    pixels = ((ids[:, None] + np.arange(16)) % 256).astype(np.uint8)
    tokens = (ids[:, None] * 10 + np.arange(5)).astype(np.int32)
    return pixels, tokens


def write_packed(folder, sizes: list[int], row_group: int, bad_row: int | None = None) -> int:
    """One Parquet file per size with img__content (16 bytes), tok__text (5 int32) and label = row id."""
    folder.mkdir(parents=True, exist_ok=True)
    start = 0
    for k, n in enumerate(sizes):
        ids = np.arange(start, start + n)
        pixels, tokens = packed_ids(ids)
        blobs = [row.tobytes() for row in pixels]
        if bad_row is not None and start <= bad_row < start + n:
            blobs[bad_row - start] = blobs[bad_row - start][:-1]
        table = pa.table(
            {
                "img__content": pa.array(blobs, pa.binary()),
                "tok__text": pa.array(tokens.tolist(), pa.list_(pa.int32())),
                "label": ids.astype(np.float32),
            }
        )
        pq.write_table(table, folder / f"part-{k}.parquet", row_group_size=row_group)
        start += n
    return start


def packed_tensors() -> list[TensorInput]:
    spec = make_spec(images=(image_spec(4, 4),), texts=(text_vocab(5),))
    return list(model_inputs(spec).tensors.values())


def packed_loader(folder, rank: int, size: int, shuffle: bool = False, **kw) -> ShardedParquetLoader:
    return ShardedParquetLoader(str(folder), packed_tensors(), "label", 8, rank, size, shuffle, prefetch=2, **kw)


def check_packed_batch(batch: dict[str, torch.Tensor], y: torch.Tensor) -> None:
    ids = y.long().numpy()
    pixels, tokens = packed_ids(ids)
    image, text = batch["content"], batch["text"]
    assert image.dtype == torch.uint8 and image.shape == (len(ids), 1, 4, 4)
    assert text.dtype == torch.int32 and text.shape == (len(ids), 5)
    assert np.array_equal(image.reshape(len(ids), 16).numpy(), pixels)
    assert np.array_equal(text.numpy(), tokens)


def image_inputs(shape=(1, 6, 6), classes: int = 4, task: str = "multiclass", **extra):
    spec = ImageSpec(
        "content", "L" if shape[0] == 1 else "RGB", shape[1], shape[2], (0.5,) * shape[0], (0.25,) * shape[0]
    )
    names = tuple(str(i) for i in range(classes)) if task == "multiclass" else ()
    return model_inputs(make_spec(images=(spec,), texts=(), label=LabelSpec("y", task, classes=names), **extra))


def shifted(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """[C, H, W] moved by (dy, dx) pixels with zero fill: out[y, x] = x[y + dy, x + dx]."""
    _, height, width = x.shape
    padded = F.pad(x, (1, 1, 1, 1))
    return padded[:, 1 + dy : 1 + dy + height, 1 + dx : 1 + dx + width]


def quadrant_batch(rows: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised 1x8x8 noise with one bright 4x4 quadrant; the class is which quadrant."""
    labels = torch.randint(0, 4, (rows,), generator=generator)
    x = torch.rand(rows, 1, 8, 8, generator=generator) * 0.3
    for k in range(4):
        r, c = divmod(k, 2)
        x[labels == k, :, 4 * r : 4 * r + 4, 4 * c : 4 * c + 4] += 0.7
    return (x - 0.3) / 0.35, labels


# ---- 1. decode reasons --------------------------------------------------------------------------------


def test_empty_data_is_named():
    assert reason(b"") == "empty file (0 bytes)"


def test_text_bytes_are_not_an_image():
    assert reason(b"id,name\n1,not a picture at all\n").startswith("not an image file")


def test_png_cut_in_half_is_truncated():
    data = encode(noise(32, 32))
    assert reason(data[: len(data) // 2]) == "truncated image file"


def test_jpeg_cut_in_half_is_truncated():
    data = encode(noise(64, 64), "JPEG")
    assert "truncated" in reason(data[: len(data) // 2])


def test_jpeg_cut_in_its_header_is_truncated():
    data = encode(noise(64, 64), "JPEG")
    assert reason(data[:250]) == "truncated image file"


def test_mode_not_in_accept_modes_is_named():
    message = reason(encode(noise(4, 4)), accept_modes=("L",))
    assert "RGB" in message and "accept_modes" in message and "['L']" in message


def test_accepted_mode_returns_facts():
    _, facts = open_image(encode(noise(3, 5, channels=1)), accept_modes=("L",))
    assert (facts.width, facts.height, facts.mode) == (5, 3, "L")


@pytest.mark.parametrize("side", [4, 5])  # 16 pixels: Pillow warns (> limit); 25: Pillow refuses (> 2 x limit)
def test_too_many_pixels_is_a_reason(monkeypatch, side):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10)
    assert "decompression bomb" in reason(encode(noise(side, side)))


def test_reasons_are_fixed_texts_that_group():
    """Quarantine groups by reason: two different broken files of one kind give the very same text."""
    small, large = encode(noise(16, 16, seed=1)), encode(noise(40, 24, seed=2))
    truncated = {reason(small[: len(small) // 2]), reason(large[: len(large) // 3])}
    not_images = {reason(b"hello world"), reason(bytes(range(7, 200)))}
    assert len(truncated) == 1 and len(not_images) == 1
    for text in truncated | not_images:
        assert not re.search(r"\d", text), text  # no byte counts, no object addresses


# ---- 2. pixels ----------------------------------------------------------------------------------------


def test_grey_decodes_to_one_channel_with_the_pixels():
    pixels = noise(3, 5, channels=1)
    out = decode(encode(pixels), "L", 3, 5)
    assert out.dtype == np.uint8 and out.shape == (1, 3, 5)
    assert np.array_equal(out[0], pixels)


def test_rgb_decodes_channel_first_in_rgb_order():
    out = decode(encode(rgb_columns()), "RGB", 2, 3)
    assert out.shape == (3, 2, 3)
    for channel in range(3):  # channel c is 255 exactly in column c (red, green, blue)
        expected = np.zeros((2, 3), dtype=np.uint8)
        expected[:, channel] = 255
        assert np.array_equal(out[channel], expected), channel


def test_resize_gives_the_requested_shape():
    colour = np.full((6, 10, 3), (10, 120, 240), dtype=np.uint8)
    out = decode(encode(colour), "RGB", 4, 7)
    assert out.shape == (3, 4, 7)
    assert np.array_equal(out[:, 0, 0], [10, 120, 240]) and np.all(out == out[:, :1, :1])  # flat stays flat
    assert decode(encode(noise(9, 5)), "L", 12, 3).shape == (1, 12, 3)


def test_rgb_converts_to_grey():
    white_black = np.zeros((1, 2, 3), dtype=np.uint8)
    white_black[0, 0] = 255
    assert decode(encode(white_black), "L", 1, 2).tolist() == [[[255, 0]]]


def test_transparent_pixel_becomes_white():
    rgba = np.array([[[0, 0, 0, 0], [0, 0, 0, 255]]], dtype=np.uint8)  # transparent black, opaque black
    data = encode(rgba, mode="RGBA")
    assert decode(data, "L", 1, 2).tolist() == [[[255, 0]]]
    assert decode(data, "RGB", 1, 2)[:, 0, 0].tolist() == [255, 255, 255]


def test_decode_many_reads_paths_like_bytes(tmp_path):
    data = encode(rgb_columns(4))
    path = tmp_path / "picture.png"
    path.write_bytes(data)
    out = decode_many([data, str(path), f"file:{path}", f"file://{path}"], "RGB", 4, 3)
    assert out.shape == (4, 3, 4, 3) and out.dtype == np.uint8
    for row in out:
        assert np.array_equal(row, decode(data, "RGB", 4, 3))


def test_decode_many_names_the_failing_row(tmp_path):
    good = encode(noise(4, 4))
    with pytest.raises(ImageDecodeError, match=r"^image in row 2: not an image file"):
        decode_many([good, good, b"junk", good], "L", 4, 4)
    with pytest.raises(ImageDecodeError, match=r"^image in row 1: cannot read image file"):
        decode_many([good, str(tmp_path / "missing.png")], "L", 4, 4)


def test_transform_images_names_the_column():
    frame = pd.DataFrame({"content": [encode(noise(8, 8)), b""], "text": ["a", "b"]})
    with pytest.raises(ImageDecodeError, match=r"^column 'content': image in row 1: empty file"):
        make_spec().transform_images(frame)


# ---- 3. spec ------------------------------------------------------------------------------------------


def test_spec_with_images_and_texts_round_trips():
    spec = make_spec()
    again = FeatureSpec.from_json(spec.to_json())
    assert again == spec
    assert again.images[0].mean == (0.3,) and again.texts[0].vocab == ("good", "bad", "film")
    assert spec.input_columns == ["content", "text"]
    assert spec.images[0].column == "img__content" and spec.images[0].shape == (1, 8, 8)


# ---- 4. model inputs ----------------------------------------------------------------------------------


def test_model_inputs_describe_image_and_tokens():
    tensors = model_inputs(make_spec()).tensors
    assert set(tensors) == {"content", "text"}
    image, text = tensors["content"], tensors["text"]
    assert (image.kind, image.shape, image.dtype, image.stored_dtype) == ("image", (1, 8, 8), "float32", "uint8")
    assert image.packed and image.columns == ("img__content",) and image.mean == (0.3,) and image.std == (0.2,)
    assert (text.kind, text.shape, text.cardinalities, text.stored_dtype) == ("tokens", (6,), (5,), "int32")
    assert text.packed and text.columns == ("tok__text",) and text.dtype == "int64"


def test_to_model_view_normalises_images_and_widens_tokens():
    inputs = model_inputs(make_spec())
    image = torch.zeros(2, 1, 8, 8, dtype=torch.uint8)
    image[0, 0, 0, :3] = torch.tensor([0, 51, 255], dtype=torch.uint8)
    tokens = torch.tensor([[2, 3, 1, 0, 0, 0]] * 2, dtype=torch.int32)
    batch = {"content": image, "text": tokens}
    view = to_model_view(batch, inputs)
    assert view["content"].dtype == torch.float32 and view["content"].shape == (2, 1, 8, 8)
    assert torch.allclose(view["content"][0, 0, 0, :3], torch.tensor([-1.5, -0.5, 3.5]), atol=1e-6)
    expected = (image.numpy().astype(np.float64) / 255 - 0.3) / 0.2
    assert np.allclose(view["content"].numpy(), expected, atol=1e-6)
    assert view["text"].dtype == torch.int64 and view["text"].tolist() == tokens.tolist()
    assert batch["content"].dtype == torch.uint8  # the stored batch is left as it was


def test_to_model_view_uses_each_channel_statistics():
    spec = make_spec(images=(ImageSpec("content", "RGB", 2, 2, (0.1, 0.2, 0.3), (0.5, 0.25, 0.125)),), texts=())
    image = torch.full((1, 3, 2, 2), 51, dtype=torch.uint8)  # 51 / 255 = 0.2
    view = to_model_view({"content": image}, model_inputs(spec))["content"]
    assert torch.allclose(view[0, :, 0, 0], torch.tensor([0.2, 0.0, -0.8]), atol=1e-6)


def test_batch_from_frame_decodes_images_and_encodes_texts():
    from pipeline.model.inputs import batch_from_frame

    spec = make_spec()
    pictures = [encode(noise(8, 8, channels=1, seed=s)) for s in range(3)]
    frame = pd.DataFrame({"content": pictures, "text": ["Good film", None, "bad bad unknown"]})
    batch = batch_from_frame(spec, frame)
    assert set(batch) == {"content", "text"}
    assert batch["content"].dtype == torch.uint8 and batch["content"].shape == (3, 1, 8, 8)
    assert np.array_equal(batch["content"].numpy(), decode_many(pictures, "L", 8, 8))
    assert batch["text"].dtype == torch.int32
    assert batch["text"].tolist() == [[2, 4, 0, 0, 0, 0], [0] * 6, [3, 3, 1, 0, 0, 0]]


# ---- 5. loader with packed columns --------------------------------------------------------------------


def test_packed_rows_appear_once_across_ranks_with_their_bytes(tmp_path):
    total = write_packed(tmp_path / "f", [60, 45], row_group=20)
    seen = []
    for rank in range(2):
        for batch, y in packed_loader(tmp_path / "f", rank, 2).eval_batches():
            check_packed_batch(batch, y)
            seen.extend(y.long().tolist())
    assert sorted(seen) == list(range(total))


def test_packed_train_epoch_is_equal_on_ranks_and_replays(tmp_path):
    write_packed(tmp_path / "f", [60, 45], row_group=20)
    loaders = [packed_loader(tmp_path / "f", rank, 2, shuffle=True, seed=5, buffer_rows=16) for rank in range(2)]
    orders = []
    for ld in loaders:
        labels = []
        for batch, y in ld.train_epoch(0):
            check_packed_batch(batch, y)  # shuffling keeps pixels, tokens and label of a row together
            labels.append(y)
        orders.append(torch.cat(labels))
    steps = min(ld.rows for ld in loaders) // 8
    assert len(orders[0]) == len(orders[1]) == steps * 8 and loaders[0].steps_per_epoch == steps
    again = torch.cat([y for _, y in loaders[0].train_epoch(0)])
    other = torch.cat([y for _, y in loaders[0].train_epoch(1)])
    assert torch.equal(orders[0], again)  # same (seed, epoch): exact resume
    assert not torch.equal(orders[0], other)


def test_packed_value_of_wrong_length_asks_for_prepare(tmp_path):
    write_packed(tmp_path / "f", [30], row_group=10, bad_row=13)
    with pytest.raises(ValueError, match="re-run prepare"):
        list(packed_loader(tmp_path / "f", 0, 1).eval_batches())


def test_packed_rows_handle_sliced_and_chunked_columns():
    pixels, tokens = packed_ids(np.arange(8))
    blobs = pa.array([row.tobytes() for row in pixels], pa.binary())
    lists = pa.array(tokens.tolist(), pa.list_(pa.int32()))
    table = pa.table(
        {
            "b": pa.chunked_array([blobs.slice(1, 3), blobs.slice(5)]),
            "l": pa.chunked_array([lists.slice(1, 3), lists.slice(5)]),
        }
    )
    keep = [1, 2, 3, 5, 6, 7]
    assert np.array_equal(_packed_rows(table, "b", (1, 4, 4)), pixels[keep].reshape(6, 1, 4, 4))
    assert np.array_equal(_packed_rows(table, "l", (5,)), tokens[keep])


# ---- 6. augmenter -------------------------------------------------------------------------------------


def augment(inputs, flip: bool, crop: int, epoch: int = 0, rank: int = 0, seed: int = 7, batch=None):
    augmenter = Augmenter(inputs, flip=flip, crop_padding=crop, seed=seed, device=torch.device("cpu"))
    augmenter.start_epoch(epoch, rank)
    return augmenter(batch)


def image_batch(rows: int = 32) -> dict[str, torch.Tensor]:
    """Distinct, non-zero values at every pixel, so flips and shifts are visible (zero is the crop's fill)."""
    return {"content": torch.arange(1, rows * 36 + 1, dtype=torch.float32).view(rows, 1, 6, 6)}


def flip_pattern(out: torch.Tensor, x: torch.Tensor) -> list[bool]:
    pattern = []
    for sample, original in zip(out, x, strict=True):
        mirrored = torch.equal(sample, original.flip(-1))
        assert mirrored or torch.equal(sample, original)
        pattern.append(mirrored)
    return pattern


def test_flip_is_seeded_and_mirrors_whole_samples():
    inputs, batch = image_inputs(), image_batch()
    x = batch["content"]
    first = augment(inputs, True, 0, batch=batch)["content"]
    again = augment(inputs, True, 0, batch=batch)["content"]
    assert torch.equal(first, again)
    pattern = flip_pattern(first, x)
    assert 0 < sum(pattern) < len(pattern)
    assert flip_pattern(augment(inputs, True, 0, epoch=1, batch=batch)["content"], x) != pattern
    assert flip_pattern(augment(inputs, True, 0, rank=1, batch=batch)["content"], x) != pattern


def test_crop_shifts_each_sample_by_at_most_one_pixel():
    inputs, batch = image_inputs(), image_batch()
    x = batch["content"]
    out = augment(inputs, False, 1, batch=batch)["content"]
    assert out.shape == x.shape
    moves = []
    for sample, original in zip(out, x, strict=True):
        found = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if torch.equal(sample, shifted(original, dy, dx))]
        assert found, "a sample is not its input shifted by at most one pixel"
        moves.append(found[0])
    assert len(set(moves)) > 1 and any(move != (0, 0) for move in moves)


def test_no_augmentation_returns_the_batch_itself():
    batch = image_batch(4)
    untouched = augment(image_inputs(), False, 0, batch=batch)
    assert untouched is batch
    tabular = model_inputs(make_spec(images=(), texts=(), numeric=(NumericStats("x", 0.0, 0.0, 1.0),)))
    numeric = {"numeric": torch.ones(4, 2)}
    assert augment(tabular, True, 2, batch=numeric) is numeric


def test_augmentation_leaves_other_tensors_alone():
    batch = {**image_batch(4), "numeric": torch.ones(4, 2)}
    out = augment(image_inputs(), True, 1, batch=batch)
    assert out["numeric"] is batch["numeric"] and out["content"].shape == batch["content"].shape


# ---- 7. cnn -------------------------------------------------------------------------------------------


def test_cnn_logits_for_multiclass_and_binary():
    torch.manual_seed(0)
    multiclass = image_inputs((1, 8, 8), classes=10)
    assert cnn(multiclass, CNN_CONFIG["params"])(example_batch(multiclass, 4)).shape == (4, 10)
    binary = image_inputs((1, 8, 8), task="binary")
    assert tuple(cnn(binary, CNN_CONFIG["params"])(example_batch(binary, 4)).shape) in {(4,), (4, 1)}


def test_cnn_joins_numeric_and_categorical_inputs():
    torch.manual_seed(0)
    extra = {"numeric": (NumericStats("x", 0.0, 0.0, 1.0),), "categorical": (CategoricalVocab("c", ("u", "v")),)}
    inputs = image_inputs((3, 6, 6), classes=10, **extra)
    assert set(inputs.tensors) == {"content", "numeric", "categorical"}
    net = cnn(inputs, CNN_CONFIG["params"]).eval()
    batch = example_batch(inputs, 4)
    logits = net(batch)
    assert logits.shape == (4, 10)
    assert not torch.allclose(net({**batch, "numeric": batch["numeric"] + 5.0}), logits)  # numeric reaches the head


def test_cnn_takes_several_images_of_different_shapes():
    torch.manual_seed(0)
    images = (image_spec(8, 8), ImageSpec("photo", "RGB", 5, 7, (0.5,) * 3, (0.2,) * 3))
    spec = make_spec(images=images, texts=(), label=LabelSpec("y", "multiclass", classes=("a", "b", "c")))
    inputs = model_inputs(spec)
    assert cnn(inputs, CNN_CONFIG["params"])(example_batch(inputs, 3)).shape == (3, 3)


def test_cnn_without_an_image_names_features_images():
    tabular = model_inputs(make_spec(images=(), texts=(), numeric=(NumericStats("x", 0.0, 0.0, 1.0),)))
    with pytest.raises(ValueError, match="features.images"):
        cnn(tabular, CNN_CONFIG["params"])


def test_cnn_learns_which_quadrant_is_bright():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: one thread is faster and steadier on shared cores
    try:
        torch.manual_seed(0)
        generator = torch.Generator().manual_seed(0)
        net = cnn(image_inputs((1, 8, 8), classes=4), CNN_CONFIG["params"])
        optimizer = torch.optim.Adam(net.parameters(), lr=0.02)
        for _ in range(100):
            x, y = quadrant_batch(32, generator)
            loss = F.cross_entropy(net({"content": x}), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        x, y = quadrant_batch(512, generator)
        with torch.no_grad():
            accuracy = (net.eval()({"content": x}).argmax(dim=1) == y).float().mean().item()
    finally:
        torch.set_num_threads(threads)
    assert accuracy > 0.9


# ---- 8. predictor -------------------------------------------------------------------------------------


def predictor_spec() -> FeatureSpec:
    image = ImageSpec("content", "L", 8, 8, (0.5,), (0.25,))
    return make_spec(images=(image,), texts=(), label=LabelSpec("y", "multiclass", classes=("a", "b", "c")))


def make_predictor() -> Predictor:
    spec = predictor_spec()
    torch.manual_seed(0)
    state = build_network(CNN_CONFIG, model_inputs(spec)).state_dict()
    return Predictor(spec, CNN_CONFIG, state)


def test_predictor_scores_image_bytes_and_paths_alike(tmp_path):
    predictor = make_predictor()
    pictures = [encode(noise(8, 8, channels=1, seed=s)) for s in range(4)] + [encode(noise(12, 10, seed=9))]
    result = predictor.predict(pd.DataFrame({"content": pictures}))
    assert list(result.columns) == ["probability", "prediction"] and len(result) == len(pictures)
    assert result["probability"].between(1 / 3, 1.0).all()  # the largest of three class probabilities
    assert set(result["prediction"]) <= {"a", "b", "c"}
    paths = []
    for k, data in enumerate(pictures):
        (tmp_path / f"{k}.png").write_bytes(data)
        paths.append(f"file:{tmp_path / f'{k}.png'}" if k % 2 else str(tmp_path / f"{k}.png"))
    pd.testing.assert_frame_equal(predictor.predict(pd.DataFrame({"content": paths})), result)


def test_predictor_matches_the_network_on_normalised_pixels():
    predictor = make_predictor()
    pictures = [encode(noise(8, 8, channels=1, seed=s)) for s in range(3)]
    x = (decode_many(pictures, "L", 8, 8).astype(np.float32) / 255 - 0.5) / 0.25
    with torch.no_grad():
        expected = torch.softmax(predictor.net({"content": torch.from_numpy(x)}), dim=1).numpy()
    result = predictor.predict(pd.DataFrame({"content": pictures}))
    assert np.allclose(result["probability"], expected.max(axis=1), atol=1e-6)
    assert list(result["prediction"]) == [("a", "b", "c")[i] for i in expected.argmax(axis=1)]


def test_predictor_names_a_broken_image():
    frame = pd.DataFrame({"content": [encode(noise(8, 8, channels=1)), b"not a picture"]})
    with pytest.raises(ImageDecodeError, match=r"column 'content': image in row 1: not an image file"):
        make_predictor().predict(frame)


def test_sixteen_bit_grey_is_scaled_not_clipped():
    ramp = (np.arange(16, dtype=np.uint16) * 4096).reshape(4, 4)
    buffer = io.BytesIO()
    Image.fromarray(ramp).save(buffer, "PNG")  # uint16 -> mode I;16
    pixels = decode(buffer.getvalue(), "L", 4, 4)
    assert pixels.ravel().tolist() == [v >> 8 for v in ramp.ravel().tolist()]  # 0, 16, 32, ... 240


def test_a_missing_image_is_named_as_such():
    with pytest.raises(ImageDecodeError, match="missing image"):
        decode(None, "L", 4, 4)
