"""Drift numbers follow the field's definitions: checked against scipy on the same data."""

import numpy as np
import pytest
from scipy import special, stats
from serving.monitoring import drift

rng = np.random.default_rng(3)


@pytest.mark.parametrize(("x", "y"), [
    (rng.normal(0, 1, 500), rng.normal(0, 1, 800)),
    (rng.normal(0, 1, 500), rng.normal(0.3, 1, 300)),
    (rng.gamma(2, 2, 200), rng.gamma(2, 2.5, 1000)),
    (rng.integers(0, 5, 400).astype(float), rng.integers(0, 6, 400).astype(float)),  # ties
])
def test_kolmogorov_smirnov_equals_scipy(x, y):
    d, p = drift.ks_2samp(x, y)
    assert d == pytest.approx(stats.ks_2samp(x, y).statistic, abs=1e-12)
    en = len(x) * len(y) / (len(x) + len(y))
    assert p == pytest.approx(stats.kstwobign.sf(np.sqrt(en) * d), abs=1e-10)


@pytest.mark.parametrize(("a", "b"), [
    ([120, 80, 40, 10], [118, 85, 35, 12]),
    ([300, 150, 50], [100, 200, 90]),
    ([50, 50], [70, 30]),  # 2 x 2: Yates' correction, as scipy applies it
    ([500, 3, 0, 40], [450, 10, 5, 60]),
])
def test_chi_squared_equals_scipy(a, b):
    statistic, p = drift.chi2_contingency(np.array(a), np.array(b))
    table = np.array([a, b])
    table = table[:, table.sum(axis=0) > 0]
    expected = stats.chi2_contingency(table)
    assert statistic == pytest.approx(expected.statistic, rel=1e-12)
    assert p == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)


@pytest.mark.parametrize("x", [0.5, 3.0, 17.0, 60.0, 250.0])
@pytest.mark.parametrize("dof", [1, 2, 5, 30])
def test_the_chi_squared_tail_equals_scipy(x, dof):
    assert drift._chi2_sf(x, dof) == pytest.approx(stats.chi2.sf(x, dof), rel=1e-9, abs=1e-300)


@pytest.mark.parametrize("t", [0.05, 0.3, 0.8, 0.99, 1.0, 1.3, 2.5])
def test_the_kolmogorov_tail_equals_scipy(t):
    assert drift._kolmogorov_sf(t) == pytest.approx(stats.kstwobign.sf(t), rel=1e-9, abs=1e-15)


def test_psi_is_the_symmetric_kullback_leibler_divergence():
    expected = np.array([0.1, 0.2, 0.3, 0.25, 0.15])
    actual = np.array([0.05, 0.25, 0.3, 0.2, 0.2])
    kl = special.rel_entr(actual, expected).sum() + special.rel_entr(expected, actual).sum()
    assert drift.psi(expected, actual) == pytest.approx(kl, rel=1e-12)
    assert drift.psi(expected * 40, actual * 7) == pytest.approx(kl, rel=1e-12)  # counts or shares
    assert drift.psi(expected, expected) == 0.0
    # an empty bin counts at the floor instead of making PSI infinite
    assert drift.psi([0.5, 0.5, 0.0], [0.4, 0.4, 0.2]) == pytest.approx(
        (0.4 - 0.5) * np.log(0.4 / 0.5) * 2 + (0.2 - 1e-4) * np.log(0.2 / 1e-4), rel=1e-9)


def _reference(n=4000, seed=0):
    r = np.random.default_rng(seed)
    matrix = np.column_stack([r.normal(10, 2, n), r.integers(0, 3, n).astype(float), r.gamma(2, 1, n)])
    matrix[r.random(n) < 0.05, 2] = np.nan
    columns = [{"name": "x", "kind": "numeric"},
               {"name": "colour", "kind": "categorical", "categories": ["red", "green", "blue"]},
               {"name": "z", "kind": "numeric"}]
    answers = np.column_stack([1 - (p := r.random(n)), p])
    return matrix, drift.reference(matrix, columns, answers, "binary", ["no", "yes"]), answers


