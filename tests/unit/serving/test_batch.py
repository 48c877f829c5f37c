"""Batch scoring: every row of a dropped file is predicted or reported, whatever the file holds."""

import csv
import importlib
import io
import json

import numpy as np
import pytest
from serving import batch, bundle
from serving.predictor import Predictor

from tests.models import case
from tests.unit.conftest import BUCKET


def predictor_of(name="penguins-lightgbm"):
    model = case(name)
    loaded = bundle.Bundle(manifest={**model.manifest_fields(), "name": "p", "version": 1}, arrays=model.arrays)
    return model, Predictor(loaded, unknown_category="reject")


def run(predictor, data: bytes | str, name: str, chunk_rows=3):
    if isinstance(data, str):
        data = data.encode()
    predictions, errors = io.StringIO(), io.StringIO()
    rows = batch.read_rows(io.BytesIO(data), name)
    result = batch.score(rows, predictor, predictions, errors, csv_text=name.endswith(".csv"),
                         chunk_rows=chunk_rows)
    predictions.seek(0)
    errors.seek(0)
    assert "\r" not in predictions.getvalue() + errors.getvalue()  # plain \n line ends
    return result, list(csv.DictReader(predictions)), list(csv.DictReader(errors))


def served(model, rows):
    return np.array([[float(r[f"probability_{c}"]) for c in model.classes] for r in rows])


def test_a_csv_is_scored_exactly_with_invalid_rows_reported():
    model, p = predictor_of()
    lines = model.csv(10).splitlines()
    cells = lines[3].split(",")
    cells[1] = "not-a-number"  # row 3: bill_length_mm (island is first)
    lines[3] = ",".join(cells)
    result, predictions, errors = run(p, "\n".join(lines) + "\n", "in.csv")
    assert (result.rows, result.predicted, result.invalid) == (10, 9, 1)
    assert errors == [{"row_id": "3", "field": "bill_length_mm", "message": "must be a number, got str"}]
    kept = [i for i in range(10) if i != 2]
    assert np.max(np.abs(served(model, predictions) - model.native[kept])) <= 1e-12
    assert [r["row_id"] for r in predictions] == [str(i + 1) for i in kept]
    assert [r["label"] for r in predictions] == [model.classes[k] for k in model.native[kept].argmax(axis=1)]
    assert list(predictions[0]) == ["row_id", "label", *[f"probability_{c}" for c in model.classes]]


def test_a_csv_as_a_spreadsheet_writes_it_loses_no_row():
    # byte-order mark, CRLF, quoted header names, an empty line, a row with one value too few,
    # one with one too many, padded and quoted numbers, nan, 1e309, a repeated id
    model, p = predictor_of("bc-lightgbm")
    names = [f["name"] for f in model.schema]
    good = [[str(v) for v in (model.instances[i][n] for n in names)] for i in range(6)]
    header = "id," + ",".join(f'"{n}"' for n in names)
    lines = [
        header,
        ",".join(["a1", *good[0]]),
        "",
        ",".join(["a2", *good[1][:-1]]),                 # one value too few
        ",".join(["a3", *good[2], "7"]),                 # one too many
        ",".join(["a1", *good[4]]),                      # the id again
        ",".join(["a4", *[f'"{v}"' for v in good[3]]]),  # quoted numbers
        ",".join(["a5", "nan", *good[5][1:]]),           # nan where training had none
        ",".join(["a6", "1e309", *good[5][1:]]),         # overflows to infinity
        ",".join(["a7", *[f" {v} " for v in good[5]]]),  # padded
    ]
    data = b"\xef\xbb\xbf" + "\r\n".join(lines).encode() + b"\r\n"
    result, predictions, errors = run(p, data, "sheet.csv", chunk_rows=4)
    assert (result.rows, result.predicted, result.invalid) == (8, 4, 4)
    assert [r["row_id"] for r in predictions] == ["a1", "a1", "a4", "a7"]
    assert {(e["row_id"], e["field"]) for e in errors} == {
        ("a2", ""), ("a3", ""), ("a5", "mean radius"), ("a6", "mean radius")}
    by_id = {e["row_id"]: e["message"] for e in errors}
    assert by_id["a2"] == "30 values, but the header has 31 columns"
    assert by_id["a3"] == "32 values, but the header has 31 columns"
    assert "null is not allowed" in by_id["a5"]
    assert by_id["a6"] == "must be a finite number"
    expected = model.native[[0, 4, 3, 5]]
    assert np.max(np.abs(served(model, predictions) - expected)) <= 1e-12


