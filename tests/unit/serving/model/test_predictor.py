"""A loaded model answers per task: label and probabilities, or the value."""

import numpy as np
import pytest
from serving.model import bundle
from serving.model.predictor import Predictor, served_predictions

from tests.models import case


def predictor(name="penguins-catboost", arrays=None, **fields):
    model = case(name)
    manifest = {**model.manifest_fields(), "name": "m", "version": 4, **fields}
    return Predictor(bundle.Bundle(manifest=manifest, arrays=arrays or model.arrays), unknown_category="reject")


def test_a_classifier_answers_the_most_likely_label_and_every_probability():
    model = case("penguins-catboost")
    p = predictor()
    answer = p.predict({"instances": model.instances[:5]}, max_rows=10)
    assert answer["model"] == {"name": "m", "version": 4}
    for prediction, native in zip(answer["predictions"], model.native[:5], strict=True):
        assert list(prediction["probabilities"]) == model.classes
        assert np.allclose(list(prediction["probabilities"].values()), native, atol=1e-12)
        assert prediction["label"] == model.classes[int(np.argmax(native))]
    assert (p.name, p.version, p.task) == ("m", 4, "multiclass")


@pytest.mark.parametrize("classes", [["benign", "malignant"], [1, 0]])
def test_a_binary_answer_names_the_likelier_class_and_the_first_on_a_tie(classes):
    p = predictor("bc-catboost", classes=classes)
    output = np.array([[0.25, 0.75], [0.75, 0.25], [0.5, 0.5]])
    labels = [str(c) for c in classes]
    assert p.answers(output) == [
        {"label": classes[1], "probabilities": {labels[0]: 0.25, labels[1]: 0.75}},
        {"label": classes[0], "probabilities": {labels[0]: 0.75, labels[1]: 0.25}},
        {"label": classes[0], "probabilities": {labels[0]: 0.5, labels[1]: 0.5}},  # as argmax
    ]


def test_a_regression_model_answers_the_value():
    model = case("bc-catboost")
    arrays = {**model.arrays, "task": np.array("regression"), "link": np.array("identity")}
    p = predictor("bc-catboost", arrays=arrays, classes=[], target="y")
    answer = p.predict({"instances": model.instances[:3]}, max_rows=10)
    raw = served_predictions(arrays, model.matrix[:3])[:, 0]
    assert answer["predictions"] == [{"prediction": v} for v in raw.tolist()]
    assert p.describe()["task"] == "regression" and p.describe()["target"] == "y"


def test_describe_shows_what_a_client_needs_and_nothing_internal():
    p = predictor(lineage={"rows": 3}, exactness={"max_abs_difference": 0.0}, files={"x": {}},
                  created_at="2026-11-26T00:00:00+00:00", hyperparameters={"depth": 4}, format_version=2)
    described = p.describe()
    assert set(described) == {"name", "version", "task", "framework", "feature_schema", "classes", "metrics",
                              "examples", "lineage", "exactness", "created_at", "hyperparameters",
                              "ignored_columns", "id_column"}
    assert described["hyperparameters"] == {"depth": 4}
    assert described["task"] == "multiclass"


def test_a_schema_that_does_not_give_the_models_width_is_refused():
    model = case("penguins-catboost")
    with pytest.raises(bundle.BundleError, match="the model reads 7 features but its schema gives 6"):
        predictor(feature_schema=model.schema[:6])


@pytest.mark.parametrize("name", ["bc-lightgbm", "penguins-catboost"])
def test_an_explanation_names_the_model_and_version_that_answered(name):
    model = case(name)
    explained = predictor(name).explain({"instances": model.instances[:2]}, max_rows=10)
    assert explained["model"] == {"name": "m", "version": 4}
    assert set(explained) == {"model", "explains", "predictions"} and len(explained["predictions"]) == 2