def test_the_reference_profiles_each_column_and_the_answers():
    matrix, ref, _ = _reference()
    x, colour, z = ref["columns"]
    assert ref["rows"] == 4000
    assert len(x["edges"]) == 9 and sum(x["shares"]) == pytest.approx(1.0)
    assert max(x["shares"]) - min(x["shares"]) < 0.01  # deciles: a tenth each
    assert len(x["sample"]) == drift.SAMPLE and x["sample"] == sorted(x["sample"])
    assert colour["counts"] == np.bincount(matrix[:, 1].astype(int)).tolist()
    assert z["missing_rate"] == pytest.approx(np.isnan(matrix[:, 2]).mean())
    assert ref["prediction"]["name"] == "probability of yes"


def test_a_window_from_the_same_distribution_does_not_drift_and_a_shifted_one_does():
    _, ref, _ = _reference()
    same, _, answers = _reference(2000, seed=1)
    report = drift.compare(ref, same, drift.prediction_values(answers, "binary"))
    assert report["drifted_features"] == [] and not report["prediction_drifted"]
    assert all(f["psi"] < 0.05 for f in report["features"].values())
    shifted = same.copy()
    shifted[:, 0] += 1.5  # a numeric feature moved by three quarters of its spread
    shifted[:, 1] = np.where(np.random.default_rng(2).random(2000) < 0.6, 2.0, shifted[:, 1])  # re-weighted
    report = drift.compare(ref, shifted, drift.prediction_values(answers, "binary"))
    assert report["drifted_features"] == ["colour", "x"]
    assert report["features"]["x"]["test"] == "kolmogorov-smirnov" and report["features"]["x"]["p_value"] < 1e-6
    assert report["features"]["colour"]["test"] == "chi-squared"
    assert report["features"]["z"]["drifted"] is False


def test_too_few_rows_never_report_drift_and_unseen_categories_count():
    _, ref, _ = _reference()
    few = np.array([[30.0, 0.0, 1.0]] * 20)
    report = drift.compare(ref, few, np.full(20, 0.5))
    assert report["enough_rows"] is False and report["drifted_features"] == []
    assert report["features"]["x"]["psi"] > 1  # measured all the same
    empty = drift.compare(ref, np.zeros((0, 3)), np.zeros(0))
    assert empty["rows"] == 0 and all(f["psi"] == 0.0 and f["p_value"] == 1.0 for f in empty["features"].values())
    unseen = np.array([[10.0, 7.0, 1.0]] * 200)  # a category code the reference never saw
    assert drift.compare(ref, unseen, np.full(200, 0.5))["features"]["colour"]["psi"] > 1


def test_a_rare_category_that_becomes_common_drifts_and_sparse_windows_do_not():
    r = np.random.default_rng(9)
    categories = [f"c{i}" for i in range(1300)]
    train = r.integers(0, 1300, 2000).astype(float)[:, None]
    column = [{"name": "street", "kind": "categorical", "categories": categories}]
    ref = drift.reference(train, column, np.zeros((2000, 1)), "regression", [])
    rare = int(np.argmin(np.bincount(train[:, 0].astype(int), minlength=1300)))  # seen once or never
    for seed in range(5):  # 600 rows over 1,300 categories: most seen never or once, and no drift
        same = np.random.default_rng(seed).integers(0, 1300, 600).astype(float)[:, None]
        assert drift.compare(ref, same, np.zeros(600))["drifted_features"] == []
    moved = same.copy()
    moved[:400, 0] = rare
    street = drift.compare(ref, moved, np.zeros(600))["features"]["street"]
    assert street["drifted"] and f"c{rare}" in street["bins"]["labels"]
    assert len(street["bins"]["labels"]) == drift.TOP_CATEGORIES + 2  # the top 20, the rare one, the rest


