"""Scoring text files by line: every row of a file is predicted or reported, whatever it holds."""

import io
import json

import numpy as np
import pytest
from serving.batch import rows as rows_module
from serving.batch import writer as writer_module
from serving.batch.lines import score_lines
from serving.model import bundle
from serving.model.predictor import Predictor, served_predictions

from tests.models import case
from tests.unit.serving.batch.helpers import predictor_of, run, served


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
            yield rows_module.Row(i + 1, dict(instance))

    class Watch(io.StringIO):
        def write(self, text):
            if text.count(",") and not text.startswith("row_id"):
                written.append(len(consumed))
            return super().write(text)

    written = []
    writer = writer_module.Writer(p, Watch(), io.StringIO(), headers=True)
    rows_module.score_rows(rows(), writer, csv_text=False, chunk_rows=7)
    result = writer.result
    assert result.predicted == len(model.instances) * 5
    total = len(model.instances) * 5
    # a chunk's answers are written after reading that chunk, not the file
    assert written == [min(7 * (k + 1), total) for k in range(-(-total // 7))]


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


def test_a_byte_order_mark_starts_a_json_lines_file_without_breaking_its_first_line():
    model, p = predictor_of()
    text = "\n".join(json.dumps(row) for row in model.instances[:3])
    result, predictions, errors = run(p, b"\xef\xbb\xbf" + text.encode(), "in.jsonl")
    assert (result.predicted, errors) == (3, [])
    assert list(rows_module.data_lines([b"\xef\xbb\xbf{}\n", b"\xef\xbb\xbf{}\n"])) == [b"{}\n", b"\xef\xbb\xbf{}\n"]


def test_a_rows_problems_are_reported_in_the_schemas_order():
    model, p = predictor_of("bc-lightgbm")
    names = [f["name"] for f in model.schema]
    assert names.index("mean radius") < names.index("mean perimeter")  # and "perimeter" < "radius"
    row = {**model.instances[0], "mean radius": "x", "mean perimeter": "y"}
    text = json.dumps(model.instances[1]) + "\n" + json.dumps(row) + "\n"
    result, _, errors = run(p, text, "in.jsonl")
    assert result.invalid == 1
    assert [(e["row_id"], e["field"]) for e in errors] == [("2", "mean radius"), ("2", "mean perimeter")]


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


@pytest.mark.parametrize(
    ("data", "words"),
    [(b"", "the file is empty"), (b"\n\n", "the file is empty"),
     (b'a,"b\n1,2\n', "the header cannot be read"), (b"a,\xff\n1,2\n", "the header cannot be read"),
     (b"a,a\n1,2\n", "the header repeats a column name")],
)
def test_a_file_that_is_not_a_table_says_why(data, words):
    with pytest.raises(rows_module.UnsupportedFile) as caught:
        score_lines(io.BytesIO(data), "in.csv", predictor_of()[1], io.StringIO(), io.StringIO())
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
    with pytest.raises(rows_module.UnsupportedFile, match="in.xlsx: use .csv, .jsonl, .ndjson, .parquet"):
        score_lines(io.BytesIO(b"x"), "in.xlsx", predictor_of()[1], io.StringIO(), io.StringIO())


def test_a_regression_model_writes_the_predicted_value():
    model = case("bc-catboost")
    arrays = {**model.arrays, "task": np.array("regression"), "link": np.array("identity")}
    fields = {**model.manifest_fields(), "classes": []}
    p = Predictor(bundle.Bundle(manifest={**fields, "name": "r", "version": 1}, arrays=arrays),
                  unknown_category="reject")
    result, predictions, _ = run(p, model.csv(5), "in.csv")
    assert result.predicted == 5
    assert list(predictions[0]) == ["row_id", "prediction"]
    raw = served_predictions(arrays, model.matrix[:5])[:, 0]
    assert [(r["row_id"], float(r["prediction"])) for r in predictions] == list(zip("12345", raw.tolist()))


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


def test_a_part_is_scored_with_the_files_header_its_first_row_number_and_no_headers_of_its_own():
    model, p = predictor_of("bc-lightgbm")
    header, *rows = model.csv(6).splitlines()
    part = ("\n".join(rows[3:]) + "\n").encode()
    predictions, errors = io.StringIO(), io.StringIO()
    result = score_lines(io.BytesIO(part), "in.csv", p, predictions, errors, header=header.split(","),
                               first_row=4, at_file_start=False, headers=False)
    assert (result.rows, errors.getvalue()) == (3, "")
    assert [line.split(",")[0] for line in predictions.getvalue().splitlines()] == ["4", "5", "6"]
    # a byte-order mark is the file's start only: in a later part it is a bad value
    bom = b"\xef\xbb\xbf" + part
    result = score_lines(io.BytesIO(bom), "in.csv", p, io.StringIO(), errors := io.StringIO(),
                               header=header.split(","), at_file_start=False, headers=False)
    assert (result.invalid, errors.getvalue().split(",")[0]) == (1, "1")


def test_rows_are_counted_as_the_scorer_numbers_them():
    data = b"\xef\xbb\xbf\n a,b\n1,2\n\n \t\n3,4\r\n5"
    assert rows_module.count_rows(io.BytesIO(data)) == 4
    assert rows_module.count_rows(io.BytesIO(b"\xef\xbb\xbf\n"), at_file_start=True) == 0
    assert rows_module.count_rows(io.BytesIO(b"\xef\xbb\xbf\n"), at_file_start=False) == 1
    assert rows_module.count_rows([]) == 0




def labelled_predictor(name="penguins-lightgbm", **fields):
    model = case(name)
    manifest = {**model.manifest_fields(), "name": "p", "version": 1, **fields}
    return model, Predictor(bundle.Bundle(manifest=manifest, arrays=model.arrays), unknown_category="reject")


def file_of(rows: list[dict], form: str) -> bytes:
    """Rows as a CSV (the first row's columns, empty for None) or as JSON lines."""
    if form == "jsonl":
        return "\n".join(json.dumps(r) for r in rows).encode()
    names = list(rows[0])
    return "\n".join([",".join(names), *(",".join("" if r[n] is None else str(r[n]) for n in names)
                                         for r in rows)]).encode()


def score_whole(predictor, data: bytes, name: str):
    predictions, errors = io.StringIO(), io.StringIO()
    result = score_lines(io.BytesIO(data), name, predictor, predictions, errors, chunk_rows=2)
    return result, predictions.getvalue().splitlines()


@pytest.mark.parametrize("form", ["csv", "jsonl"])
def test_a_whole_file_with_the_target_is_labelled_by_its_header_or_first_line(form):
    model, p = labelled_predictor(target="species")
    rows = [{**model.instances[i], "species": model.labels[i]} for i in range(5)]
    data = file_of(rows, form)
    result, lines = score_whole(p, data, f"in.{form}")
    assert lines[0].split(",")[-1] == "actual" and [line.split(",")[-1] for line in lines[1:]] == model.labels[:5]
    actuals, output = result.evaluated
    assert actuals == model.labels[:5] and output.shape == (5, len(model.classes))


def test_json_lines_are_labelled_only_when_the_first_line_has_the_target():
    model, p = labelled_predictor(target="species")
    rows = [dict(model.instances[i]) for i in range(3)]
    rows[1]["species"] = model.labels[1]
    result, lines = score_whole(p, "\n".join(json.dumps(r) for r in rows).encode(), "in.jsonl")
    assert "actual" not in lines[0] and result.evaluated is None and result.predicted == 3


@pytest.mark.parametrize("form", ["csv", "jsonl"])
def test_a_column_named_like_the_target_is_a_column_when_the_model_names_no_target(form):
    model, p = labelled_predictor()
    rows = [{**model.instances[i], "species": model.labels[i]} for i in range(2)]
    data = file_of(rows, form)
    result, lines = score_whole(p, data, f"in.{form}")
    assert "actual" not in lines[0] and result.evaluated is None


@pytest.mark.parametrize(("name", "task"), [("penguins-lightgbm", "classification"), ("bc-catboost", "regression")])
def test_a_labelled_file_without_rows_has_nothing_to_evaluate(name, task):
    model, p = labelled_predictor(name, target="y")
    if task == "regression":
        arrays = {**model.arrays, "task": np.array("regression"), "link": np.array("identity")}
        manifest = {**model.manifest_fields(), "classes": [], "name": "r", "version": 1, "target": "y"}
        p = Predictor(bundle.Bundle(manifest=manifest, arrays=arrays), unknown_category="reject")
    header = ",".join([*model.instances[0], "y"]).encode()
    for data, form in ((header + b"\n", "csv"), (b"", "jsonl"), (b"\n\n", "jsonl")):
        result, lines = score_whole(p, data, f"in.{form}")
        if form == "csv":
            actuals, output = result.evaluated
            assert actuals == [] and output.shape == (0, len(model.classes) if task == "classification" else 1)
            assert lines[0].split(",")[-1] == "actual"
        else:
            assert result.evaluated is None and result.rows == 0


@pytest.mark.parametrize("first", ["rownames", "id"])
def test_a_numeric_file_takes_its_ids_from_the_models_id_column_or_id_on_the_fast_path(first, monkeypatch):
    from serving.batch import lines as lines_module

    model, p = labelled_predictor("bc-lightgbm", id_column="rownames")
    names = [f["name"] for f in model.schema]
    data = "\n".join([",".join([first, *names]),
                      *(",".join([f"r{i}", *(str(model.instances[i][n]) for n in names)]) for i in range(4))])
    fast = []
    real = lines_module.score_numeric_csv
    monkeypatch.setattr(lines_module, "score_numeric_csv", lambda *a, **k: fast.append(1) or real(*a, **k))
    result, lines = score_whole(p, data.encode(), "in.csv")
    assert fast == [1] and result.predicted == 4
    assert [line.split(",")[0] for line in lines[1:]] == ["r0", "r1", "r2", "r3"]


@pytest.mark.parametrize(("form", "data"), [
    ("csv", None),  # a CSV whose header has no target column
    ("jsonl", b'{"broken\n'),  # a first line that is not JSON
])
def test_a_file_without_the_models_target_is_not_labelled(form, data):
    model, p = labelled_predictor(target="species")
    if data is None:
        names = list(model.instances[0])
        data = "\n".join([",".join(names), ",".join("" if model.instances[0][n] is None else str(model.instances[0][n])
                                                   for n in names)]).encode()
    else:
        data += json.dumps(model.instances[0]).encode()
    result, lines = score_whole(p, data, f"in.{form}")
    assert "actual" not in lines[0] and result.evaluated is None and result.rows >= 1
