"""A labelled file scored is the model evaluated: the actual value beside each prediction, and the
metrics training reports (scikit-learn's, in training/evaluate.py) on those rows in the manifest."""

import csv
import io
import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from serving.batch import evaluation
from serving.store import bundles

from tests.models import case
from tests.unit.conftest import BUCKET
from tests.unit.serving.batch.helpers import run_file, text
from training import evaluate as training_metrics


def close(ours, theirs, path=""):
    """Every number of training's metrics equal to ours within 1e-12 (relative), key for key."""
    assert set(ours) == set(theirs), path
    for key, value in theirs.items():
        if isinstance(value, dict):
            close(ours[key], value, f"{path}.{key}")
        else:
            assert ours[key] == pytest.approx(value, rel=1e-12, abs=1e-12), f"{path}.{key}"


@pytest.mark.parametrize("classes", [["no", "yes"], ["a", "b", "c", "d"]])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_classification_metrics_equal_trainings(classes, seed):
    rng = np.random.default_rng(seed)
    n = 300
    proba = rng.dirichlet(np.ones(len(classes)), n)
    proba[:40] = proba[0]  # ties in every score
    proba[5] = np.eye(len(classes))[0]  # probabilities of 0 and 1: scikit-learn clips them
    y = np.asarray(classes)[rng.integers(0, len(classes), n)]
    codes, unknown = evaluation.codes(list(y), classes)
    assert unknown == [] and (codes >= 0).all()
    found = evaluation.evaluate(codes, proba, classes, 0, [])
    assert (found["rows"], found["missing_label"], found["unknown_label"]) == (n, 0, 0)
    close(found["metrics"], training_metrics.metrics(y, proba, classes))


@pytest.mark.parametrize("threshold", [None, 0.2, 0.8])
def test_a_binary_models_threshold_moves_the_labels_as_in_training(threshold):
    rng = np.random.default_rng(7)
    classes = ["no", "yes"]
    p1 = rng.random(400)
    proba = np.column_stack([1 - p1, p1])
    y = np.asarray(classes)[(rng.random(400) < p1).astype(int)]
    codes, _ = evaluation.codes(list(y), classes)
    found = evaluation.evaluate(codes, proba, classes, 0, [], threshold)
    close(found["metrics"], training_metrics.metrics(y, proba, classes, threshold))
    claimed = found["metrics"]["per_class"]["yes"]
    expected = (p1 > (0.5 if threshold is None else threshold)).sum()
    assert round(claimed["support"]) == (y == "yes").sum()
    assert claimed["precision"] == pytest.approx(((p1 > (threshold or 0.5)) & (y == "yes")).sum() / expected)


def test_regression_metrics_equal_trainings():
    rng = np.random.default_rng(4)
    actual = rng.normal(10, 3, 200)
    predicted = actual + rng.normal(0, 1, 200)
    values, unknown = evaluation.codes([*actual.tolist(), None, "", "NA", "n/a", "abc"], [])
    assert unknown == ["abc"]
    output = np.concatenate([predicted, np.zeros(5)])[:, None]
    found = evaluation.evaluate(values, output, [], 1, unknown)
    assert (found["rows"], found["missing_label"], found["unknown_label"], found["unknown_labels"]) == (
        200, 4, 1, ["abc"])
    close(found["metrics"], training_metrics.metrics(actual, predicted[:, None], []))


def test_a_class_with_no_row_has_no_auc_and_labels_are_read_as_training_wrote_them():
    codes, unknown = evaluation.codes(["a", " b ", 1.0, True, None, float("nan"), "zz"], ["a", "b", "1", "True"])
    assert codes.tolist() == [0, 1, 2, 3, evaluation.MISSING, evaluation.MISSING, evaluation.UNKNOWN]
    assert unknown == ["zz"]
    proba = np.array([[0.7, 0.1, 0.1, 0.1], [0.1, 0.7, 0.1, 0.1]])
    assert evaluation.evaluate(np.array([0, 1]), proba, ["a", "b", "1", "True"], 0, [])["metrics"]["roc_auc"] is None