def test_rows_are_read_and_scored_a_chunk_at_a_time():
    model, p = predictor_of()
    consumed = []

    def rows():
        for i, instance in enumerate(model.instances * 5):
            consumed.append(i)
            yield batch.Row(i + 1, dict(instance))

    class Watch(io.StringIO):
        def write(self, text):
            if text.count(",") and not text.startswith("row_id"):
                written.append(len(consumed))
            return super().write(text)

    written = []
    result = batch.score(rows(), p, Watch(), io.StringIO(), chunk_rows=7)
    assert result.predicted == len(model.instances) * 5
    assert written[0] == 7  # the first answer is written after reading one chunk, not the file
    assert max(n - i // 7 * 7 for i, n in enumerate(written)) <= 7


def test_json_lines_with_ids_a_broken_line_and_a_line_that_is_not_an_object():
    model, p = predictor_of()
    lines = [json.dumps({"id": f"r{i}", **row}) for i, row in enumerate(model.instances[:4])]
    lines.insert(2, "{broken")
    lines.insert(4, "[1, 2]")
    lines.insert(1, "   ")
    result, predictions, errors = run(p, "\n".join(lines) + "\n", "in.jsonl", chunk_rows=2)
    assert (result.rows, result.predicted, result.invalid) == (6, 4, 2)
    assert [r["row_id"] for r in predictions] == ["r0", "r1", "r2", "r3"]
    assert [(e["row_id"], e["field"]) for e in errors] == [("3", ""), ("5", "")]
    assert errors[0]["message"].startswith("not valid JSON: ")
    assert errors[1]["message"] == "each line must be a JSON object"
    assert np.max(np.abs(served(model, predictions) - model.native[:4])) <= 1e-12


def test_json_lines_without_ids_are_numbered_and_values_are_not_parsed_from_text():
    model, p = predictor_of("bc-lightgbm")
    row = dict(model.instances[0])
    text = json.dumps(row) + "\n" + json.dumps({**row, "mean radius": "12.5"}) + "\n"
    result, predictions, errors = run(p, text, "in.ndjson")
    assert [r["row_id"] for r in predictions] == ["1"]
    assert errors == [{"row_id": "2", "field": "mean radius", "message": "must be a number, got str"}]


def test_lines_that_are_not_utf8_or_not_csv_are_reported_alone():
    model, p = predictor_of("bc-lightgbm")
    lines = model.csv(4).encode().splitlines()
    lines[1] = lines[1].replace(b",", b",\xff", 1)
    lines[2] = lines[2].replace(b",", b',"1"2,', 1)
    result, predictions, errors = run(p, b"\n".join(lines), "x.csv")
    assert (result.rows, result.predicted, result.invalid) == (4, 2, 2)
    assert errors[0] == {"row_id": "1", "field": "", "message": "the line is not valid UTF-8"}
    assert errors[1]["row_id"] == "2" and errors[1]["message"].startswith("the line is not valid CSV: ")


def test_missing_value_words_and_booleans_in_csv_cells():
    features = [{"name": "x", "type": "numeric"}, {"name": "ok", "type": "boolean"},
                {"name": "c", "type": "categorical"}]
    assert batch._from_csv_text({"x": " NaN ", "ok": "TRUE", "c": "NA"}, features) == \
        {"x": None, "ok": True, "c": None}
    assert batch._from_csv_text({"x": "2.5", "ok": " 0 ", "c": "red"}, features) == \
        {"x": 2.5, "ok": False, "c": "red"}
    assert batch._from_csv_text({"x": "null", "ok": "yes", "c": ""}, features) == \
        {"x": None, "ok": "yes", "c": None}
    for word in ("", "nan", "NA", "n/a", "Null", "NONE"):
        assert batch._from_csv_text({"x": word}, features) == {"x": None}
    assert batch._from_csv_text({"x": "1,5"}, features) == {"x": "1,5"}
    assert batch._from_csv_text({"other": "1"}, features) == {"other": "1"}
    assert batch._from_csv_text({"ok": "false", "c": "blue"}, features) == {"ok": False, "c": "blue"}
    assert batch._from_csv_text({"ok": "1"}, features) == {"ok": True}


@pytest.mark.parametrize(
    ("data", "words"),
    [(b"", "the file is empty"), (b"\n\n", "the file is empty"),
     (b'a,"b\n1,2\n', "the header cannot be read"), (b"a,\xff\n1,2\n", "the header cannot be read"),
     (b"a,a\n1,2\n", "the header repeats a column name")],
)
def test_a_file_that_is_not_a_table_says_why(data, words):
    with pytest.raises(batch.UnsupportedFile) as caught:
        list(batch.read_rows(io.BytesIO(data), "in.csv"))
    assert str(caught.value).startswith(words)
    assert words != "the header repeats a column name" or str(caught.value) == words


def test_a_chunk_of_only_invalid_rows_does_not_stop_the_file():
    model, p = predictor_of("bc-lightgbm")
    lines = model.csv(6).splitlines()
    for i in (1, 2):
        lines[i] = "1,2"  # too few values
    result, predictions, errors = run(p, "\n".join(lines), "x.csv", chunk_rows=2)
    assert (result.rows, result.predicted, result.invalid) == (6, 4, 2)
    assert [r["row_id"] for r in predictions] == ["3", "4", "5", "6"]


def test_an_unsupported_file_type_is_refused():
    with pytest.raises(batch.UnsupportedFile, match="in.xlsx: use .csv, .jsonl, .ndjson"):
        batch.read_rows(io.BytesIO(b"x"), "in.xlsx")


def test_the_header_names_are_trimmed_and_a_bom_is_not_part_of_the_first_name():
    rows = list(batch.read_rows(io.BytesIO(b'\xef\xbb\xbf"id", a ,b\r\n7,1,2\r\n,3,4\r\n\xef\xbb\xbf8,5,6\n9,7\n'),
                                "x.csv"))
    assert [(r.id, r.values, r.problem) for r in rows] == [
        ("7", {"a": "1", "b": "2"}, None), (2, {"a": "3", "b": "4"}, None),
        ("\ufeff8", {"a": "5", "b": "6"}, None),  # a byte-order mark is one only at the start of the file
        ("9", {}, "2 values, but the header has 3 columns")]
    rows = list(batch.read_rows(io.BytesIO(b"a,id\n1\n"), "x.csv"))
    assert [(r.id, r.problem) for r in rows] == [(1, "1 values, but the header has 2 columns")]


def test_a_regression_model_writes_the_predicted_value():
    model = case("bc-catboost")
    arrays = {**model.arrays, "task": np.array("regression"), "link": np.array("identity")}
    fields = {**model.manifest_fields(), "classes": []}
    p = Predictor(bundle.Bundle(manifest={**fields, "name": "r", "version": 1}, arrays=arrays),
                  unknown_category="reject")
    result, predictions, _ = run(p, model.csv(5), "in.csv")
    assert result.predicted == 5
    assert list(predictions[0]) == ["row_id", "prediction"]
    raw = bundle.served_predictions(arrays, model.matrix[:5])[:, 0]
    assert [float(r["prediction"]) for r in predictions] == raw.tolist()


@pytest.fixture
def handler(s3, monkeypatch):
    model = case("bc-lightgbm")
    manifest = bundle.publish(s3, BUCKET, "breast-cancer", model.arrays, model.manifest_fields())
    bundle.set_champion(s3, BUCKET, "breast-cancer", manifest["version"], "test")
    monkeypatch.setenv("MODEL_BUCKET", BUCKET)
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "Test")
    import handlers.batch

    module = importlib.reload(handlers.batch)

    class Context:
        function_name, memory_limit_in_mb = "batch", 1769
        invoked_function_arn, aws_request_id = "arn:aws:lambda:us-east-1:0:function:batch", "r"

    def call(*keys):
        records = [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
                    "s3": {"bucket": {"name": BUCKET}, "object": {"key": key}}} for key in keys]
        return module.handler({"Records": records}, Context())

    return call


