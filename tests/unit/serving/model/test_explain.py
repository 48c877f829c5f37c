"""Explanations: the served SHAP contributions are the native libraries' own, on every test model.

The cases (tests/models.py) carry CatBoost's ``get_feature_importance(type="ShapValues")`` and
LightGBM's ``predict(pred_contrib=True)`` on held-out rows and on rows made to sit on the
evaluators' edges (thresholds, float32 borders, NaN everywhere, zeros, missing categories); the
models cover binary, multiclass and regression, one-hot and CTR categoricals with combinations,
dates, zero-as-missing and NaN-as-max.
"""

import warnings

import numpy as np
import pytest
from serving.model import evaluator as evaluators
from serving.model import explain
from serving.model.predictor import served_explanations

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
    served = served_explanations(model.arrays, model.matrix)
    assert served.shape == model.native_shap.shape
    assert _difference(served, model.native_shap, model.task) <= EXACT
    probes = served_explanations(model.arrays, model.probes)
    assert _difference(probes, model.native_probes_shap, model.task) <= EXACT


@pytest.mark.parametrize("name", sorted(CASES))
def test_contributions_and_the_expected_value_add_up_to_the_raw_score(name):
    model = case(name)
    evaluator = evaluators.from_arrays(model.arrays)
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
    shap = explain.explainer(evaluators.from_arrays(model.arrays), model.arrays)
    assert all(group.r_base is None for group in shap.groups)
    rows = np.vstack([model.matrix, model.probes])
    native = np.concatenate([model.native_shap, model.native_probes_shap])
    assert _difference(shap.contributions(rows), native, model.task) <= EXACT


def _padded(arrays: dict, keep: dict[int, int]) -> dict:
    """A copy of CatBoost arrays where tree t keeps only its first keep[t] levels: the rest never fire."""
    out = {k: v.copy() for k, v in arrays.items()}
    for t, depth in keep.items():
        out["borders"][t, depth:] = np.inf
        out["is_equal"][t, depth:] = False
        out["nan_goes_right"][t, depth:] = False
    return out


def test_an_unknown_model_type_is_refused_by_name():
    with pytest.raises(TypeError, match="^no explanations for str$"):
        explain.explainer("not a model", {})


@pytest.mark.parametrize("w", [0.0, 1e-15, 5e-14, 1e-13, 1.0000000001e-13, 2e-13, 1e-12, 0.5, 1.0, 3.0,
                               -1e-15, -5e-14, -1e-13, -0.5, -1.0 + 1e-13, -1.0, -1.5, -2.0, -3.0])
def test_fuzzy_zero_is_catboosts_fuzzy_equals_of_one_plus_the_weight(w):
    # util/generic/ymath.h: FuzzyEquals(p1, p2) = |p1 - p2| <= 1e-13 * min(|p1|, |p2|), here (1 + w, 1 + 0.0)
    a, b = 1.0 + w, 1.0 + 0.0
    expected = abs(a - b) <= 1e-13 * min(abs(a), abs(b))
    with np.errstate(divide="ignore"):
        assert bool(explain._fuzzy_zero(np.array([w]))[0]) == expected


def test_tree_depths_drop_every_trailing_padding_level():
    arrays = case("bc-catboost").arrays
    D = arrays["features"].shape[1]
    padded = _padded(arrays, {t: t for t in range(D + 1)})
    depths = explain._tree_depths(padded)
    assert depths[: D + 1].tolist() == list(range(D + 1))
    assert (depths[D + 1 :] == D).all()


def test_feature_classes_of_a_model_without_ctrs_are_its_columns_and_a_spare():
    arrays = case("bc-catboost").arrays
    F = int(arrays["n_features"])
    class_of, unpack = explain._feature_classes(arrays, F)
    assert class_of.tolist() == list(range(F))
    assert np.array_equal(unpack, np.vstack([np.eye(F), np.zeros((1, F))]))


def _check_catboost(arrays: dict, model) -> explain.CatBoostShap:
    evaluator = evaluators.from_arrays(arrays)
    shap = explain.explainer(evaluator, arrays)
    rows = np.vstack([model.matrix, model.probes])
    out = shap.contributions(rows)
    assert out.shape == (rows.shape[0], evaluator.header.n_outputs, evaluator.n_features + 1)
    assert _difference(out.sum(axis=2), evaluator.raw(rows), model.task) <= EXACT
    return shap