def labelled_csv(model, rows, target):
    names = [f["name"] for f in model.schema]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["rownames", *names, target])
    for i in range(rows):
        label = model.labels[i] if i not in (3, 9) else ("" if i == 3 else "not-a-class")
        writer.writerow([f"r{i}", *["" if model.instances[i][n] is None else model.instances[i][n] for n in names],
                         label])
    return out.getvalue().encode()


@pytest.mark.parametrize(("name", "form"), [("bc-lightgbm", "csv"), ("penguins-catboost", "csv"),
                                            ("penguins-catboost", "parquet"), ("penguins-catboost", "jsonl")])
def test_a_labelled_file_in_parts_gives_the_actual_values_and_trainings_metrics_on_its_rows(
        s3, steps, name, form):
    model = case(name)
    fields = {**model.manifest_fields(), "target": "species", "id_column": "rownames",
              "dropped_columns": [{"name": "rownames", "reason": "a different value in every row"}]}
    version = bundles.publish(s3, BUCKET, "labelled", model.arrays, fields)["version"]
    bundles.set_champion(s3, BUCKET, "labelled", version, "test")
    rows = min(60, len(model.instances))
    data = labelled_csv(model, rows, "species")
    if form == "parquet":
        frame = pd.read_csv(io.BytesIO(data), keep_default_na=False, na_values=[""], dtype={"species": str})
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False, row_group_size=20)
        data = buffer.getvalue()
    if form == "jsonl":  # the label found in the first JSON line's fields
        frame = pd.read_csv(io.BytesIO(data), keep_default_na=False, na_values=[""], dtype={"species": str})
        data = frame.to_json(orient="records", lines=True).encode()
    key = f"batch/input/labelled/l.{form}"
    s3.put_object(Bucket=BUCKET, Key=key, Body=data)
    answer = run_file(steps, s3, key, part_megabytes=0.4 * len(data) / (1 << 20))
    assert answer["parts"] >= 2 and (answer["predicted"], answer["invalid"]) == (rows, 0)
    predictions = list(csv.DictReader(io.StringIO(text(s3, "batch/output/labelled/l.predictions.csv"))))
    assert list(predictions[0])[-1] == "actual"
    assert [p["row_id"] for p in predictions] == [f"r{i}" for i in range(rows)]
    expected_actual = ["" if i == 3 else "not-a-class" if i == 9 else model.labels[i] for i in range(rows)]
    assert [p["actual"] for p in predictions] == expected_actual
    manifest = json.loads(text(s3, "batch/output/labelled/l.manifest.json"))
    found = manifest["evaluation"]
    assert (found["rows"], found["missing_label"], found["unknown_label"], found["unknown_labels"]) == (
        rows - 2, 1, 1, ["not-a-class"])
    scored = [i for i in range(rows) if i not in (3, 9)]
    proba = np.array([[float(predictions[i][f"probability_{c}"]) for c in model.classes] for i in scored])
    assert np.max(np.abs(proba - model.native[scored])) <= 1e-12
    close(found["metrics"], training_metrics.metrics(np.asarray(model.labels)[scored], proba, model.classes))


def test_a_file_without_the_target_is_scored_as_before(s3, steps):
    model = case("bc-lightgbm")
    fields = {**model.manifest_fields(), "target": "diagnosis"}
    version = bundles.publish(s3, BUCKET, "plain", model.arrays, fields)["version"]
    bundles.set_champion(s3, BUCKET, "plain", version, "test")
    s3.put_object(Bucket=BUCKET, Key="batch/input/plain/p.csv", Body=model.csv(10).encode())
    run_file(steps, s3, "batch/input/plain/p.csv")
    header = text(s3, "batch/output/plain/p.predictions.csv").splitlines()[0]
    assert header == "row_id,label," + ",".join(f"probability_{c}" for c in model.classes)
    assert "evaluation" not in json.loads(text(s3, "batch/output/plain/p.manifest.json"))