def outputs(s3):
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="batch/output/").get("Contents", []))


def text(s3, key):
    return s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode()


def test_the_handler_writes_outputs_next_to_the_input(s3, handler, caplog):
    import logging

    caplog.set_level(logging.INFO)
    model = case("bc-lightgbm")
    s3.put_object(Bucket=BUCKET, Key="batch/input/day 1.v2.csv", Body=model.csv(5).encode())
    answer = handler("batch/input/day+1.v2.csv")
    summary = {"input": "batch/input/day 1.v2.csv", "model": "breast-cancer", "rows": 5, "predicted": 5, "invalid": 0,
               "model_version": 1}
    assert answer == {"scored": [summary]}
    out = text(s3, "batch/output/day 1.v2.predictions.csv")
    assert out.count("\n") == 6 and "\r" not in out
    rows = list(csv.DictReader(io.StringIO(out)))
    assert np.max(np.abs(served(model, rows) - model.native[:5])) <= 1e-12
    assert outputs(s3) == ["batch/output/day 1.v2.predictions.csv"]
    [logged] = [r for r in caplog.records if r.getMessage() == "scored a file"]
    assert {k: getattr(logged, k) for k in summary} == summary


def test_the_handler_counts_rows_and_invalid_rows_as_metrics(s3, handler, capsys):
    from tests.unit.serving.test_api_handler import metrics_of

    model = case("bc-lightgbm")
    lines = model.csv(4).splitlines()
    lines[1] = "x," + lines[1].split(",", 1)[1]
    s3.put_object(Bucket=BUCKET, Key="batch/input/m.csv", Body="\n".join(lines).encode())
    capsys.readouterr()
    handler("batch/input/m.csv")
    metrics = metrics_of(capsys.readouterr().out)
    assert (metrics["BatchRows"], metrics["BatchInvalidRows"]) == ([4.0], [1.0])
    assert metrics["_units"]["BatchRows"] == metrics["_units"]["BatchInvalidRows"] == "Count"