def test_trees_made_shallow_by_padding_have_only_their_real_levels_on_the_path():
    # tree 0 has no level at all (a constant), tree 1 one level, tree 2 two...: the expected value takes
    # the constant, and a tree's slots hold its real levels' classes, last level first, then the spare
    model = case("bc-catboost")
    arrays = model.arrays
    T, D = arrays["features"].shape
    padded = _padded(arrays, {0: 0, 1: 1, 2: 2, 3: 3})
    # a padding level splitting on a column the real levels do not use is still no path element
    padded["features"][1, D - 1] = (set(range(int(arrays["n_features"]))) - {int(padded["features"][1, 0])}).pop()
    shap = _check_catboost(padded, model)
    assert shap.phi.shape == (T, 2**D, D, 1)
    spare = shap.unpack.shape[0] - 1
    assert not shap.unpack[spare].any()
    for t in range(T):
        depth = min(t, D)
        path: list[int] = []
        for level in range(depth - 1, -1, -1):
            if int(padded["features"][t, level]) not in path:
                path.append(int(padded["features"][t, level]))
        assert shap.slot_class[t].tolist() == path + [spare] * (D - len(path)), t
    assert not shap.phi[0].any()


def test_a_model_of_one_level_trees_is_explained_by_one_slot():
    # every tree uses one class, so no slot is spare: each row's classes still get their full width
    model = case("bc-catboost")
    arrays = model.arrays
    padded = _padded(arrays, {t: 1 for t in range(arrays["features"].shape[0])})
    shap = _check_catboost(padded, model)
    assert shap.slot_class.shape == (arrays["features"].shape[0], 1)
    assert (shap.slot_class[:, 0] == arrays["features"][:, 0]).all()


def test_catboost_contributions_follow_the_models_scale():
    model = case("bc-catboost")
    scaled = dict(model.arrays)
    scaled["scale"] = np.asarray(2.5)
    rows = np.vstack([model.matrix, model.probes])
    plain = explain.explainer(evaluators.from_arrays(model.arrays), model.arrays).contributions(rows)
    shap = _check_catboost(scaled, model).contributions(rows)
    assert np.abs(shap[:, :, :-1] - 2.5 * plain[:, :, :-1]).max() <= EXACT


@pytest.mark.parametrize("name", ["penguins-catboost", "digits-catboost"])
def test_a_multiclass_tree_shifted_in_every_class_changes_no_contribution(name):
    # CatBoost's AverageApproxByTree: each tree's class-averaged mean leaves the leaves before TreeSHAP, so
    # the same amount added to all its leaves in all classes (empty leaves included) only moves the
    # expected value
    model = case(name)
    shifted = dict(model.arrays)
    shifted["leaf_values"] = model.arrays["leaf_values"] + 1000.0
    rows = np.vstack([model.matrix, model.probes])
    native = np.concatenate([model.native_shap, model.native_probes_shap])
    shap = _check_catboost(shifted, model).contributions(rows)
    assert np.abs(shap[:, :, :-1] - native[:, :, :-1]).max() <= EXACT


def test_empty_catboost_branches_raise_no_numpy_warnings():
    model = case("bc-catboost")
    assert (model.arrays["leaf_weights"] == 0).any()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        shap = explain.explainer(evaluators.from_arrays(model.arrays), model.arrays)
        shap.contributions(model.matrix)


def test_a_one_leaf_lightgbm_tree_adds_its_value_to_the_expected_value():
    model = case("bc-lightgbm")
    arrays = {k: v.copy() for k, v in model.arrays.items()}
    for t in (5, 20):  # trees after the first: their constant adds to what came before, and more trees follow
        root = int(arrays["roots"][t])
        arrays["left"][root] = arrays["right"][root] = root
        arrays["value"][root] = 0.25 * t
    evaluator = evaluators.from_arrays(arrays)
    rows = np.vstack([model.matrix, model.probes])
    shap = explain.explainer(evaluator, arrays).contributions(rows)
    assert _difference(shap.sum(axis=2), evaluator.raw(rows), model.task) <= EXACT
    plain = explain.explainer(evaluators.from_arrays(model.arrays), model.arrays).contributions(rows)
    assert np.abs(shap[:, :, :-1] - plain[:, :, :-1]).max() > 1e-3  # the two trees' credit is gone


@pytest.mark.parametrize("limit", [0, 2, 3])
def test_paths_longer_than_the_table_limit_and_only_those_use_the_recurrence(limit, monkeypatch):
    model = case("penguins-lightgbm")
    monkeypatch.setattr(explain, "TABLE_MAX_U", limit)
    shap = explain.explainer(evaluators.from_arrays(model.arrays), model.arrays)
    assert {group.u for group in shap.groups} >= {limit, limit + 1} - {0}
    for group in shap.groups:
        assert (group.r_base is None) == (group.u > limit), group.u
    tabled = [group for group in shap.groups if group.r_base is not None]
    assert shap.r_flat.size == sum(len(group.value) * 2**group.u for group in tabled)
    rows = np.vstack([model.matrix, model.probes])
    native = np.concatenate([model.native_shap, model.native_probes_shap])
    assert _difference(shap.contributions(rows), native, model.task) <= EXACT
