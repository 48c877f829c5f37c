"""An ensemble served as one model: the weighted sum of its members' raw scores, then the link.

The members are the test models (tests/models.py) of both families on one data set, scored on the
same held-out rows (each member's probe rows are its own, so they test the members alone); what
the served ensemble must equal is computed from the native libraries' raw scores and SHAP values.
"""

import numpy as np
import pytest
from serving.model import evaluator as evaluators
from serving.model import format as model_format
from serving.model.bundle import Bundle
from serving.model.predictor import Predictor, served_explanations, served_predictions

from tests.models import case

ENSEMBLES = {  # members (CatBoost and LightGBM on one data set) and their weights
    "breast-cancer": (("bc-catboost", "bc-lightgbm", "bc-lightgbm-zero"), (0.5, 0.3, 0.2)),
    "digits": (("digits-catboost", "digits-lightgbm"), (0.25, 0.75)),
    "penguins": (("penguins-catboost-nanmax", "penguins-lightgbm"), (0.6, 0.4)),
    "diabetes": (("diabetes-catboost", "diabetes-lightgbm"), (0.7, 0.3)),
    "shops": (("shops-catboost-combinations", "shops-lightgbm"), (0.4, 0.6)),
}
EXACT_PREDICTIONS = 1e-12
EXACT_SHAP = 1e-9


def _ensemble(name):
    names, weights = ENSEMBLES[name]
    members = [case(n) for n in names]
    return members, weights, model_format.pack_weighted([m.arrays for m in members], list(weights))


def _native(members, weights, field):
    return sum(w * getattr(m, field) for m, w in zip(members, weights, strict=True))


def _difference(served, native, task):
    difference = np.abs(served - native)
    if task == "regression":
        difference = difference / np.maximum(1.0, np.abs(native))
    return float(difference.max())


@pytest.mark.parametrize("name", sorted(ENSEMBLES))
def test_answers_are_the_link_of_the_members_native_raw_scores_weighted(name):
    members, weights, arrays = _ensemble(name)
    task = members[0].task
    link = model_format.TASK_LINKS[task]
    expected = evaluators.apply_link(_native(members, weights, "native_raw"), link)
    served = served_predictions(arrays, members[0].matrix)
    assert served.shape == expected.shape
    assert _difference(served, expected, task) <= EXACT_PREDICTIONS


@pytest.mark.parametrize("name", sorted(ENSEMBLES))
def test_explanations_are_the_members_native_shap_values_weighted(name):
    members, weights, arrays = _ensemble(name)
    served = served_explanations(arrays, members[0].matrix)
    expected = _native(members, weights, "native_shap")
    assert served.shape == expected.shape
    assert _difference(served, expected, members[0].task) <= EXACT_SHAP


def test_a_member_of_weight_one_is_the_member_itself():
    member = case("bc-lightgbm")
    arrays = model_format.pack_weighted([member.arrays], [1.0])
    assert np.array_equal(served_predictions(arrays, member.matrix), served_predictions(member.arrays, member.matrix))


def test_an_ensembles_raw_scores_are_its_raw_answer():
    members, _, arrays = _ensemble("penguins")
    model = evaluators.from_arrays(arrays)
    X = members[0].matrix[:5]
    assert np.array_equal(model.raw(X), model.raw_scores(X))


def test_each_member_counts_by_its_weight():
    members, _, _ = _ensemble("digits")
    one = model_format.pack_weighted([m.arrays for m in members], [0.25, 0.75])
    other = model_format.pack_weighted([m.arrays for m in members], [0.75, 0.25])
    X = members[0].matrix
    assert _difference(served_predictions(one, X), served_predictions(other, X), "multiclass") > 1e-3


def test_a_bundle_of_an_ensemble_is_served_and_explained():
    members, weights, arrays = _ensemble("penguins")
    manifest = {"name": "penguins", "version": 1, **members[0].manifest_fields(),
                "ensemble": {"members": [{"family": m.family, "weight": w} for m, w in
                                         zip(members, weights, strict=True)]}}
    predictor = Predictor(Bundle(manifest, arrays), unknown_category="error")
    answer = predictor.explain({"instances": members[0].instances[:3]}, max_rows=10)
    expected = evaluators.apply_link(_native(members, weights, "native_raw")[:3], "softmax")
    for row, probabilities in zip(answer["predictions"], expected, strict=True):
        assert list(row["probabilities"].values()) == pytest.approx(probabilities.tolist(), abs=1e-12)
        assert row["label"] == predictor.classes[int(probabilities.argmax())]
    assert predictor.describe()["ensemble"]["members"][1]["weight"] == 0.4


def _weighted(**changes):
    members = [case("bc-catboost").arrays, case("bc-lightgbm").arrays]
    arrays = model_format.pack_weighted(members, [0.5, 0.5])
    arrays.update(changes)
    return arrays


