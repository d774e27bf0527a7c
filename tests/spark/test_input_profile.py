"""The reference profile prepare writes, and the batch profile of each drift kind on real Spark rows."""

from __future__ import annotations

from pathlib import Path

from pyspark.sql import functions as F

from pipeline.config.monitoring import MonitorConfig
from pipeline.data.input_profile import MISSING, Profile, profile_groups, profile_rows
from pipeline.data.split import SPLIT
from pipeline.monitoring.drift import compare


def reference_and_rows(spark, prepared_flights):
    config, prepared = prepared_flights
    reference = Profile.from_json(Path(prepared.output_dir, "reference_profile.json").read_text())
    clean = spark.read.parquet(f"{prepared.output_dir}/clean")
    return prepared.spec, reference, clean.where(F.col(SPLIT) == "train")


def test_prepare_writes_the_train_rows_reference(spark, prepared_flights):
    spec, reference, train = reference_and_rows(spark, prepared_flights)
    assert reference.rows == prepared_flights[1].report.split_rows["train"] == train.count()
    assert set(reference.features) == {n.name for n in spec.numeric} | {c.name for c in spec.categorical}
    assert all(f.rows == reference.rows for f in reference.features.values())
    assert "carrier" in reference.columns and SPLIT not in reference.columns
    assert profile_rows(train, spec) == reference  # the same function of the same rows: no drift by construction


def test_each_drift_kind_moves_only_its_feature(spark, prepared_flights):
    spec, reference, train = reference_and_rows(spark, prepared_flights)
    sample = train.limit(4000)
    base = compare(reference, profile_rows(sample, spec), MonitorConfig())
    changed = sample.withColumn("distance", F.col("distance") * 4)  # a shifted numeric
    changed = changed.withColumn("carrier", F.when(F.rand(1) < 0.5, F.lit("ZZ")).otherwise(F.col("carrier")))
    changed = changed.withColumn("temp", F.when(F.rand(2) < 0.7, F.lit(None)).otherwise(F.col("temp")))
    changed = changed.drop("dep_time").withColumn("promo_code", F.lit("x"))  # schema: one column gone, one new
    report = compare(reference, profile_rows(changed, spec), MonitorConfig())
    psi = {f.feature: f.psi for f in report.features}
    before = {f.feature: f.psi for f in base.features}
    assert {name for name in psi if psi[name] > before[name] + 0.05} == {"distance", "carrier", "temp"}
    carrier = next(f for f in report.features if f.feature == "carrier")
    temp = next(f for f in report.features if f.feature == "temp")
    assert 0.4 < carrier.unseen_share < 0.6 and temp.missing_share > 0.6
    assert report.new_columns == ("promo_code",) and report.missing_columns == ("dep_time",)
    assert temp.reference_missing_share == reference.features["temp"].share(MISSING)


def test_a_large_batch_is_profiled_on_a_sample(spark, prepared_flights):
    spec, reference, train = reference_and_rows(spark, prepared_flights)
    sampled = profile_rows(train, spec, max_rows=2000)
    assert sampled.rows == reference.rows  # the batch's size, not the sample's
    sizes = {f.rows for f in sampled.features.values()}
    assert len(sizes) == 1 and 1500 < sizes.pop() < 2500
    # A sample of the same rows does not drift on numeric buckets; a 1,000-value vocabulary (tailnum) is noisy on
    # 2,000 rows (most values unseen in the sample): PSI of small batches over wide vocabularies reads high.
    report = compare(reference, sampled, MonitorConfig())
    assert max(f.psi for f in report.features if f.kind == "numeric") < 0.1


def test_profiles_by_group_are_each_groups_own_profile_in_one_pass(spark, prepared_flights):
    """A backfill profiles all its dates at once: each date's profile equals that date's rows profiled alone."""
    spec, _, train = reference_and_rows(spark, prepared_flights)
    days = train.withColumn("_day", F.to_date("flight_date")).where("_day between '2013-03-01' and '2013-03-03'")
    grouped = profile_groups(days, spec, "_day")
    assert sorted(str(day) for day in grouped) == ["2013-03-01", "2013-03-02", "2013-03-03"]
    for day, profile in grouped.items():
        assert profile == profile_rows(days.where(F.col("_day") == F.lit(day)), spec)
    assert profile_rows(days.where("false"), spec).rows == 0  # no rows: an empty profile, not an error


def _png(size: int, grey: int) -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("L", (size, size), grey).save(out, format="PNG")
    return out.getvalue()


def test_images_and_texts_are_profiled_by_size_mode_brightness_tokens_and_oov(spark):
    """Bigger, brighter colour images and longer texts full of unknown words move only their own measures."""
    from pipeline.model.spec import FeatureSpec
    from pipeline.model.tensor_specs import ImageSpec
    from pipeline.model.text import TextVocab

    vocab = TextVocab("review", "word", True, 16, ("good", "bad", "film", "plot"))
    image = ImageSpec("content", "L", 8, 8, (0.5,), (0.2,))
    spec = FeatureSpec({"content": "binary", "review": "string"}, images=(image,), texts=(vocab,))
    rows = [(_png(8, 40 + i % 20), "good film" if i % 2 else "bad plot, good film") for i in range(200)]
    reference = profile_rows(spark.createDataFrame(rows + [(None, None)], "content binary, review string"), spec)
    assert set(reference.features) == {
        "content.width", "content.height", "content.channels", "content.brightness", "review.tokens",
        "review.oov_share",
    }  # fmt: skip
    assert reference.features["content.width"].counts == {1: 200, MISSING: 1}  # 8 px: the 8-15 bucket
    assert reference.features["review.oov_share"].counts == {0: 200, MISSING: 1}

    def _rgb(size: int) -> bytes:
        import io

        from PIL import Image

        out = io.BytesIO()
        Image.new("RGB", (size, size), (230, 230, 230)).save(out, format="PNG")
        return out.getvalue()

    drifted = [(_rgb(64), "an utterly unexpected sequel nobody asked for, good") for _ in range(200)]
    batch = profile_rows(
        spark.createDataFrame(drifted + [(b"not an image", None)], "content binary, review string"), spec
    )
    report = compare(reference, batch, MonitorConfig())
    psi = {f.feature: f.psi for f in report.features}
    assert all(value > 1 for value in psi.values()), psi  # every measure moved: size, mode, brightness, text
    again = profile_rows(spark.createDataFrame(rows + [(None, None)], "content binary, review string"), spec)
    assert again == reference  # the same rows profile the same: measured alike on every executor
