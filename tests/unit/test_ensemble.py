"""The served form of a model gives the native library's probabilities."""

import numpy as np
import pytest
from serving import bundle

from tests.unit.conftest import trained
from training import data as D
from training.export import ExportError, check_exactness


@pytest.mark.parametrize("dataset", ["breast_cancer", "digits", "penguins"])
@pytest.mark.parametrize("family", ["catboost", "lightgbm"])
def test_served_probabilities_equal_native_ones(dataset, family):
    model = trained(dataset, family)
    served = bundle.served_predictions(model.arrays, model.test_matrix())
    assert served.shape == model.native.shape
    assert np.max(np.abs(served - model.native)) <= 1e-9
    assert np.allclose(served.sum(axis=1), 1.0)


@pytest.mark.parametrize("family", ["catboost", "lightgbm"])
def test_missing_values_and_unseen_categories_follow_the_native_rules(family):
    model = trained("penguins", family)
    X = model.X_test.copy()
    X.iloc[::3, X.columns.get_loc("bill_length_mm")] = np.nan
    X.iloc[::4, X.columns.get_loc("island")] = None
    X.iloc[::5, X.columns.get_loc("sex")] = None
    native = model.fitted.predict(X, model.schema)
    served = bundle.served_predictions(model.arrays, D.to_matrix(X, model.schema))
    assert np.max(np.abs(served - native)) <= 1e-9


def test_check_exactness_refuses_a_model_that_does_not_match():
    model = trained("breast_cancer", "lightgbm")
    wrong = dict(model.arrays, value=model.arrays["value"] * 1.001)
    with pytest.raises(ExportError, match="not publishing"):
        check_exactness(wrong, model.test_matrix(), model.native)
