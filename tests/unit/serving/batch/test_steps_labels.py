"""The batch steps with a labelled file: how the plan finds the target, that every part writes the same
columns, the evaluation's row limit and threshold, and the pinned manifest's checksum."""

import csv
import io
import json

import numpy as np
import pytest
from serving.batch import evaluation
from serving.store import bundles

from tests.models import case
from tests.unit.conftest import BUCKET
from tests.unit.serving.batch.helpers import Aborted, run_file, text
from training import evaluate as training_metrics


def publish_labelled(s3, name="labelled", model_name="penguins-catboost", target="species", **fields):
    model = case(model_name)
    manifest = bundles.publish(s3, BUCKET, name, model.arrays, {**model.manifest_fields(), "target": target, **fields})
    bundles.set_champion(s3, BUCKET, name, manifest["version"], "test")
    return model, manifest


def predictions(s3, stem, name="labelled"):
    return list(csv.DictReader(io.StringIO(text(s3, f"batch/output/{name}/{stem}.predictions.csv"))))


def test_one_json_line_with_spaces_and_no_line_end_is_labelled(s3, steps):
    model, _ = publish_labelled(s3)
    s3.put_object(Bucket=BUCKET, Key="batch/input/labelled/one.jsonl",
                  Body=json.dumps({**model.instances[0], "species": model.labels[0]}).encode())  # ", " and ": "
    answer = run_file(steps, s3, "batch/input/labelled/one.jsonl")
    assert answer["predicted"] == 1
    assert [p["actual"] for p in predictions(s3, "one")] == [model.labels[0]]


def test_an_empty_json_lines_file_for_a_model_with_a_target_is_scored_as_no_rows(s3, steps):
    publish_labelled(s3)
    s3.put_object(Bucket=BUCKET, Key="batch/input/labelled/empty.jsonl", Body=b"")
    answer = run_file(steps, s3, "batch/input/labelled/empty.jsonl")
    assert (answer.get("rows", 0), answer.get("predicted", 0)) == (0, 0)
    header = text(s3, "batch/output/labelled/empty.predictions.csv").splitlines()[0]
    assert "actual" not in header.split(",")  # no line, no label: not a labelled file


def test_every_part_of_a_labelled_json_lines_file_writes_the_actual_column(s3, steps):
    """Only the file's first line decides: a later part whose first row has no label writes an empty actual."""
    model, _ = publish_labelled(s3)
    rows = [{**model.instances[i], "species": model.labels[i]} for i in range(40)]
    for i in range(4, 40, 4):  # the first row keeps its label
        del rows[i]["species"]
    body = "\n".join(json.dumps(r) for r in rows).encode()
    s3.put_object(Bucket=BUCKET, Key="batch/input/labelled/parts.jsonl", Body=body)
    answer = run_file(steps, s3, "batch/input/labelled/parts.jsonl", part_megabytes=len(body) / 5 / (1 << 20))
    assert answer["parts"] >= 4 and answer["predicted"] == 40
    found = predictions(s3, "parts")
    assert [p["actual"] for p in found] == ["" if i and i % 4 == 0 else model.labels[i] for i in range(40)]


@pytest.mark.parametrize("limit", [12, 11])
def test_a_file_over_the_evaluation_row_limit_is_scored_and_says_why_it_is_not_evaluated(s3, steps, monkeypatch,
                                                                                        limit):
    model, _ = publish_labelled(s3)
    monkeypatch.setattr(evaluation, "MAX_ROWS", limit)
    names = [*model.instances[0], "species"]
    lines = [",".join(names)] + [",".join("" if model.instances[i][n] is None else str(model.instances[i][n])
                                          for n in names[:-1]) + f",{model.labels[i]}" for i in range(12)]
    s3.put_object(Bucket=BUCKET, Key="batch/input/labelled/l.csv", Body="\n".join(lines).encode())
    run_file(steps, s3, "batch/input/labelled/l.csv")
    found = json.loads(text(s3, "batch/output/labelled/l.manifest.json"))["evaluation"]
    if limit == 12:
        assert found["rows"] == 12 and "accuracy" in found["metrics"]
    else:
        assert found == {"skipped": "12 labelled rows: more than the 11 evaluated at once"}


def test_a_binary_models_threshold_decides_the_evaluated_labels(s3, steps):
    model, _ = publish_labelled(s3, model_name="bc-lightgbm", target="diagnosis", decision_threshold=0.02)
    names = [f["name"] for f in model.schema]
    lines = [",".join([*names, "diagnosis"])] + [
        ",".join([*(str(model.instances[i][n]) for n in names), model.labels[i]]) for i in range(60)]
    s3.put_object(Bucket=BUCKET, Key="batch/input/labelled/t.csv", Body="\n".join(lines).encode())
    run_file(steps, s3, "batch/input/labelled/t.csv")
    found = json.loads(text(s3, "batch/output/labelled/t.manifest.json"))["evaluation"]["metrics"]
    proba = np.asarray(model.native[:60])
    expected = training_metrics.metrics(np.asarray(model.labels[:60]), proba, model.classes, 0.02)
    assert found["accuracy"] == pytest.approx(expected["accuracy"], abs=1e-12)
    assert found["accuracy"] != training_metrics.metrics(np.asarray(model.labels[:60]), proba, model.classes)["accuracy"]


def test_a_champion_whose_manifest_does_not_match_its_checksum_is_not_scored(s3, steps):
    _, manifest = publish_labelled(s3)
    pointer_key = "models/labelled/champion.json"
    pointer = json.loads(text(s3, pointer_key))
    s3.put_object(Bucket=BUCKET, Key=pointer_key, Body=json.dumps({**pointer, "manifest_sha256": "0" * 64}).encode())
    model = case("penguins-catboost")
    s3.put_object(Bucket=BUCKET, Key="batch/input/labelled/x.jsonl",
                  Body=json.dumps({**model.instances[0], "species": model.labels[0]}).encode())
    with pytest.raises(Aborted, match="manifest of labelled v1 does not match the champion pointer"):
        run_file(steps, s3, "batch/input/labelled/x.jsonl")


def test_the_plan_reads_a_json_lines_files_first_mib_only_to_find_its_labels(s3, steps, monkeypatch):
    from serving.batch.steps import HEADER_BYTES

    model, _ = publish_labelled(s3)
    line = json.dumps({**model.instances[0], "species": model.labels[0]}).encode()
    body = b"\n".join([line] * (HEADER_BYTES // len(line) + 100))
    s3.put_object(Bucket=BUCKET, Key="batch/input/labelled/big.jsonl", Body=body)
    read = []
    get_object = s3.get_object
    monkeypatch.setattr(s3, "get_object", lambda **request: (request["Key"].endswith("big.jsonl") and read.append(
        request.get("Range"))) or get_object(**request))
    answer = run_file(steps, s3, "batch/input/labelled/big.jsonl")
    assert answer["predicted"] == body.count(b"\n") + 1 and len(body) > HEADER_BYTES
    assert None not in read  # no read of the whole file: a file can be far bigger than a function's memory
    assert f"bytes=0-{HEADER_BYTES - 1}" in read
