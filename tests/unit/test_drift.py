"""PSI per feature against the reference profile, and what a report says: each drift kind on hand-made counts."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from pipeline.config.monitoring import MonitorConfig
from pipeline.data.input_profile import MISSING, FeatureCounts, Profile
from pipeline.monitoring.drift import EPSILON, compare

REFERENCE = Profile(
    1000,
    {
        "distance": FeatureCounts("distance", "numeric", {4: 250, 5: 250, 6: 250, 7: 240, MISSING: 10}),
        "carrier": FeatureCounts("carrier", "categorical", {0: 0, 1: 20, 2: 580, 3: 400}),
    },
    columns=("id", "distance", "carrier", "note"),
)


def batch(distance: dict[int, int], carrier: dict[int, int], columns=("id", "distance", "carrier", "note")):
    return Profile(
        sum(distance.values()),
        {
            "distance": FeatureCounts("distance", "numeric", distance),
            "carrier": FeatureCounts("carrier", "categorical", carrier),
        },
        columns=columns,
    )


def test_the_same_shares_are_no_drift():
    report = compare(REFERENCE, batch({4: 25, 5: 25, 6: 25, 7: 24, MISSING: 1}, {1: 2, 2: 58, 3: 40}), MonitorConfig())
    assert report.max_psi == pytest.approx(0.0, abs=1e-9) and not report.over(0.1) and not report.failed
    assert report.summary().startswith("drift ok: 0 of 2 features")


def test_a_shifted_numeric_feature_is_named_with_its_psi():
    shifted = {6: 30, 7: 30, 8: 30, 9: 9, MISSING: 1}  # most rows two buckets up
    report = compare(REFERENCE, batch(shifted, {1: 2, 2: 58, 3: 40}), MonitorConfig(fail_psi=0.25))
    expected = sum(
        (p - q) * math.log(max(p, EPSILON) / max(q, EPSILON))
        for p, q in [(0, 0.25), (0, 0.25), (0.3, 0.25), (0.3, 0.24), (0.3, 0), (0.09, 0), (0.01, 0.01)]
    )
    distance = report.features[0]
    assert distance.feature == "distance" and distance.psi == pytest.approx(expected, rel=1e-6)
    assert [f.feature for f in report.over(0.25)] == ["distance"] and report.failed
    assert report.metrics()["psi.distance"] == distance.psi and report.metrics()["drift_share"] == 0.5


def test_a_new_category_shows_as_unseen_share():
    report = compare(REFERENCE, batch({4: 25, 5: 25, 6: 25, 7: 25}, {1: 40, 2: 35, 3: 25}), MonitorConfig())
    carrier = report.features[1]
    assert carrier.unseen_share == 0.4 and carrier.reference_unseen_share == 0.02
    assert carrier.psi > 0.25 and "carrier" in report.summary()


def test_a_null_surge_is_drift_of_the_missing_bucket():
    report = compare(REFERENCE, batch({4: 10, 5: 10, 6: 10, 7: 10, MISSING: 60}, {2: 60, 3: 40}), MonitorConfig())
    distance = report.features[0]
    assert distance.missing_share == 0.6 and distance.reference_missing_share == 0.01 and distance.psi > 1


def test_schema_changes_are_reported():
    same = {4: 25, 5: 25, 6: 25, 7: 24, MISSING: 1}
    report = compare(
        REFERENCE, batch(same, {2: 58, 3: 42}, columns=("id", "distance", "carrier", "promo")), MonitorConfig()
    )
    assert report.new_columns == ("promo",) and report.missing_columns == ("note",)
    assert "new columns ['promo']; columns gone ['note']" in report.summary()


def test_no_failure_level_unless_configured():
    shifted = compare(REFERENCE, batch({9: 100}, {1: 100}), MonitorConfig())
    assert shifted.max_psi > 1 and not shifted.failed and shifted.summary().startswith("drift warn")
    with pytest.raises(ValidationError, match="monitor.fail_psi=0.05 is below monitor.warn_psi=0.1"):
        MonitorConfig(fail_psi=0.05)


def test_profiles_round_trip_through_json():
    assert Profile.from_json(REFERENCE.to_json()) == REFERENCE


def test_the_predictions_reference_and_their_psi():
    """Binary probabilities in ten bins, classes by name, regression in z buckets; PSI 0 on the same outputs."""
    import numpy as np
    import pandas as pd

    from pipeline.monitoring.prediction_drift import prediction_psi, reference_from

    rng = np.random.default_rng(0)
    test = pd.DataFrame({"probability": rng.beta(2, 5, 5000), "prediction": rng.normal(3.0, 2.0, 5000)})
    binary = reference_from("binary", test)
    assert binary["kind"] == "probability" and sum(binary["counts"].values()) == 5000
    assert set(binary["counts"]) <= {str(b) for b in range(10)}
    assert prediction_psi(binary, binary["counts"]) == 0.0
    shifted = reference_from("binary", test.assign(probability=rng.beta(5, 2, 5000)))["counts"]
    assert prediction_psi(binary, shifted) > 1.0  # most scores moved to the other end
    classes = reference_from("multiclass", pd.DataFrame({"prediction": ["a", "b", "b", "c"]}))
    assert classes == {"kind": "class", "counts": {"a": 1, "b": 2, "c": 1}}
    assert prediction_psi(classes, {"a": 1, "b": 2, "c": 1, "new": 4}) > 1.0  # a class the test split never got
    regression = reference_from("regression", test)
    assert regression["kind"] == "z" and abs(regression["mean"] - 3.0) < 0.1 and abs(regression["std"] - 2.0) < 0.1


def test_calibrated_probabilities_estimate_auc_and_accuracy_before_the_outcomes():
    """CBPE's premise on synthetic calibrated scores: outcomes drawn with probability p; the estimate from p alone
    lands near the realised AUC and accuracy (sklearn on the drawn outcomes)."""
    import numpy as np
    from sklearn.metrics import roc_auc_score

    from pipeline.monitoring.estimated_performance import BINS, expected_auc

    rng = np.random.default_rng(3)
    p = rng.beta(1.5, 3.0, 200_000)
    y = rng.random(p.size) < p
    bins = np.minimum(np.floor(p * BINS), BINS - 1).astype(int)
    present = np.unique(bins)
    sums = np.bincount(bins, weights=p, minlength=BINS)[present]
    counts = np.bincount(bins, minlength=BINS)[present]
    assert abs(expected_auc(present, sums, counts) - roc_auc_score(y, p)) < 0.01
    expected_accuracy = np.mean(np.where(p >= 0.5, p, 1 - p))
    assert abs(expected_accuracy - np.mean((p >= 0.5) == y)) < 0.01
    assert np.isnan(expected_auc(np.array([3]), np.array([0.0]), np.array([5.0])))  # one class expected: undefined
