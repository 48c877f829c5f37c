"""The tables users bring: regression, ID-like and high-cardinality columns, dates, free text, imbalance.

Small generated tables go through the whole job (tune, refit, export and check,
publish to moto's S3, gate); what is served is then compared with the native model.
"""

import numpy as np
import pandas as pd
import pytest
from serving.model import format as model_format
from serving.model.predictor import Predictor
from serving.store import bundles

from tests.native import native_predictions
from tests.unit.conftest import BUCKET
from training import config as C
from training import data as D
from training import job


def write(tmp_path, frame, name="table.csv"):
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return str(path)


def run(tmp_path, csv, target, **extra):
    overrides = [f"dataset={csv}", f"target={target}", "tuning.n_trials=2", "tuning.cv_folds=3",
                 "tuning.max_rounds=60", f"mlflow.tracking_uri=sqlite:///{tmp_path}/mlflow.db", f"bucket={BUCKET}",
                 *[f"{k}={v}" for k, v in extra.items()]]
    return job.run(C.load(None, overrides), publish=True, show_progress=False)


def houses(n=400, seed=3):
    """A regression table: an ID column, a row counter, a categorical of 1200 values, a date, missing values."""
    rng = np.random.default_rng(seed)
    street = rng.integers(0, 1200, n)
    frame = pd.DataFrame({
        "listing_id": [f"L-{i:05d}-{rng.integers(1e6)}" for i in range(n)],
        "row": np.arange(1, n + 1),
        "street": [f"street {k}" for k in street],
        "rooms": rng.integers(1, 7, n).astype(float),
        "area": np.where(rng.random(n) < 0.1, np.nan, rng.normal(90, 25, n)),
        "sold": (pd.to_datetime("2023-01-01") + pd.to_timedelta(rng.integers(0, 700, n), unit="D")).astype(str),
    })
    frame["price"] = (50 * frame["rooms"] + np.nan_to_num(frame["area"], nan=90) * 2 + (street % 4) * 20
                      + rng.normal(0, 10, n)).round(2)
    return frame


def served_against_native(s3, name, X):
    champion = bundles.load_champion(s3, BUCKET, name)
    predictor = Predictor(champion, unknown_category="reject")
    served = predictor.predict_matrix(D.to_matrix(X, champion.feature_schema))
    native = native_predictions(champion, s3, BUCKET, X)
    return champion, served, native


def test_a_regression_table_with_ids_dates_and_a_wide_categorical_trains_and_serves_exactly(tmp_path, s3):
    frame = houses()
    summary = run(tmp_path, write(tmp_path, frame), "price", model_name="houses")
    assert summary["task"] == "regression" and summary["metric"] == "rmse"
    assert summary["promoted"] is True
    assert set(summary["test_metrics"]) == {"rmse", "mae", "r2", "rows"}
    assert summary["test_metrics"]["r2"] > 0.5
    champion, served, native = served_against_native(s3, "houses", frame.drop(columns=["price"]).iloc[:80])
    assert champion.task == "regression" and champion.classes == []
    assert champion.manifest["target"] == "price"
    assert np.max(np.abs(served - native) / np.maximum(1, np.abs(native))) <= 1e-9
    exactness = champion.manifest["exactness"]
    assert exactness["max_abs_difference"] <= 1e-9 and exactness["limit"] == 1e-9
    assert exactness["measured_as"] == "|served - native| / max(1, |native|)"
    shap = exactness["explanations"]  # checked at publish against CatBoost's/LightGBM's own SHAP values
    assert shap["max_abs_difference"] <= 1e-9 and shap["limit"] == 1e-9
    assert shap["rows"] == min(job.EXPLAINED_ROWS, exactness["rows"]) > 0
    assert shap["measured_as"].endswith("relative to max(1, |native|)")
    assert {d["name"] for d in champion.manifest["dropped_columns"]} == {"listing_id", "row"}
    schema = {f["name"]: f for f in champion.feature_schema}
    assert schema["sold"]["type"] == "datetime" and schema["sold"]["parts"][:3] == ["year", "month", "day"]
    assert len(schema["street"]["categories"]) > 300
    answer = Predictor(champion, unknown_category="reject").predict(
        {"instances": [{"street": "street 5", "rooms": 3, "area": None, "sold": "2024-02-29"}]}, max_rows=1)
    assert list(answer["predictions"][0]) == ["prediction"]


