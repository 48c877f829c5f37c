"""The bundle format: a manifest and its arrays checked against each other, names safe in a key."""

import io

import numpy as np
import pytest
from serving.model import bundle
from serving.model.predictor import served_explanations

from tests.models import case


def test_the_model_arrays_are_never_unpickled():
    buffer = io.BytesIO()
    np.savez(buffer, layout=np.array([{"not": "an array"}], dtype=object))
    with pytest.raises(bundle.BundleError, match="model.npz cannot be read as plain arrays"):
        bundle.decode_arrays(buffer.getvalue())
    with pytest.raises(bundle.BundleError, match="cannot be read as plain arrays"):
        bundle.decode_arrays(b"not a zip file")


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"feature_schema": []}, "feature_schema must be a non-empty list"),
        ({"feature_schema": "x"}, "feature_schema must be a non-empty list"),
        ({"feature_schema": [{"type": "numeric"}]}, "feature_schema[0] has no name"),
        ({"feature_schema": ["x"]}, "feature_schema[0] has no name"),
        ({"feature_schema": [{"name": "a", "type": "text"}]},
         "feature 'a' has type 'text', expected one of numeric, categorical, boolean, datetime"),
        ({"feature_schema": [{"name": "a", "type": "numeric"}] * 2}, "feature names are not unique"),
        ({"task": "multiclass"}, "task 'multiclass' but model.npz holds a binary model"),
        ({"classes": ["a", "b", "c"]}, "3 classes for a binary model with 1 outputs; expected 2"),
        ({"classes": None}, "0 classes for a binary model"),
    ],
)
def test_a_manifest_that_disagrees_with_its_model_is_refused(change, words):
    model = case("bc-lightgbm")
    manifest = {"name": "bc", "version": 1, **model.manifest_fields(), **change}
    with pytest.raises(bundle.BundleError) as caught:
        bundle.Bundle(manifest=manifest, arrays=model.arrays)
    assert str(caught.value).startswith("manifest.json: " + words)


def test_an_unknown_feature_type_is_named_with_the_known_ones():
    model = case("bc-lightgbm")
    manifest = {"name": "bc", "version": 1, **model.manifest_fields(), "feature_schema": [{"name": "a", "type": "text"}]}
    with pytest.raises(bundle.BundleError) as caught:
        bundle.Bundle(manifest=manifest, arrays=model.arrays)
    assert str(caught.value) == ("manifest.json: feature 'a' has type 'text', expected one of numeric, categorical, "
                                 "boolean, datetime")


@pytest.mark.parametrize("key", ["name", "version", "feature_schema"])
def test_the_manifest_fields_serving_reads_are_required(key):
    model = case("bc-lightgbm")
    manifest = {"name": "bc", "version": 1, **model.manifest_fields()}
    del manifest[key]
    with pytest.raises(bundle.BundleError, match=f"manifest.json: {key} is missing"):
        bundle.Bundle(manifest=manifest, arrays=model.arrays)


def test_multiclass_and_regression_manifests():
    model = case("digits-lightgbm")
    ok = bundle.Bundle(manifest={"name": "d", "version": 1, **model.manifest_fields()}, arrays=model.arrays)
    assert ok.task == "multiclass" and len(ok.classes) == 10
    regression = {**case("bc-catboost").arrays, "task": np.array("regression"), "link": np.array("identity")}
    fields = {**case("bc-catboost").manifest_fields(), "classes": []}
    assert bundle.Bundle(manifest={"name": "r", "version": 1, **fields}, arrays=regression).classes == []
    with pytest.raises(bundle.BundleError, match="2 classes for a regression model"):
        bundle.Bundle(manifest={"name": "r", "version": 1, **fields, "classes": ["a", "b"]}, arrays=regression)


@pytest.mark.parametrize("name", ["bc", "breast-cancer", "a", "model_2.v1", "x" * 64, "0abc9"])
def test_valid_model_names(name):
    assert bundle.check_name(name) == name
    assert bundle.champion_key(name) == f"models/{name}/champion.json"
    assert bundle.version_prefix(name, 7) == f"models/{name}/versions/000007/"


@pytest.mark.parametrize("name", ["", "../x", "a/b", "a..b", "A", "-a", "a-", ".a", "x" * 65, "a b",
                                  "a\n", "é", None, 3])
def test_names_that_could_escape_their_prefix_are_refused_before_any_key_is_built(name):
    with pytest.raises(ValueError, match="is not valid: 1-64 characters"):
        bundle.check_name(name)
    with pytest.raises(ValueError):
        bundle.model_prefix(name)


def test_rows_given_as_lists_with_none_are_explained_as_float_rows_with_nan():
    for name in ("bc-lightgbm", "bc-catboost"):
        model = case(name)
        X = model.matrix[:3].copy()
        X[:, 0] = np.nan
        rows = [[None if np.isnan(v) else float(v) for v in row] for row in X]
        assert np.array_equal(served_explanations(model.arrays, rows),
                              served_explanations(model.arrays, X))