def test_categories_expected_fewer_than_five_times_are_pooled_for_chi_squared():
    pooled = drift._pool_small(np.array([100.0, 50, 2, 1, 0]), np.array([90.0, 60, 1, 3, 1]))
    assert [p.tolist() for p in pooled] == [[100, 50, 3], [90, 60, 5]]
    kept = drift._pool_small(np.array([100.0, 50, 2]), np.array([90.0, 60, 1]))  # one small: nothing to pool
    assert [p.tolist() for p in kept] == [[100, 50, 2], [90, 60, 1]]


def test_the_columns_and_the_answers_are_profiled_by_kind():
    features = [{"name": "n", "type": "numeric"}, {"name": "b", "type": "boolean"},
                {"name": "c", "type": "categorical", "categories": ["x", "y"]},
                {"name": "d", "type": "datetime", "parts": ["year", "hour"]}]
    assert drift.columns(features) == [
        {"name": "n", "kind": "numeric"}, {"name": "b", "kind": "numeric"},
        {"name": "c", "kind": "categorical", "categories": ["x", "y"]},
        {"name": "d.year", "kind": "numeric"}, {"name": "d.hour", "kind": "numeric"}]
    assert drift.prediction_column("multiclass", ["a", "b", "c"]) == {
        "name": "prediction", "kind": "categorical", "categories": ["a", "b", "c"]}
    assert drift.prediction_column("binary", ["no", "yes"]) == {"name": "probability of yes", "kind": "numeric"}
    assert drift.prediction_column("regression", []) == {"name": "prediction", "kind": "numeric"}
    answers = np.array([[0.2, 0.5, 0.3], [0.6, 0.3, 0.1]])
    assert drift.prediction_values(answers, "multiclass").tolist() == [1.0, 0.0]
    assert drift.prediction_values(answers[:, :2], "binary").tolist() == [0.5, 0.3]
    assert drift.prediction_values(answers[:, :1], "regression").tolist() == [0.2, 0.6]
    for task in ("multiclass", "binary", "regression"):
        assert drift.prediction_values(answers, task).dtype == np.float64


def test_a_profile_of_a_column_with_few_or_no_values():
    r = np.random.default_rng(0)
    values = np.array([1.0, 2.0, 3.0, np.nan])
    out = drift._profile(values, {"name": "v", "kind": "numeric"}, r)
    assert out["missing_rate"] == 0.25 and out["sample"] == [1.0, 2.0, 3.0]
    assert out["shares"] == pytest.approx([c / 3 for c in drift._bin_counts(np.array([1.0, 2, 3]), out["edges"])])
    assert sum(out["shares"]) == pytest.approx(1.0)
    single = drift._profile(np.array([5.0]), {"name": "v", "kind": "numeric"}, r)
    assert single["edges"] == [5.0] and single["shares"] == [1.0, 0.0] and single["sample"] == [5.0]
    empty = drift._profile(np.array([np.nan, np.nan]), {"name": "v", "kind": "numeric"}, r)
    assert (empty["edges"], empty["shares"], empty["sample"], empty["missing_rate"]) == ([], [0.0], [], 1.0)
    none = drift._profile(np.array([]), {"name": "v", "kind": "numeric"}, r)
    assert none["missing_rate"] == 0.0
    exact = drift._profile(np.arange(drift.SAMPLE, dtype=float), {"name": "v", "kind": "numeric"}, r)
    assert exact["sample"] == list(np.arange(drift.SAMPLE, dtype=float))  # all kept, none drawn twice
    many = drift._profile(np.arange(2000, dtype=float), {"name": "v", "kind": "numeric"}, r)
    assert len(set(many["sample"])) == drift.SAMPLE  # drawn without replacement