@settings(max_examples=150, deadline=None)
@given(k=st.integers(2, 4), n=st.integers(1, 12), seed=st.integers(0, 2**32 - 1), sure=st.integers(0, 3))
def test_small_files_with_absent_and_unclaimed_classes_score_as_scikit_learn(k, n, seed, sure):
    """Few rows: classes with no row, classes never predicted, one positive, probabilities of 0 and 1."""
    from sklearn.metrics import accuracy_score, classification_report, f1_score, log_loss, roc_auc_score

    rng = np.random.default_rng(seed)
    classes = [f"c{j}" for j in range(k)]
    codes = rng.integers(0, k, n)
    proba = rng.dirichlet(np.ones(k), n)
    proba[:sure] = np.eye(k)[rng.integers(0, k, min(sure, n))]
    found = evaluation.evaluate(codes, proba, classes, 0, [])["metrics"]
    y, predicted = np.asarray(classes)[codes], np.asarray(classes)[proba.argmax(axis=1)]
    assert found["accuracy"] == accuracy_score(y, predicted)
    assert found["f1_macro"] == pytest.approx(f1_score(y, predicted, average="macro", zero_division=0), abs=1e-12)
    report = classification_report(y, predicted, labels=classes, output_dict=True, zero_division=0)
    for c in classes:
        for key in ("precision", "recall", "f1-score", "support"):
            assert found["per_class"][c][key] == pytest.approx(report[c][key], abs=1e-12), (c, key)
    assert found["log_loss"] == pytest.approx(log_loss(y, proba, labels=classes), rel=1e-12, abs=1e-12)
    seen = np.bincount(codes, minlength=k)
    if k == 2 and seen.all():
        assert found["roc_auc"] == pytest.approx(roc_auc_score(codes == 1, proba[:, 1]), abs=1e-12)
    elif k > 2 and seen.all():
        expected = roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=classes)
        assert found["roc_auc"] == pytest.approx(expected, abs=1e-12)
    else:
        assert found["roc_auc"] is None


@pytest.mark.parametrize("positives", [1, 2])
def test_one_positive_row_has_an_auc(positives):
    positive = np.zeros(6, bool)
    positive[:positives] = True
    score = np.array([0.9, 0.1, 0.5, 0.5, 0.2, 0.7])
    from sklearn.metrics import roc_auc_score

    assert evaluation._auc(positive, score) == pytest.approx(roc_auc_score(positive, score), abs=1e-12)
    assert evaluation._auc(~positive, score) == pytest.approx(roc_auc_score(~positive, score), abs=1e-12)


@pytest.mark.parametrize(("predicted", "r2"), [([5.0, 5.0, 5.0], 1.0), ([5.0, 4.0, 6.0], 0.0)])
def test_a_constant_target_scores_r2_as_scikit_learn(predicted, r2):
    from sklearn.metrics import r2_score

    found = evaluation.evaluate(np.array([5.0, 5.0, 5.0]), np.array(predicted)[:, None], [], 0, [])
    assert found["metrics"]["r2"] == r2 == r2_score([5.0, 5.0, 5.0], predicted)


def test_negative_and_infinite_targets_of_a_regression():
    values, unknown = evaluation.codes([-3.5, "-1", "inf", 2.0], [])
    assert np.isnan(values[2]) and values[[0, 1, 3]].tolist() == [-3.5, -1.0, 2.0] and unknown == []
    found = evaluation.evaluate(values, np.array([[-3.0], [-1.0], [0.0], [2.0]]), [], 0, [])
    assert (found["rows"], found["missing_label"]) == (3, 1)
    assert found["metrics"]["mae"] == pytest.approx(0.5 / 3)


@pytest.mark.parametrize("classes", [[], ["a", "b"]])
def test_a_file_without_one_usable_label_has_no_metrics(classes):
    labels = np.array([np.nan, np.nan]) if not classes else np.array([evaluation.MISSING, evaluation.UNKNOWN])
    found = evaluation.evaluate(labels, np.zeros((2, max(1, len(classes)))), classes, 1 if classes else 0, [])
    assert found == {"rows": 0, "missing_label": 1 if classes else 2, "unknown_label": 1 if classes else 0,
                     "metrics": {}}