def test_the_handler_writes_an_errors_file_when_rows_are_invalid(s3, handler):
    model = case("bc-lightgbm")
    lines = model.csv(3).splitlines()
    lines[2] = "x," + lines[2].split(",", 1)[1]
    s3.put_object(Bucket=BUCKET, Key="batch/input/b.csv", Body="\n".join(lines).encode())
    [summary] = handler("batch/input/b.csv")["scored"]
    assert (summary["rows"], summary["predicted"], summary["invalid"]) == (3, 2, 1)
    errors = list(csv.DictReader(io.StringIO(text(s3, "batch/output/b.errors.csv"))))
    assert errors == [{"row_id": "2", "field": "mean radius", "message": "must be a number, got str"}]


def test_a_file_that_is_not_a_table_gets_an_errors_file_saying_why(s3, handler, caplog):
    s3.put_object(Bucket=BUCKET, Key="batch/input/report.xlsx", Body=b"PK\x03\x04")
    s3.put_object(Bucket=BUCKET, Key="batch/input/empty.csv", Body=b"")
    answer = handler("batch/input/report.xlsx", "batch/input/empty.csv")
    assert answer["scored"] == [
        {"input": "batch/input/report.xlsx", "model": "breast-cancer", "model_version": 1,
         "unreadable": "report.xlsx: use .csv, .jsonl, .ndjson (CSV with a header, or JSON lines)"},
        {"input": "batch/input/empty.csv", "model": "breast-cancer", "model_version": 1,
         "unreadable": "the file is empty: a CSV needs a header of feature names"}]
    warned = [r for r in caplog.records if r.getMessage() == "not scored"]
    assert [(r.levelname, r.input, r.reason) for r in warned] == [
        ("WARNING", s["input"], s["unreadable"]) for s in answer["scored"]]
    assert outputs(s3) == ["batch/output/empty.errors.csv", "batch/output/report.errors.csv"]
    assert text(s3, "batch/output/empty.errors.csv") == (
        "row_id,field,message\n,,the file is empty: a CSV needs a header of feature names\n")