def test_a_categorical_of_more_than_1000_values_is_served_exactly_by_both_families(tmp_path, s3):
    rng = np.random.default_rng(5)
    n = 3000
    code = rng.integers(0, 1300, n)
    frame = pd.DataFrame({"merchant": [f"m{k}" for k in code], "amount": rng.gamma(2, 20, n)})
    frame["fraud"] = np.where((code % 9 == 0) | (frame["amount"] > 120), "yes", "no")
    csv = write(tmp_path, frame)
    for family in ("catboost", "lightgbm"):
        name = f"merchants-{family}"
        run(tmp_path, csv, "fraud", model_name=name, **{"tuning.families": f"[{family}]"})
        champion, served, native = served_against_native(s3, name, frame.drop(columns=["fraud"]).iloc[:300])
        assert len(champion.feature_schema[0]["categories"]) > 1000
        assert np.max(np.abs(served - native)) <= 1e-9
    catboost = bundles.load_champion(s3, BUCKET, "merchants-catboost")
    # served through CatBoost's target statistics (a bagged model: in each of its fold models)
    layouts = (model_format.members(catboost.arrays) if str(catboost.arrays["layout"]) == "weighted"
               else [catboost.arrays])
    assert all(member["ctr_projection"].size > 0 for member in layouts)


@pytest.mark.parametrize(("values", "task"), [
    (np.arange(100) * 1.5, "regression"),
    (np.arange(100) % 3, "multiclass"),
    (np.arange(100) % 2, "binary"),
    (np.array(["a", "b"] * 50), "binary"),
    (np.arange(100) % 25, "regression"),
    (np.array([True, False] * 50), "binary"),
])
def test_the_task_is_read_off_the_target(values, task):
    assert D.detect_task(pd.Series(values)) == task


def test_the_task_can_be_set_and_is_checked_against_the_target(tmp_path):
    frame = pd.DataFrame({"x": range(60), "y": [1, 2, 3] * 20})
    csv = write(tmp_path, frame)
    assert D.load(csv, "y").task == "multiclass"
    assert D.load(csv, "y", task="regression").task == "regression"
    with pytest.raises(D.DataError, match="task 'binary', but the target has 3 classes"):
        D.load(csv, "y", task="binary")
    text = write(tmp_path, frame.assign(y=["a", "b", "c"] * 20), "text.csv")
    with pytest.raises(D.DataError, match="a regression target must be numeric"):
        D.load(text, "y", task="regression")


def test_id_like_columns_are_left_out_with_a_warning_that_names_them(caplog):
    n = 50
    X = pd.DataFrame({"passenger": [f"Name {i}, Mr." for i in range(n)], "row": range(100, 100 + n),
                      "age": np.linspace(1, 80, n), "fare_code": np.arange(n) * 3, "city": ["a", "b"] * 25})
    data = D.Dataset("t", X, pd.Series(["x", "y"] * 25), "test")
    screened = D.screen(data)
    assert list(screened.X.columns) == ["age", "fare_code", "city"]  # unique floats and spaced ints are features
    assert screened.dropped == [{"name": "passenger", "reason": "a different value in every row"},
                                {"name": "row", "reason": "a row counter: consecutive integers, one per row"}]
    assert "left out 2 ID-like columns" in caplog.text and "passenger" in caplog.text


def test_columns_can_be_dropped_and_an_id_column_named(caplog):
    X = pd.DataFrame({"id": ["a", "b", "a"] * 10, "keep": [3, 1, 4, 1, 5, 9] * 5, "noise": [1.0, 2.0, 3.0] * 10})
    data = D.Dataset("t", X, pd.Series(["x", "y", "x"] * 10), "test")
    screened = D.screen(data, drop_columns=["noise"], id_column="id")
    assert list(screened.X.columns) == ["keep"]
    assert [d["name"] for d in screened.dropped] == ["noise", "id"]
    with pytest.raises(D.DataError, match="drop_columns/id_column name columns the data does not have: ghost"):
        D.screen(data, drop_columns=["ghost"])