def test_bins_are_closed_on_the_right_and_empty_samples_are_neutral():
    assert drift._bin_counts(np.array([1.0, 2.0, 2.5, 3.0]), [1.0, 2.0]).tolist() == [1, 1, 2]
    assert drift.ks_2samp([], [1.0, 2.0]) == (0.0, 1.0) and drift.ks_2samp([1.0], []) == (0.0, 1.0)
    assert drift.ks_2samp([1.0], [1.0]) == (0.0, 1.0)
    assert drift.ks_2samp([0.0], [1.0])[0] == 1.0
    assert drift._kolmogorov_sf(0.0) == 1.0 and drift._kolmogorov_sf(-1.0) == 1.0
    assert drift._kolmogorov_sf(0.01) == pytest.approx(1.0)
    assert drift._chi2_sf(0.0, 3) == 1.0
    assert drift.chi2_contingency([5, 0], [3, 0]) == (0.0, 1.0)  # one category left: nothing to test
    assert drift.chi2_contingency([0, 0], [3, 4]) == (0.0, 1.0)  # an empty sample
    assert drift.chi2_contingency([1, 1], [1, 1])[1] == pytest.approx(1.0)
    assert drift.psi([0.0, 0.0], [0.0, 0.0]) == 0.0
    assert drift.psi([1e-200, 0.0], [0.0, 1e-200]) == pytest.approx((1 - 1e-4) * np.log(1 / 1e-4) * 2)


def test_the_report_says_what_was_compared_and_with_which_limits():
    _, ref, answers = _reference()
    window, _, _ = _reference(300, seed=4)
    report = drift.compare(ref, window, drift.prediction_values(answers[:300], "binary"),
                           {"psi": 0.5, "p_value": 0.001})
    assert report["thresholds"] == {"psi": 0.5, "p_value": 0.001, "min_rows": 100}
    assert (report["rows"], report["reference_rows"], report["enough_rows"]) == (300, 4000, True)
    x, colour = report["features"]["x"], report["features"]["colour"]
    assert (x["kind"], x["test"], colour["kind"], colour["test"]) == (
        "numeric", "kolmogorov-smirnov", "categorical", "chi-squared")
    assert x["bins"]["labels"][0].startswith("<= ") and x["bins"]["labels"][-1].startswith("> ")
    assert len(x["bins"]["labels"]) == len(x["bins"]["reference"]) == len(x["bins"]["current"]) == 10
    assert colour["bins"]["labels"] == ["red", "green", "blue", "(unseen)"]
    assert sum(colour["bins"]["current"]) == pytest.approx(1.0)
    assert report["features"]["z"]["missing_rate"]["reference"] == pytest.approx(0.05, abs=0.01)
    assert report["prediction"]["kind"] == "numeric" and report["prediction_drifted"] is False
    assert drift.compare(ref, window, np.zeros(300), {"min_rows": 301})["enough_rows"] is False
    assert drift.DEFAULT_THRESHOLDS == {"psi": 0.2, "p_value": 0.01, "min_rows": 100}


# --------------------------------------------------------------------------- edges of the comparison
def _numeric(edges, shares, missing_rate, sample):
    return {"name": "v", "kind": "numeric", "missing_rate": missing_rate, "edges": edges, "shares": shares,
            "sample": sample}


def _categorical(counts, missing_rate=0.0):
    return {"name": "c", "kind": "categorical", "categories": [f"c{i}" for i in range(len(counts))],
            "counts": list(counts), "missing_rate": missing_rate}


def _compare(column, values, thresholds=None):
    """The comparison of one column's window with its reference (the answers: an empty column)."""
    ref = {"rows": 1000, "columns": [column], "prediction": _numeric([], [0.0], 1.0, [])}
    values = np.asarray(values, np.float64)
    report = drift.compare(ref, values[:, None], np.full(len(values), np.nan), thresholds)
    return report["features"][column["name"]]