@pytest.mark.parametrize(("changes", "message"), [
    ({"weights": np.array([0.5, 0.0])}, "weights: must be finite and positive"),
    ({"weights": np.array([0.5, np.nan])}, "weights: must be finite and positive"),
    ({"weights": np.array([1.0])}, "member_layouts: shape (2,) disagrees with M = 1 (M)"),
    ({"member_layouts": np.array(["oblivious", "weighted"])},
     "member_layouts: member 1 is 'weighted', expected one of oblivious, nodes"),
    ({"member_layouts": np.array(["nodes", "oblivious"])}, "member 0 (m0.*): "),
    ({"m2.roots": np.zeros(1, np.int32)}, "m2.roots: belongs to no member (there are 2)"),
    ({"m5.a.b": np.zeros(1, np.int32)}, "m5.a.b: belongs to no member (there are 2)"),
    ({"weights": np.zeros(0), "member_layouts": np.array([], "<U9")}, "weights: no members"),
    ({"x.roots": np.zeros(1, np.int32)}, "x.roots: not part of the weighted layout"),
])
def test_a_broken_ensemble_is_refused_naming_what_is_wrong(changes, message):
    """The whole message, or its start where it goes on with a member's own fault."""
    with pytest.raises(model_format.FormatError) as error:
        model_format.check(_weighted(**changes))
    assert str(error.value) == message or (message.endswith(": ") and str(error.value).startswith(message))


def test_a_member_missing_an_array_is_named_with_its_member():
    arrays = _weighted()
    del arrays["m1.threshold"]
    with pytest.raises(model_format.FormatError, match=r"member 1 \(m1\.\*\): threshold: missing"):
        model_format.check(arrays)


def test_members_must_agree_and_ensembles_do_not_nest():
    with pytest.raises(model_format.FormatError, match="2 weights for 1 members"):
        model_format.pack_weighted([case("bc-catboost").arrays], [0.5, 0.5])
    with pytest.raises(model_format.FormatError, match="layout 'weighted'"):
        model_format.pack("weighted", "binary", 3, 1)
    with pytest.raises(model_format.FormatError, match="member 0 is 'weighted'"):
        model_format.pack_weighted([_weighted(), case("bc-lightgbm").arrays], [0.5, 0.5])


def test_catboost_members_of_different_depths_are_not_padded_into_one():
    from training import ensemble

    member = case("bc-catboost")
    deeper = dict(member.arrays)  # the same trees with a trailing level that never fires
    for name, value in {"features": 0, "borders": np.inf, "nan_goes_right": False, "is_equal": False,
                        "equal_code": np.nan}.items():
        deeper[name] = np.pad(member.arrays[name], ((0, 0), (0, 1)), constant_values=value)
    deeper["leaf_values"] = np.pad(member.arrays["leaf_values"], ((0, 0), (0, 16), (0, 0)))
    deeper["leaf_weights"] = np.pad(member.arrays["leaf_weights"], ((0, 0), (0, 16)))
    folded, weights = ensemble.fold([member.arrays, model_format.pack("oblivious", "binary", 30, 1, **{
        k: v for k, v in deeper.items() if k not in model_format.HEADER})], [0.5, 0.5])
    assert len(folded) == 2 and weights == [0.5, 0.5]
    served = served_predictions(model_format.pack_weighted(folded, weights), member.matrix)
    assert _difference(served, member.native, "binary") <= EXACT_PREDICTIONS


def test_whole_number_weights_are_stored_as_the_formats_floats():
    arrays = model_format.pack_weighted([case("bc-catboost").arrays, case("bc-lightgbm").arrays], [1, 3])
    assert arrays["weights"].dtype == np.float64 and model_format.check(arrays).layout == "weighted"


def test_a_cold_load_checks_the_arrays_once_and_the_members_from_that_check(monkeypatch):
    members, weights, arrays = _ensemble("shops")
    header = model_format.check(arrays)
    assert [h.layout for h in header.members] == [str(m.arrays["layout"]) for m in members]
    assert header.members == tuple(model_format.check(m.arrays) for m in members)
    manifest = {"name": "shops", "version": 1, "feature_schema": members[0].schema,
                "classes": members[0].classes}
    calls = []
    real = model_format.check
    monkeypatch.setattr(model_format, "check", lambda a: calls.append(a) or real(a))
    predictor = Predictor(Bundle(manifest, arrays), unknown_category="missing")
    # the bundle's check (the ensemble, then each member inside it) and nothing after it
    assert [a is arrays for a in calls] == [True] + [False] * len(members)
    assert [type(m) for m in predictor.ensemble.members] == [
        evaluators.ObliviousEnsemble if str(m.arrays["layout"]) == "oblivious" else evaluators.NodeEnsemble
        for m in members]
    served = predictor.predict_matrix(members[0].matrix)
    assert _difference(served, served_predictions(arrays, members[0].matrix), members[0].task) == 0.0