def test_a_file_in_a_models_folder_is_scored_by_that_model(s3, handler):
    penguins = case("penguins-catboost")
    manifest = bundle.publish(s3, BUCKET, "penguins", penguins.arrays, penguins.manifest_fields())
    bundle.set_champion(s3, BUCKET, "penguins", manifest["version"], "test")
    s3.put_object(Bucket=BUCKET, Key="batch/input/penguins/day.csv", Body=penguins.csv(6).encode())
    [summary] = handler("batch/input/penguins/day.csv")["scored"]
    assert (summary["model"], summary["predicted"]) == ("penguins", 6)
    rows = list(csv.DictReader(io.StringIO(text(s3, "batch/output/penguins/day.predictions.csv"))))
    assert np.max(np.abs(served(penguins, rows) - penguins.native[:6])) <= 1e-12


@pytest.mark.parametrize(("key", "reason"), [
    ("batch/input/ghost/day.csv", "no model named 'ghost' has been published"),
    ("batch/input/Bad Name/day.csv", "model name 'Bad Name' is not valid"),
])
def test_a_file_in_a_folder_that_names_no_model_gets_an_errors_file(s3, handler, key, reason):
    s3.put_object(Bucket=BUCKET, Key=key, Body=case("bc-lightgbm").csv(2).encode())
    [summary] = handler(key.replace(" ", "+"))["scored"]
    assert summary["unreadable"].startswith(reason)
    folder = key.split("/")[2]
    [error] = list(csv.DictReader(io.StringIO(text(s3, f"batch/output/{folder}/day.errors.csv"))))
    assert error["message"] == summary["unreadable"] and error["row_id"] == error["field"] == ""


def test_objects_outside_the_input_prefix_are_ignored(s3, handler):
    s3.put_object(Bucket=BUCKET, Key="batch/output/x.csv", Body=b"a\n1\n")
    assert handler("batch/output/x.csv") == {"scored": []}
    assert outputs(s3) == ["batch/output/x.csv"]


def test_without_a_champion_the_file_fails_loudly(s3, handler):
    s3.delete_object(Bucket=BUCKET, Key=bundle.champion_key("breast-cancer"))
    import handlers.batch

    module = importlib.reload(handlers.batch)
    with pytest.raises(RuntimeError, match="no champion to score batch/input/a.csv with: no champion has been "
                                           "promoted for model 'breast-cancer'"):
        module.score_object(BUCKET, "batch/input/a.csv")


def test_a_chunk_of_valid_rows_is_validated_in_one_pass(monkeypatch):
    model, p = predictor_of("bc-lightgbm")
    calls = []
    real = type(p.schema).rows

    def counted(schema, rows, form="instances"):
        calls.append(len(rows))
        return real(schema, rows, form)

    monkeypatch.setattr(type(p.schema), "rows", counted)
    run(p, model.csv(9), "in.csv", chunk_rows=4)
    assert calls == [4, 4, 1]
