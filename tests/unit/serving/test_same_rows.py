"""The rows a model was trained on, sent back as the user has them: the columns training left out
(an ID, a row counter, a constant) and the target are accepted and ignored, a name never seen is
still refused, and a batch file's row ids come from the model's ID column."""

import csv
import io

import numpy as np
import pytest
from serving.batch.lines import score_lines
from serving.model import bundle
from serving.model.features import RequestError
from serving.model.predictor import Predictor

from tests.models import case

DROPPED = [{"name": "rownames", "reason": "a different value in every row"},
           {"name": "counter", "reason": "a row counter: consecutive integers, one per row"},
           {"name": "batch", "reason": "constant: 'b1' in every row"}]


def predictor(name="bc-lightgbm", **fields):
    model = case(name)
    manifest = {**model.manifest_fields(), "name": "m", "version": 1, "target": "diagnosis",
                "dropped_columns": DROPPED, "id_column": "rownames", **fields}
    return model, Predictor(bundle.Bundle(manifest=manifest, arrays=model.arrays), unknown_category="reject")


def as_trained(model, i: int) -> dict:
    """A row of the training table: the features, the columns left out and the target."""
    return {"rownames": f"r{i}", **model.instances[i], "counter": i + 1, "batch": "b1",
            "diagnosis": model.labels[i]}


@pytest.mark.parametrize("name", ["bc-lightgbm", "penguins-catboost"])
def test_a_row_as_trained_is_answered_as_its_features_alone(name):
    model, p = predictor(name)
    rows = [as_trained(model, i) for i in range(5)]
    with_all = p.predict({"instances": rows}, max_rows=10)
    alone = p.predict({"instances": model.instances[:5]}, max_rows=10)
    assert with_all == alone
    assert with_all["predictions"][0]["probabilities"] == pytest.approx(
        dict(zip(model.classes, model.native[0].tolist(), strict=True)), abs=1e-12)


def test_the_fast_path_takes_rows_that_carry_ignored_columns():
    model, p = predictor()
    rows = [as_trained(model, i) for i in range(50)]
    X = p.schema.rows(rows)
    assert np.array_equal(X, p.schema.rows(model.instances[:50]))
    assert p.schema._fast_matrix(rows, "instances") is not None  # not the cell-by-cell path


def test_a_name_never_seen_at_training_is_still_refused():
    model, p = predictor()
    typo = {**as_trained(model, 0), "mean radios": 3.0}
    with pytest.raises(RequestError) as refused:
        p.predict({"instances": [typo]}, max_rows=10)
    assert refused.value.status == 422
    assert refused.value.errors == [{"row": 0, "field": "mean radios", "message": "unknown feature"}]


def test_a_model_says_which_columns_it_ignores_and_which_names_a_row():
    _, p = predictor()
    described = p.describe()
    assert described["ignored_columns"] == ["rownames", "counter", "batch", "diagnosis"]
    assert described["id_column"] == "rownames"
    old = case("bc-lightgbm")  # a bundle published before these fields: nothing ignored, ids from "id"
    plain = Predictor(bundle.Bundle(manifest={**old.manifest_fields(), "name": "o", "version": 1},
                                    arrays=old.arrays), unknown_category="reject")
    assert (plain.describe()["ignored_columns"], plain.describe()["id_column"]) == ([], None)


def test_a_feature_is_never_ignored_even_when_the_manifest_lists_it():
    model, p = predictor(dropped_columns=[{"name": "mean radius", "reason": "x"}])
    assert "mean radius" not in p.bundle.ignored_columns
    row = dict(model.instances[0])
    del row["mean radius"]
    with pytest.raises(RequestError):
        p.predict({"instances": [row]}, max_rows=10)


@pytest.mark.parametrize(("field", "value", "words"), [
    ("dropped_columns", "rownames", "dropped_columns must be a list of objects with a name"),
    ("dropped_columns", [{"reason": "x"}], "dropped_columns must be a list of objects with a name"),
    ("target", 3, "target must be a column name"),
    ("id_column", ["a"], "id_column must be a column name"),
])
def test_a_manifest_with_malformed_columns_is_refused(field, value, words):
    model = case("bc-lightgbm")
    with pytest.raises(bundle.BundleError, match=f": {words}$"):
        bundle.Bundle(manifest={**model.manifest_fields(), "name": "m", "version": 1, field: value},
                      arrays=model.arrays)


def training_csv(model, rows: int, delimiter: str = ",") -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\n")
    names = ["rownames", *[f["name"] for f in model.schema], "counter", "batch", "diagnosis"]
    writer.writerow(names)
    for i in range(rows):
        row = as_trained(model, i)
        writer.writerow(["" if row[n] is None else row[n] for n in names])
    return out.getvalue().encode()


@pytest.mark.parametrize(("name", "file"), [("bc-lightgbm", "in.csv"), ("penguins-catboost", "in.csv"),
                                            ("bc-lightgbm", "in.jsonl")])
def test_a_batch_file_of_the_training_table_is_scored_with_its_row_names_as_ids(name, file):
    model, p = predictor(name)
    if file.endswith(".csv"):
        data = training_csv(model, 12)
    else:
        import json

        data = "".join(json.dumps(as_trained(model, i)) + "\n" for i in range(12)).encode()
    predictions, errors = io.StringIO(), io.StringIO()
    result = score_lines(io.BytesIO(data), file, p, predictions, errors)
    assert (result.rows, result.predicted, result.invalid) == (12, 12, 0), errors.getvalue()
    read = list(csv.DictReader(io.StringIO(predictions.getvalue())))
    assert [r["row_id"] for r in read] == [f"r{i}" for i in range(12)]
    served = np.array([[float(r[f"probability_{c}"]) for c in model.classes] for r in read])
    assert np.max(np.abs(served - model.native[:12])) <= 1e-12


@pytest.mark.parametrize("file", ["in.csv", "in.jsonl"])
def test_a_file_with_an_id_column_keeps_its_ids_when_the_model_named_its_rows_otherwise(file):
    model, p = predictor()
    if file.endswith(".csv"):
        data = training_csv(model, 4).decode().replace("rownames,", "id,", 1).encode()
    else:
        import json

        data = "".join(json.dumps({"id": f"r{i}", **model.instances[i]}) + "\n" for i in range(4)).encode()
    predictions, errors = io.StringIO(), io.StringIO()
    result = score_lines(io.BytesIO(data), file, p, predictions, errors)
    assert (result.predicted, result.invalid) == (4, 0), errors.getvalue()
    assert [r["row_id"] for r in csv.DictReader(io.StringIO(predictions.getvalue()))] == ["r0", "r1", "r2", "r3"]