def test_psi_counts_the_missing_values_of_both_sides_as_a_bin_of_their_own():
    column = _numeric([0.0], [0.5, 0.5], 0.5, [-1.0, 1.0])  # half missing in training, the rest about 0
    same = _compare(column, [-1.0, 1.0, np.nan, np.nan])
    assert same["psi"] == 0.0  # the same shares, missing included
    moved = _compare(column, [-1.0, 1.0, 1.0, np.nan])
    expected, actual = np.array([0.25, 0.25, 0.5]), np.array([0.25, 0.5, 0.25])
    kl = special.rel_entr(actual, expected).sum() + special.rel_entr(expected, actual).sum()
    assert moved["psi"] == pytest.approx(kl, rel=1e-12)
    assert moved["missing_rate"] == {"reference": 0.5, "current": 0.25}
    assert moved["bins"] == {"labels": ["<= 0", "> 0"], "reference": [0.5, 0.5], "current": [1 / 3, 2 / 3]}
    assert moved["test"] == "kolmogorov-smirnov"
    ks = stats.ks_2samp([-1.0, 1.0], [-1.0, 1.0, 1.0])
    assert moved["statistic"] == pytest.approx(ks.statistic, abs=1e-12)
    one = _compare(column, [1.0])  # a window of one row: its shares are still shares
    assert one["bins"]["current"] == [0.0, 1.0] and one["missing_rate"]["current"] == 0.0


def test_a_column_never_seen_in_training_has_one_bin_and_an_empty_window_no_missing_rate():
    rng = np.random.default_rng(0)
    profiled = drift._profile(np.array([np.nan, np.nan]), {"name": "v", "kind": "numeric"}, rng)
    result = _compare(profiled, [1.0, np.nan])
    assert result["bins"] == {"labels": ["all"], "reference": [0.0], "current": [1.0]}
    assert (result["statistic"], result["p_value"]) == (0.0, 1.0)  # nothing to test the values against
    # all missing in training (the empty bin at the floor), half now
    expected = (0.5 - 1e-4) * np.log(0.5 / 1e-4) + (0.5 - 1) * np.log(0.5)
    assert result["psi"] == pytest.approx(expected, rel=1e-12)
    empty = _compare(profiled, [])
    assert empty["missing_rate"] == {"reference": 1.0, "current": 0.0} and empty["psi"] == 0.0


def test_categorical_bins_are_the_reference_shares_and_unseen_categories_start_at_zero():
    result = _compare(_categorical([30, 10]), [0.0] * 10 + [1.0] * 20 + [7.0] * 10)  # 7: a code never seen
    assert result["bins"] == {"labels": ["c0", "c1", "(unseen)"], "reference": [0.75, 0.25, 0.0],
                              "current": [0.25, 0.5, 0.25]}
    expected = stats.chi2_contingency([[30, 10, 0], [10, 20, 10]])  # each cell expected 5 times or more
    assert result["test"] == "chi-squared"
    assert result["statistic"] == pytest.approx(expected.statistic, rel=1e-12)
    assert result["p_value"] == pytest.approx(expected.pvalue, rel=1e-9, abs=0)
    tiny = _compare(_categorical([1, 0]), [0.0])  # one row on each side: shares of one row
    assert tiny["bins"]["reference"] == [1.0, 0.0, 0.0] and tiny["bins"]["current"] == [1.0, 0.0, 0.0]


def test_drift_needs_psi_strictly_over_and_p_strictly_under_their_thresholds():
    _, ref, answers = _reference()
    shifted, _, _ = _reference(300, seed=5)
    shifted[:, 0] += 1.5
    x = drift.compare(ref, shifted, answers[:300, 1])["features"]["x"]
    assert x["drifted"] and x["psi"] > 0 and 0 < x["p_value"] < 1
    at = {"psi": x["psi"], "p_value": 1.0}  # PSI exactly at its threshold
    assert drift.compare(ref, shifted, answers[:300, 1], at)["features"]["x"]["drifted"] is False
    at = {"psi": 0.0, "p_value": x["p_value"]}  # the p-value exactly at its threshold
    assert drift.compare(ref, shifted, answers[:300, 1], at)["features"]["x"]["drifted"] is False
    over = {"psi": 0.0, "p_value": 1.0}
    assert drift.compare(ref, shifted, answers[:300, 1], over)["features"]["x"]["drifted"] is True
    # exactly min_rows rows are enough
    report = drift.compare(ref, shifted, answers[:300, 1], {"min_rows": 300})
    assert report["enough_rows"] is True and report["drifted_features"] == ["x"]