def test_free_text_is_refused_before_training_naming_the_column():
    rng = np.random.default_rng(0)
    words = ["late", "delivery", "broken", "box", "great", "service", "would", "buy", "again", "never"]
    reviews = [" ".join(rng.choice(words, 6)) for _ in range(80)]
    X = pd.DataFrame({"review": reviews, "stars": rng.integers(1, 6, 80)})
    X.loc[3, "review"] = X.loc[2, "review"]  # not unique per row: text, not an ID
    with pytest.raises(D.DataError, match=r"column 'review' looks like free text .*\(--set drop_columns=\[review\]\)"):
        D.screen(D.Dataset("reviews", X, pd.Series(["a", "b"] * 40), "test"))


def test_iso_dates_and_timestamps_become_datetime_features():
    X = pd.DataFrame({"day": ["2024-01-31", "2024-02-29", None, "2024-03-01"] * 10,
                      "at": ["2024-01-31T10:15:00", "2024-02-29 23:59:59+02:00", "2024-03-01T00:00:00Z",
                             "2024-03-02T08:00:00"] * 10,
                      "code": ["2024", "x", "y", "z"] * 10})
    screened = D.screen(D.Dataset("t", X, pd.Series(["a", "b"] * 20), "test"))
    schema = {f["name"]: f for f in D.infer_schema(screened.X)}
    assert schema["day"]["type"] == "datetime" and schema["day"]["nullable"] is True
    assert schema["day"]["parts"] == ["year", "month", "day", "weekday", "dayofyear", "days_since_epoch"]
    assert schema["at"]["parts"][-3:] == ["hour", "minute", "second"]
    assert schema["code"]["type"] == "categorical"
    matrix = D.to_matrix(screened.X.iloc[:4], [schema["day"], schema["at"]])
    assert matrix[0, :5].tolist() == [2024, 1, 31, 2, 31]
    assert np.isnan(matrix[2, :6]).all()
    assert matrix[1, 6:].tolist()[:6] == [2024, 2, 29, 3, 60, matrix[1, 11]]
    assert matrix[1, 12:].tolist() == [21, 59, 59]  # read in UTC


def test_class_weighting_is_a_tuned_or_configured_option(tmp_path, s3):
    rng = np.random.default_rng(1)
    n = 300
    frame = pd.DataFrame({"x": rng.normal(size=n), "z": rng.normal(size=n)})
    frame["y"] = np.where(frame["x"] + rng.normal(0, 0.5, n) > 1.8, "rare", "common")
    csv = write(tmp_path, frame)
    tuned = run(tmp_path, csv, "y", model_name="imbalanced", **{"tuning.n_trials": 6})
    assert tuned["metric"] == "f1_macro"
    import mlflow

    trials = mlflow.search_runs(experiment_names=["tabular-serverless"], output_format="pandas")
    weights = {c for c in trials.columns if c.endswith("class_weight")}
    assert weights and {"none", "balanced"} & set(trials[sorted(weights)[0]].dropna())
    fixed = C.load(None, ["class_weight=balanced"])
    assert fixed["class_weight"] == "balanced"
    with pytest.raises(C.ConfigError, match="class_weight 'sometimes'"):
        C.load(None, ["class_weight=sometimes"])


def test_a_metric_that_does_not_fit_the_task_is_refused():
    config = C.load(None, ["tuning.metric=rmse"])
    with pytest.raises(D.DataError, match="tuning.metric 'rmse' does not fit a binary task: use one of f1_macro"):
        job.metrics_for(config, "binary")
    assert job.metrics_for(C.load(None, []), "regression") == ("rmse", "rmse")
    assert job.metrics_for(C.load(None, ["promotion.metric=r2"]), "regression") == ("rmse", "r2")
    assert job.metrics_for(C.load(None, []), "multiclass") == ("f1_macro", "f1_macro")
