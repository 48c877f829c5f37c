"""Property: for any small table, the served form answers exactly as the native model does.

Hypothesis draws the table (rows, numeric and categorical columns, a categorical
of hundreds of values, a date, missing values, constant and duplicated columns;
two or three classes, or a numeric target) and the model (family, depth or
leaves, rounds, LightGBM's zero-as-missing, CatBoost's one-hot limit and the
size of its CTR combinations); the project's own training code fits and
exports it; the served answers must equal the native library's (probabilities
to 1e-12, regression values to 1e-12 of their size) on the training rows, on
unseen rows, and on rows placed exactly on the model's split points.
"""

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from serving.model.predictor import served_predictions

from training import data as D
from training import families

EXACT = 1e-12


@st.composite
def tables(draw):
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    rows = draw(st.integers(60, 160))
    classes = draw(st.sampled_from([2, 3, 0]))  # 0: a regression target
    numeric = draw(st.integers(1, 4))
    categorical = draw(st.integers(0, 2))
    missing = draw(st.sampled_from([0.0, 0.1, 0.4]))
    columns = {}
    signal = np.zeros(rows)
    for j in range(numeric):
        values = rng.normal(size=rows) * 10.0 ** rng.integers(-2, 3)
        if draw(st.booleans()):
            values = np.round(values)  # integer-like: many rows on the same value, and zeros
        signal += values / (np.std(values) + 1e-9)
        if missing:
            values[rng.random(rows) < missing] = np.nan
        columns[f"x{j}"] = values
    for j in range(categorical):
        levels = [f"c{k}" for k in range(draw(st.integers(2, 6)))]
        values = rng.choice(levels, size=rows).astype(object)
        signal += np.array([levels.index(v) for v in values])
        if missing:
            values[rng.random(rows) < missing] = None
        columns[f"k{j}"] = values
    if draw(st.booleans()):  # hundreds of values: CatBoost's target statistics
        wide = rng.integers(0, 300, rows)
        signal += wide % 3
        columns["wide"] = np.array([f"w{k}" for k in wide], dtype=object)
    if draw(st.booleans()):
        days = rng.integers(0, 400, rows)
        signal += (days % 7 < 2)
        columns["when"] = pd.to_datetime("2024-01-01") + pd.to_timedelta(days, unit="D")
    if draw(st.booleans()):
        columns["constant"] = np.full(rows, 3.0)
    if draw(st.booleans()):
        columns["copy"] = columns["x0"].copy()
    X = pd.DataFrame(columns)
    noisy = signal + rng.normal(size=rows)
    if not classes:
        return X, pd.Series(10 * noisy), "regression"
    cuts = np.quantile(noisy, np.linspace(0, 1, classes + 1)[1:-1])
    y = pd.Series([f"class{k}" for k in np.searchsorted(cuts, noisy)])
    return X, y, "binary" if classes == 2 else "multiclass"


@st.composite
def models(draw):
    family = draw(st.sampled_from(["catboost", "lightgbm"]))
    if family == "catboost":
        params = {"depth": draw(st.integers(1, 6)), "learning_rate": 0.3,
                  "one_hot_max_size": draw(st.sampled_from([2, 255])),
                  "max_ctr_complexity": draw(st.integers(1, 4))}
    else:
        params = {"num_leaves": draw(st.integers(2, 31)), "max_depth": draw(st.integers(2, 8)),
                  "min_child_samples": draw(st.integers(2, 10)), "zero_as_missing": draw(st.booleans()),
                  "learning_rate": 0.3}
    return family, params, draw(st.integers(1, 30))


def on_split_points(arrays, X, schema) -> pd.DataFrame:
    """Rows of X with one plain numeric feature set exactly on a threshold or border."""
    columns = D.model_columns(schema)
    numeric = {f["name"] for f in schema if f["type"] == "numeric"}
    if str(arrays["layout"]) == "nodes":
        split = (arrays["left"] != np.arange(len(arrays["left"]))) & ~arrays["is_categorical"]
        points = zip(arrays["feature"][split], arrays["threshold"][split], strict=True)
    else:
        level = ~arrays["is_equal"] & np.isfinite(arrays["borders"])
        points = zip(arrays["features"][level], arrays["borders"][level].astype(np.float64), strict=True)
    rows = []
    for i, (feature, value) in enumerate(points):
        if feature < len(columns) and columns[feature] in numeric:  # not a date's part, not a CTR
            row = X.iloc[[i % len(X)]].copy()
            row[columns[feature]] = value
            rows.append(row)
    return pd.concat(rows, ignore_index=True) if rows else X.iloc[:0]


@settings(max_examples=100, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(table=tables(), model=models())
def test_the_served_form_equals_the_native_model_on_any_small_table(table, model):
    X, y, task = table
    family, params, rounds = model
    assume(X.nunique().max() > 1)  # every column constant: nothing to train on (validation refuses it)
    schema = D.infer_schema(X)
    fitted = families.fit(family, params, X, y, schema, task=task, seed=0, threads=1, rounds=rounds)
    arrays = fitted.export(schema)
    unseen = X.sample(frac=1.0, random_state=1).reset_index(drop=True)
    for column in unseen.columns[: max(1, len(unseen.columns) // 2)]:  # shuffle some columns apart
        unseen[column] = unseen[column].sample(frac=1.0, random_state=2).to_numpy()
    for rows in (X, unseen, on_split_points(arrays, X, schema)):
        if rows.empty:  # a model of constant trees has no split point to set a row on
            continue
        served = served_predictions(arrays, D.to_matrix(rows, schema))
        native = fitted.predict(rows, schema)
        gap = np.abs(served - native)
        if task == "regression":
            gap = gap / np.maximum(1.0, np.abs(native))
        assert np.max(gap, initial=0.0) <= EXACT
