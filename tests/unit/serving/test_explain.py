"""Explanations: the served SHAP contributions are the native libraries' own, on every test model.

The cases (tests/models.py) carry CatBoost's ``get_feature_importance(type="ShapValues")`` and
LightGBM's ``predict(pred_contrib=True)`` on held-out rows and on rows made to sit on the
evaluators' edges (thresholds, float32 borders, NaN everywhere, zeros, missing categories); the
models cover binary, multiclass and regression, one-hot and CTR categoricals with combinations,
dates, zero-as-missing and NaN-as-max.
"""

import numpy as np
import pytest
from serving import bundle, ensemble, explain

from tests.models import CASES, case

EXACT = 1e-9


def _difference(served: np.ndarray, native: np.ndarray, task: str) -> float:
    difference = np.abs(served - native)
    if task == "regression":  # values in the target's units: relative to their size
        difference = difference / np.maximum(1.0, np.abs(native))
    return float(difference.max())


@pytest.mark.parametrize("name", sorted(CASES))
def test_contributions_equal_the_native_shap_values(name):
    model = case(name)
    served = bundle.served_explanations(model.arrays, model.matrix)
    assert served.shape == model.native_shap.shape
    assert _difference(served, model.native_shap, model.task) <= EXACT
    probes = bundle.served_explanations(model.arrays, model.probes)
    assert _difference(probes, model.native_probes_shap, model.task) <= EXACT


@pytest.mark.parametrize("name", sorted(CASES))
def test_contributions_and_the_expected_value_add_up_to_the_raw_score(name):
    model = case(name)
    evaluator = ensemble.from_arrays(model.arrays)
    rows = np.vstack([model.matrix, model.probes])
    shap = explain.explainer(evaluator, model.arrays).contributions(rows)
    assert _difference(shap.sum(axis=2), evaluator.raw(rows), model.task) <= EXACT
    # the expected value is one number per output, whatever the row
    assert np.ptp(shap[:, :, -1], axis=0).max() == 0.0


def test_the_cases_give_every_kind_of_split_some_credit():
    # the comparison above would be weak if the native values were mostly zero
    for name in ("shops-catboost-combinations", "rides-catboost", "penguins-lightgbm", "digits-catboost"):
        model = case(name)
        credited = (np.abs(model.native_shap[:, :, :-1]) > 1e-6).any(axis=(0, 1))
        assert credited.sum() >= min(3, credited.size), name


def test_a_ctr_on_a_combination_shares_its_value_among_its_categoricals():
    model = case("shops-catboost-pairs")
    classes, unpack = explain._feature_classes(model.arrays, int(model.arrays["n_features"]))
    shared = unpack[:-1][(unpack[:-1] > 0).sum(axis=1) > 1]
    assert len(shared) >= 1  # a combination of two categoricals exists in this model
    assert np.allclose(shared.sum(axis=1), 1.0)
    assert np.allclose(shared[shared > 0], 0.5)


def test_padding_levels_are_not_counted_as_depth():
    model = case("bc-catboost")
    arrays = dict(model.arrays)
    depths = explain._tree_depths(arrays)
    assert (depths == arrays["features"].shape[1]).all()
    padded = {k: v.copy() for k, v in arrays.items()}
    padded["borders"][0, -1] = np.inf
    padded["nan_goes_right"][0, -1] = False
    padded["is_equal"][0, -1] = False
    assert explain._tree_depths(padded)[0] == arrays["features"].shape[1] - 1
    assert (explain._tree_depths(padded)[1:] == depths[1:]).all()


@pytest.mark.parametrize("name", ["bc-lightgbm-zero", "penguins-lightgbm", "diabetes-lightgbm"])
def test_long_paths_use_the_libraries_own_recurrence_with_the_same_result(name, monkeypatch):
    # leaves with more distinct features than TABLE_MAX_U on their path (deep LightGBM trees) take
    # TreeSHAP's EXTEND/UNWIND recurrence instead of a 2**u table: forced here for every leaf
    model = case(name)
    monkeypatch.setattr(explain, "TABLE_MAX_U", 0)
    shap = explain.explainer(ensemble.from_arrays(model.arrays), model.arrays)
    assert all(group.r_base is None for group in shap.groups)
    rows = np.vstack([model.matrix, model.probes])
    native = np.concatenate([model.native_shap, model.native_probes_shap])
    assert _difference(shap.contributions(rows), native, model.task) <= EXACT
