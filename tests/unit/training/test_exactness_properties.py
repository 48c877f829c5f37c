"""Property: for any small table, the served form answers exactly as the native model does.

Hypothesis draws the table (rows, numeric and categorical columns, missing
values, constant and duplicated columns, two or three classes) and the model
(family, depth or leaves, rounds, LightGBM's zero-as-missing); the project's own
training code fits and exports it; the served probabilities must equal the
native library's to 1e-12 on the training rows, on unseen rows, and on rows
placed exactly on the model's split points.
"""

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from serving import bundle

from training import data as D
from training import families

EXACT = 1e-12


@st.composite
def tables(draw):
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    rows = draw(st.integers(60, 160))
    classes = draw(st.sampled_from([2, 3]))
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
    if draw(st.booleans()):
        columns["constant"] = np.full(rows, 3.0)
    if draw(st.booleans()):
        columns["copy"] = columns["x0"].copy()
    X = pd.DataFrame(columns)
    noisy = signal + rng.normal(size=rows)
    cuts = np.quantile(noisy, np.linspace(0, 1, classes + 1)[1:-1])
    y = pd.Series([f"class{k}" for k in np.searchsorted(cuts, noisy)])
    return X, y, rng


@st.composite
def models(draw):
    family = draw(st.sampled_from(["catboost", "lightgbm"]))
    if family == "catboost":
        params = {"depth": draw(st.integers(1, 6)), "learning_rate": 0.3}
    else:
        params = {"num_leaves": draw(st.integers(2, 31)), "max_depth": draw(st.integers(2, 8)),
                  "min_child_samples": draw(st.integers(2, 10)), "zero_as_missing": draw(st.booleans()),
                  "learning_rate": 0.3}
    return family, params, draw(st.integers(1, 30))


def on_split_points(arrays, matrix):
    """Rows copied from ``matrix`` with one feature set exactly on a threshold or border."""
    if str(arrays["layout"]) == "nodes":
        split = (arrays["left"] != np.arange(len(arrays["left"]))) & ~arrays["is_categorical"]
        points = zip(arrays["feature"][split], arrays["threshold"][split], strict=True)
    else:
        level = ~arrays["is_equal"] & np.isfinite(arrays["borders"])
        points = zip(arrays["features"][level], arrays["borders"][level].astype(np.float64), strict=True)
    rows = []
    for i, (feature, value) in enumerate(points):
        row = matrix[i % len(matrix)].copy()
        row[feature] = value
        rows.append(row)
    return np.array(rows) if rows else matrix[:0]


@settings(max_examples=100, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(table=tables(), model=models())
def test_the_served_form_equals_the_native_model_on_any_small_table(table, model):
    X, y, rng = table
    family, params, rounds = model
    schema = D.infer_schema(X)
    fitted = families.fit(family, params, X, y, schema, seed=0, threads=1, rounds=rounds)
    arrays = fitted.export(X, schema)
    unseen = X.sample(frac=1.0, random_state=1).reset_index(drop=True)
    for column in unseen.columns[: max(1, len(unseen.columns) // 2)]:  # shuffle some columns apart
        unseen[column] = unseen[column].sample(frac=1.0, random_state=2).to_numpy()
    for rows in (X, unseen):
        served = bundle.served_predictions(arrays, D.to_matrix(rows, schema))
        assert np.max(np.abs(served - fitted.predict(rows, schema))) <= EXACT
    edges = on_split_points(arrays, D.to_matrix(X, schema))
    if len(edges):
        from tests.models import frame

        native = fitted.predict(frame(edges, schema), schema)
        assert np.max(np.abs(bundle.served_predictions(arrays, edges) - native)) <= EXACT