def test_up_to_twenty_categories_are_compared_each_and_more_on_the_most_frequent_in_training_order():
    twenty = _compare(_categorical([5] * 20), np.arange(20.0))
    assert twenty["bins"]["labels"] == [f"c{i}" for i in range(20)] + ["(unseen)"]
    # forty categories, the odd ones twice as frequent: those twenty (ties in the schema's order), the rest
    counts = [10, 20] * 20
    window = np.repeat(np.arange(40.0), counts)  # the training distribution: no category over 5 % of it
    result = _compare(_categorical(counts), window)
    assert result["bins"]["labels"] == [f"c{i}" for i in range(1, 40, 2)] + ["(other)"]
    assert result["bins"]["reference"] == pytest.approx([20 / 600] * 20 + [200 / 600])
    assert result["bins"]["current"] == pytest.approx([20 / 600] * 20 + [200 / 600])
    assert result["psi"] == pytest.approx(0.0, abs=1e-12)
    # a category of the rest that is exactly 5 % of the window is compared on its own
    heavy = np.concatenate([np.full(5, 0.0), np.tile(np.arange(1.0, 40, 2), 5)[:95]])
    labels = _compare(_categorical(counts), heavy)["bins"]["labels"]
    assert labels == [f"c{i}" for i in range(1, 40, 2)] + ["c0", "(other)"]


def test_pooling_takes_two_or_more_categories_expected_under_five_times():
    def pooled(a, b):
        return [p.tolist() for p in drift._pool_small(np.array(a, float), np.array(b, float))]

    assert pooled([100, 50, 2, 1], [90, 60, 1, 3]) == [[100, 50, 3], [90, 60, 4]]  # two: pooled
    assert pooled([100, 5, 5], [100, 5, 5]) == [[100, 5, 5], [100, 5, 5]]  # expected exactly 5 times: kept
    assert pooled([100, 50, 6, 6], [100, 50, 5, 5]) == [[100, 50, 6, 6], [100, 50, 5, 5]]  # 5.47 times: kept
    assert pooled([1, 0, 0], [0, 0, 0]) == [[1], [0]]  # one row in all: every category expected under five
    assert pooled([0, 0], [0, 0]) == [[0, 0], [0, 0]]


def test_a_category_seen_once_stays_in_the_chi_squared_table():
    a, b = [30, 20, 1], [25, 30, 0]
    statistic, p = drift.chi2_contingency(np.array(a), np.array(b))
    expected = stats.chi2_contingency(np.array([a, b]))
    assert statistic == pytest.approx(expected.statistic, rel=1e-12)
    assert p == pytest.approx(expected.pvalue, rel=1e-9, abs=0)


@pytest.mark.parametrize("t", [1.75, 1.8, 1.95, 1.99])
def test_the_kolmogorov_tail_keeps_its_digits_from_one_on(t):
    # the series, within an ulp or two of scipy; the dual form loses a hundred times more here (cancellation)
    assert drift._kolmogorov_sf(t) == pytest.approx(stats.kstwobign.sf(t), rel=5e-15, abs=0)


def test_the_reference_sample_is_drawn_with_its_seed_and_a_small_column_is_kept_whole():
    r = np.random.default_rng(11)
    matrix = r.normal(0, 1, (600, 2))
    matrix[:100, 0] = np.nan  # exactly SAMPLE values left: kept, and no draw spent on them
    columns = [{"name": "a", "kind": "numeric"}, {"name": "b", "kind": "numeric"}]
    answers = r.normal(0, 1, (600, 1))
    ref = drift.reference(matrix, columns, answers, "regression", [])
    a, b = ref["columns"]
    assert a["sample"] == sorted(matrix[100:, 0].tolist())
    drawn = np.random.default_rng(0).choice(matrix[:, 1], drift.SAMPLE, replace=False)
    assert b["sample"] == sorted(drawn.tolist())
    assert ref == drift.reference(matrix, columns, answers, "regression", [], seed=0)  # reproducible
    other = drift.reference(matrix, columns, answers, "regression", [], seed=1)
    assert other["columns"][1]["sample"] != b["sample"]
