"""A binary model's decision threshold: kept in the bundle, applied to the label only."""

import numpy as np
import pytest
from serving.model.bundle import Bundle, BundleError
from serving.model.predictor import Predictor, label_indices

from tests.models import case


def _predictor(name="bc-lightgbm", **fields):
    model = case(name)
    manifest = {"name": "m", "version": 1, **model.manifest_fields(), **fields}
    return model, Predictor(Bundle(manifest, model.arrays), unknown_category="reject")


def test_labels_follow_the_threshold_and_the_probabilities_do_not_move():
    model, plain = _predictor()
    _, low = _predictor(decision_threshold=0.02)
    body = {"instances": model.instances}
    plain_rows, low_rows = plain.predict(body, 1000)["predictions"], low.predict(body, 1000)["predictions"]
    assert [r["probabilities"] for r in plain_rows] == [r["probabilities"] for r in low_rows]
    second = model.classes[1]
    p1 = np.array([r["probabilities"][second] for r in plain_rows])
    assert [r["label"] == second for r in low_rows] == (p1 > 0.02).tolist()
    assert [r["label"] == second for r in plain_rows] == (p1 > 0.5).tolist()
    assert sum(r["label"] != s["label"] for r, s in zip(low_rows, plain_rows, strict=True)) > 0
    assert low.describe()["decision_threshold"] == 0.02


def test_label_indices_are_the_likelier_class_unless_a_threshold_says_otherwise():
    output = np.array([[0.7, 0.3], [0.5, 0.5], [0.2, 0.8]])
    assert label_indices(output).tolist() == [0, 0, 1]
    assert label_indices(output, 0.25).tolist() == [1, 1, 1]
    assert label_indices(output, 0.9).tolist() == [0, 0, 0]
    three = np.array([[0.2, 0.5, 0.3], [0.6, 0.1, 0.3]])
    assert label_indices(three, 0.1).tolist() == [1, 0]  # a threshold is for binary models only


@pytest.mark.parametrize(("name", "threshold"), [("bc-lightgbm", 1.0), ("bc-lightgbm", 0), ("bc-lightgbm", True),
                                                 ("bc-lightgbm", "0.3"), ("digits-lightgbm", 0.3),
                                                 ("diabetes-lightgbm", 0.3)])
def test_a_threshold_that_is_not_a_binary_models_probability_is_refused(name, threshold):
    with pytest.raises(BundleError, match="decision_threshold .*: a binary model's is a number between 0 and 1"):
        _predictor(name, decision_threshold=threshold)


def test_a_batch_files_labels_follow_the_threshold():
    from tests.unit.serving.batch.helpers import run

    model, low = _predictor(decision_threshold=0.02)
    _, rows, errors = run(low, model.csv(), "file.csv")
    assert errors == [] and len(rows) == len(model.instances)
    p1 = [float(r[f"probability_{model.classes[1]}"]) for r in rows]
    assert [r["label"] == model.classes[1] for r in rows] == [p > 0.02 for p in p1]
    assert any(0.02 < p <= 0.5 for p in p1)  # rows the threshold labels otherwise than the likelier class


def test_a_probability_equal_to_the_threshold_is_not_above_it():
    """Strictly above, in the API's answers and in label_indices (batch, evaluation, training) alike."""
    model, p = _predictor(decision_threshold=0.25)
    output = np.array([[0.75, 0.25], [0.5, 0.5], [0.74, 0.26]])
    assert [a["label"] for a in p.answers(output)] == [model.classes[0], model.classes[1], model.classes[1]]
    assert label_indices(output, 0.25).tolist() == [0, 1, 1]
    assert label_indices(output[:2], 0.5).tolist() == [0, 0]
