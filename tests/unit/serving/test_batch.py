"""Batch scoring: every row of a dropped file is predicted or reported, whatever the file holds."""

import csv
import io
import json
import sys
from unittest import mock

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from serving.batch import csvfile, parquet
from serving.batch import rows as rows_module
from serving.batch import writer as writer_module
from serving.batch.lines import score_lines
from serving.model import bundle
from serving.model.predictor import Predictor, served_predictions

from tests.models import case


def predictor_of(name="penguins-lightgbm"):
    model = case(name)
    loaded = bundle.Bundle(manifest={**model.manifest_fields(), "name": "p", "version": 1}, arrays=model.arrays)
    return model, Predictor(loaded, unknown_category="reject")


def row_reader():
    """score_lines reading every CSV row as typed values, as it does a file with a text column:
    the reference the numeric fast path is checked against."""
    return mock.patch("serving.batch.lines.numeric_columns", return_value=None)


def csv_rows(data: bytes) -> list:
    lines = rows_module.data_lines(io.BytesIO(data))
    return list(csvfile.csv_rows(lines, csvfile.read_header(next(lines, None)), 1))


def run(predictor, data: bytes | str, name: str, chunk_rows=3):
    if isinstance(data, str):
        data = data.encode()
    predictions, errors = io.StringIO(), io.StringIO()
    with row_reader():
        result = score_lines(io.BytesIO(data), name, predictor, predictions, errors, chunk_rows=chunk_rows)
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


@given(st.one_of(st.none(), st.text(), st.text(alphabet=',"\n\r a\u00e9'), st.integers(), st.floats(allow_nan=False)))
@example('say "hi"')
@example("a\nb")
@example("a\rb")
@example("a,b")
@example(None)
@example("")
def test_a_field_is_spelled_as_csv_writer_spells_it(value):
    out = io.StringIO()
    csv.writer(out).writerow([value, "end"])  # the excel dialect; not alone: alone, "" is quoted
    assert writer_module.csv_field(value) + ",end\r\n" == out.getvalue()


def test_ids_that_need_quoting_come_back_as_they_were_given():
    model, p = predictor_of()
    ids = ['say "hi"', "two\nlines", "carriage\rreturn", "a,b", 1.5, True, [1, 2]]
    lines = [json.dumps({"id": i, **row}) for i, row in zip(ids, model.instances, strict=False)]
    predictions, errors = io.StringIO(), io.StringIO()  # not run(): an id's own \r is kept, quoted
    result = score_lines(io.BytesIO("\n".join(lines).encode()), "in.jsonl", p, predictions, errors)
    assert (result.predicted, errors.getvalue()) == (len(ids), "row_id,field,message\n")
    assert predictions.getvalue().splitlines()[1].startswith('"say ""hi""",')  # as csv.writer quotes it
    predictions.seek(0)
    assert [r["row_id"] for r in csv.DictReader(predictions)] == [i if type(i) is str else str(i) for i in ids]


def test_an_error_line_with_a_carriage_return_in_its_id_or_field_reads_back_as_one_line():
    model, p = predictor_of()
    rows = [{"id": "cr\rid", **model.instances[0], "odd\rname": 1}, {"id": "ok", **model.instances[1]}]
    predictions, errors = io.StringIO(), io.StringIO()
    score_lines(io.BytesIO("\n".join(map(json.dumps, rows)).encode()), "in.jsonl", p, predictions, errors)
    errors.seek(0)
    assert [(e["row_id"], e["field"], e["message"]) for e in csv.DictReader(errors)] == [
        ("cr\rid", "odd\rname", "unknown feature")]
    predictions.seek(0)
    assert [r["row_id"] for r in csv.DictReader(predictions)] == ["ok"]


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


def test_missing_value_words_and_booleans_in_csv_cells():
    features = [{"name": "x", "type": "numeric"}, {"name": "ok", "type": "boolean"},
                {"name": "c", "type": "categorical"}]
    assert rows_module.from_csv_text({"x": " NaN ", "ok": "TRUE", "c": "NA"}, features) == \
        {"x": None, "ok": True, "c": None}
    assert rows_module.from_csv_text({"x": "2.5", "ok": " 0 ", "c": "red"}, features) == \
        {"x": 2.5, "ok": False, "c": "red"}
    assert rows_module.from_csv_text({"x": "null", "ok": "yes", "c": ""}, features) == \
        {"x": None, "ok": "yes", "c": None}
    for word in ("", "nan", "NA", "n/a", "Null", "NONE"):
        assert rows_module.from_csv_text({"x": word}, features) == {"x": None}
    assert rows_module.from_csv_text({"x": "1,5"}, features) == {"x": "1,5"}
    assert rows_module.from_csv_text({"other": "1"}, features) == {"other": "1"}
    assert rows_module.from_csv_text({"ok": "false", "c": "blue"}, features) == {"ok": False, "c": "blue"}
    assert rows_module.from_csv_text({"ok": "1"}, features) == {"ok": True}


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


def test_the_header_names_are_trimmed_and_a_bom_is_not_part_of_the_first_name():
    rows = csv_rows(b'\xef\xbb\xbf"id", a ,b\r\n7,1,2\r\n,3,4\r\n\xef\xbb\xbf8,5,6\n9,7\n')
    assert [(r.id, r.values, r.problem) for r in rows] == [
        ("7", {"a": "1", "b": "2"}, None), (2, {"a": "3", "b": "4"}, None),
        ("\ufeff8", {"a": "5", "b": "6"}, None),  # a byte-order mark is one only at the start of the file
        ("9", {}, "2 values, but the header has 3 columns")]
    rows = csv_rows(b"a,id\n1\n")
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


def test_the_csv_screen_finds_an_empty_cell_at_either_end_of_any_line():
    bodies = [b"1,2,3", b",2,3", b"1,,3", b"1,2,", b"-1,-2,-3", b"1,2,"]
    plain = csvfile._plain_lines(b"\n".join(bodies), bodies, b",,")
    assert plain.tolist() == [True, False, False, False, True, False]
    bodies = [b"", b"1,,3", b"1,2,3"]  # a line of only an id leaves nothing for the screen
    assert csvfile._plain_lines(b"\n".join(bodies), bodies, b",,").tolist() == [False, False, True]


SCREENED = st.sampled_from(["1", "-2.5", "1e5", "+.", "", "a", " ", '"3"', "nan"])


@settings(max_examples=200, deadline=None)
@given(lines=st.lists(st.lists(SCREENED, min_size=1, max_size=4), min_size=1, max_size=8),
       width=st.integers(2, 4))
def test_the_csv_screen_passes_exactly_the_lines_of_non_empty_number_cells_between_the_headers_commas(
        lines, width):
    bodies = [",".join(cells).encode() for cells in lines]
    expected = [len(cells) == width and all(c and set(c.encode()) <= set(csvfile.NUMBER_BYTES) for c in cells)
                for cells in lines]
    assert csvfile._plain_lines(b"\n".join(bodies), bodies, b"," * (width - 1)).tolist() == expected


def both_readers(predictor, data: bytes, chunk_rows=4):
    """The file through score_lines (the numeric fast path) and through the row-by-row reader."""
    fast = (io.StringIO(), io.StringIO())
    result = score_lines(io.BytesIO(data), "in.csv", predictor, *fast, chunk_rows=chunk_rows)
    slow = (io.StringIO(), io.StringIO())
    with row_reader():
        expected = score_lines(io.BytesIO(data), "in.csv", predictor, *slow, chunk_rows=chunk_rows)
    return (result, fast[0].getvalue(), fast[1].getvalue()), (expected, slow[0].getvalue(), slow[1].getvalue())


CELLS = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, width=64).map(repr),
    st.integers(-10**6, 10**6).map(str),
    st.sampled_from(["", "nan", "NA", "1e", "-", "+5", " 3 ", '"7"', "1e999", "-1e999", "0x1", "1,5", "١", "½",
                     "1_000", "١٢", ".5", "5.", "-.5e-3", "1E5", "inf"]),
)


@settings(max_examples=150, deadline=None)
@given(rows=st.lists(st.lists(CELLS, min_size=29, max_size=31), min_size=1, max_size=12),
       shuffle=st.randoms(use_true_random=False), with_id=st.booleans(), blank=st.booleans())
def test_the_numeric_fast_path_reads_every_line_as_the_row_reader_does(rows, shuffle, with_id, blank):
    model, p = predictor_of("bc-lightgbm")
    names = [f["name"] for f in model.schema]
    shuffle.shuffle(names)
    header = (["id"] if with_id else []) + names
    lines = [",".join(header)]
    for i, row in enumerate(rows):
        lines.append(",".join(([f"r{i}" if i % 3 else ""] if with_id else []) + row))
        if blank and i == 1:
            lines.append("  ")
    fast, slow = both_readers(p, ("\r\n".join(lines) + "\n").encode())
    assert fast == slow


def test_the_numeric_fast_path_gives_the_row_readers_numbers_on_real_rows():
    model, p = predictor_of("bc-catboost")
    data = model.csv(50).encode()
    (result, predictions, errors), slow = both_readers(p, data, chunk_rows=16)
    assert (result, predictions, errors) == slow
    assert (result.rows, result.predicted) == (50, 50)
    served_rows = list(csv.DictReader(io.StringIO(predictions)))
    assert np.max(np.abs(served(model, served_rows) - model.native[:50])) <= 1e-12


def test_a_file_is_read_by_the_fast_path_only_when_every_column_is_a_numeric_feature(monkeypatch):
    model, p = predictor_of("bc-lightgbm")
    used = []
    real = csvfile._parse_numbers
    monkeypatch.setattr(csvfile, "_parse_numbers", lambda text, rows, width: used.append(rows) or real(text, rows, width))
    header, *rows = model.csv(5).splitlines()
    for text in (model.csv(5), f"id,{header}\n" + "\n".join(f"{i},{r}" for i, r in enumerate(rows))):
        score_lines(io.BytesIO(text.encode()), "in.csv", p, io.StringIO(), io.StringIO())
    assert used == [5, 5]
    for text in (f"{header},extra\n" + "\n".join(f"{r},1" for r in rows),  # a column the model does not read
                 f"{header.split(',', 1)[1]},id\n" + "\n".join(f"{r.split(',', 1)[1]},1" for r in rows)):
        score_lines(io.BytesIO(text.encode()), "in.csv", p, io.StringIO(), io.StringIO())
    assert used == [5, 5]
    penguins, q = predictor_of("penguins-lightgbm")  # categorical features: the row reader
    score_lines(io.BytesIO(penguins.csv(5).encode()), "in.csv", q, io.StringIO(), io.StringIO())
    assert used == [5, 5]


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


@settings(max_examples=100, deadline=None)
@given(values=st.lists(st.floats(allow_nan=False, allow_infinity=False, width=64), min_size=2, max_size=40,
                       unique=True).filter(lambda v: len(v) % 2 == 0),
       ids=st.sampled_from(["numbers", "text"]))
def test_written_predictions_read_back_as_the_same_doubles_with_their_ids_quoted_as_csv_quotes_them(values, ids):
    _, p = predictor_of("bc-catboost")
    output = np.array(values).reshape(-1, 2)
    row_ids = list(range(1, len(output) + 1)) if ids == "numbers" else [f'r,"{i}"' for i in range(len(output))]
    text = writer_module.Writer(p, io.StringIO(), io.StringIO(), headers=False).lines(row_ids, output)
    rows = list(csv.reader(io.StringIO(text)))
    assert [r[0] for r in rows] == [str(i) for i in row_ids]
    assert [r[1] for r in rows] == [str(p.classes[k]) for k in output.argmax(axis=1)]
    assert np.array_equal(np.array([[float(v) for v in r[2:]] for r in rows]), output)


def test_a_prediction_that_is_not_finite_is_written_as_python_spells_it():
    _, p = predictor_of("bc-catboost")
    text = writer_module.Writer(p, io.StringIO(), io.StringIO(), headers=False).lines([1, 2], np.array(
        [[np.inf, 0.25], [0.5, np.nan]]))
    assert text.splitlines() == [f"1,{p.classes[0]},inf,0.25", f"2,{p.classes[1]},0.5,nan"]  # argmax of NaN


def parquet_of(columns: dict, row_group_size: int = 16) -> io.BytesIO:
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = io.BytesIO()
    pq.write_table(pa.table(columns), out, row_group_size=row_group_size)
    out.seek(0)
    return out


def score_parquet(predictor, file, **options):
    predictions, errors = io.StringIO(), io.StringIO()
    result = parquet.score_parquet(file, predictor, predictions, errors, **options)
    return result, predictions.getvalue(), errors.getvalue()


def columns_of(model, rows: int) -> dict:
    return {f["name"]: [instance[f["name"]] for instance in model.instances[:rows]] for f in model.schema}


@pytest.mark.parametrize("name", ["bc-catboost", "penguins-lightgbm"])  # all numeric; categoricals
def test_a_parquet_file_gives_what_the_same_rows_as_a_csv_give(name):
    model, p = predictor_of(name)
    columns = columns_of(model, 40)
    first = model.schema[0]["name"]
    columns[first][5] = None  # a null: missing, reported where the feature never was
    with_nan = next(f["name"] for f in model.schema if f["type"] == "numeric")
    columns[with_nan][9] = float("nan")  # NaN is missing too, as in a CSV
    rows = list(zip(*columns.values(), strict=True))
    text = ",".join(columns) + "\n" + "\n".join(
        ",".join("" if v is None or v != v else str(v) for v in row) for row in rows) + "\n"
    from_csv = score_lines(io.BytesIO(text.encode()), "x.csv", p, csv_out := io.StringIO(),
                                 csv_errors := io.StringIO(), chunk_rows=7)
    result, predictions, errors = score_parquet(p, parquet_of(columns), chunk_rows=7)
    assert (result.rows, result.predicted, result.invalid) == (from_csv.rows, from_csv.predicted,
                                                               from_csv.invalid)
    assert result.row_groups == 3 and result.invalid >= 1
    assert predictions == csv_out.getvalue()
    assert errors == csv_errors.getvalue()


def test_a_parquet_files_row_groups_are_scored_with_their_first_row_number_and_an_id_column():
    model, p = predictor_of("bc-catboost")
    columns = columns_of(model, 40)
    file = parquet_of({"id": [f"r{i}" if i % 5 else None for i in range(40)], **columns}, row_group_size=10)
    assert parquet.parquet_row_groups(file) == [10, 10, 10, 10]
    result, predictions, errors = score_parquet(p, file, row_groups=(1, 3), first_row=11, headers=False)
    assert (result.rows, result.predicted, result.row_groups) == (20, 20, 2)
    ids = [line.split(",")[0] for line in predictions.splitlines()]
    assert ids == [f"r{i}" if i % 5 else str(i + 1) for i in range(10, 30)]  # a null id: the row number
    served = np.array([[float(v) for v in line.split(",")[2:]] for line in predictions.splitlines()])
    assert np.max(np.abs(served - model.native[10:30])) <= 1e-12
    assert errors == ""


def test_parquet_values_of_the_wrong_type_or_unknown_columns_are_reported_per_row():
    import datetime

    model, p = predictor_of("penguins-lightgbm")
    columns = columns_of(model, 6)
    numeric = next(f["name"] for f in model.schema if f["type"] == "numeric")
    columns[numeric] = [str(v) for v in columns[numeric]]  # numbers written as text
    result, _, errors = score_parquet(p, parquet_of(columns))
    assert (result.rows, result.invalid) == (6, 6)
    assert errors.splitlines()[1:] == [f'{i},{numeric},"must be a number, got str"' for i in range(1, 7)]
    extra = {**columns_of(model, 3), "when": [datetime.date(2024, 1, 2)] * 3}
    result, _, errors = score_parquet(p, parquet_of(extra))
    assert (result.rows, result.invalid) == (3, 3)
    assert errors.splitlines()[1:] == [f"{i},when,unknown feature" for i in (1, 2, 3)]


def test_a_file_that_is_not_parquet_is_refused_and_lines_of_one_are_not_read():
    _, p = predictor_of("bc-catboost")
    for data in (b"", b"PAR1 not really", b"a,b\n1,2\n"):
        with pytest.raises(rows_module.UnsupportedFile, match="not a Parquet file"):
            parquet.parquet_row_groups(io.BytesIO(data))
        with pytest.raises(rows_module.UnsupportedFile, match="not a Parquet file"):
            score_parquet(p, io.BytesIO(data))
    with pytest.raises(rows_module.UnsupportedFile, match="row groups"):
        score_lines(io.BytesIO(b"PAR1"), "x.parquet", p, io.StringIO(), io.StringIO())


@pytest.mark.parametrize("name", ["bc-catboost", "penguins-lightgbm"])  # all numeric; categoricals
def test_a_parquet_file_from_a_filtered_dataframe_is_read_without_its_index_and_blank_ids_are_numbered(name):
    import pandas as pd

    model, p = predictor_of(name)
    frame = pd.DataFrame(columns_of(model, 12)).iloc[[0, 3, 4, 8]]  # its index is not 0..n-1 any more
    frame.insert(0, "id", ["a", "", "  ", None])
    file = io.BytesIO()
    frame.to_parquet(file)
    file.seek(0)
    result, predictions, errors = score_parquet(p, file)
    assert (result.rows, result.predicted, result.invalid) == (4, 4, 0) and errors.count("\n") == 1
    assert [line.split(",")[0] for line in predictions.splitlines()[1:]] == ["a", "2", "3", "4"]
    served = np.array([[float(v) for v in line.split(",")[2:]] for line in predictions.splitlines()[1:]])
    assert np.max(np.abs(served - model.native[[0, 3, 4, 8]])) <= 1e-12


def test_parquet_timestamps_in_nanoseconds_are_read_as_python_holds_them(monkeypatch):
    import datetime

    import pyarrow as pa

    model, p = predictor_of("penguins-lightgbm")
    columns = columns_of(model, 3)
    stamps = pa.array([1_700_000_000_000_000_001, None, 5], pa.timestamp("ns", "UTC"))
    table = pa.table({**columns, "when": stamps})
    chunk = parquet._microseconds(table.to_batches()[0], pa)
    assert chunk.schema.field("when").type == pa.timestamp("us", "UTC")
    monkeypatch.setitem(sys.modules, "pandas", None)  # as on Lambda: pyarrow cannot hand back pd.Timestamp
    rows = parquet._parquet_rows(chunk, [1, 2, 3], pa)
    assert [r.values["when"] for r in rows] == [
        datetime.datetime(2023, 11, 14, 22, 13, 20, tzinfo=datetime.UTC).isoformat(), None,
        datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC).isoformat()]
    result, _, errors = score_parquet(p, parquet_of({**columns, "when": stamps}))
    assert (result.rows, result.invalid) == (3, 3)  # every row read and reported (the model has no "when")
    assert errors.splitlines()[1:] == [f"{i},when,unknown feature" for i in (1, 2, 3)]


def test_a_parquet_chunk_python_cannot_hold_has_every_row_reported():
    import pyarrow as pa

    class Unreadable:  # as pyarrow fails on a value Python's types cannot hold
        def to_pylist(self):
            raise ValueError("Nanosecond resolution temporal type 1 is not safely convertible")

    rows = parquet._parquet_rows(Unreadable(), [1, "r2"], pa)
    assert [(r.id, r.problem) for r in rows] == [
        (i, "the row's values cannot be read: Nanosecond resolution temporal type 1 is not safely convertible")
        for i in (1, "r2")]


def test_parquet_times_in_nanoseconds_become_microseconds_and_a_chunk_without_any_is_kept_as_it_is():
    import datetime

    import pyarrow as pa

    times = pa.array([1_000_001_999, None], pa.time64("ns"))  # 1 s, 1 µs and 999 ns: the ns are dropped
    chunk = pa.RecordBatch.from_arrays([times, pa.array([1.0, 2.0])], names=["at", "x"])
    cast = parquet._microseconds(chunk, pa)
    assert cast.schema.names == ["at", "x"] and cast.schema.field("at").type == pa.time64("us")
    assert cast.column("at").to_pylist() == [datetime.time(0, 0, 1, 1), None]
    plain = pa.RecordBatch.from_arrays([pa.array([1, 2]), pa.array(["a", "b"])], names=["n", "s"])
    assert parquet._microseconds(plain, pa) is plain  # nothing to change: not rebuilt


def counted_parquet_rows(monkeypatch) -> list[int]:
    """The rows the typed (row by row) Parquet reader is asked to check, chunk by chunk."""
    calls = []
    real = parquet._parquet_rows
    monkeypatch.setattr(parquet, "_parquet_rows", lambda chunk, ids, pa: calls.append(len(ids)) or real(chunk, ids, pa))
    return calls


def test_an_all_numeric_parquet_file_is_read_column_by_column_and_only_rows_with_a_gap_one_by_one(monkeypatch):
    import pyarrow as pa

    model, p = predictor_of("bc-catboost")
    checked = counted_parquet_rows(monkeypatch)
    columns = columns_of(model, 20)
    first = model.schema[0]["name"]
    columns[first][3] = None
    result, predictions, errors = score_parquet(p, parquet_of(columns), chunk_rows=10)
    assert checked == [1]  # the null's row, in the first chunk; the second chunk in one piece
    assert (result.rows, result.invalid) == (20, 1) and errors.splitlines()[1].startswith(f"4,{first},")
    # integer columns and an id column keep the file on the fast path
    columns = {"id": [f"r{i}" for i in range(20)], **columns_of(model, 20)}
    columns[first] = pa.array(np.round(columns[first]).astype(np.int64))
    result, predictions, _ = score_parquet(p, parquet_of(columns), chunk_rows=10)
    assert checked == [1] and result.predicted == 20
    assert [line.split(",")[0] for line in predictions.splitlines()[1:]] == columns["id"]


@pytest.mark.parametrize("extra", [
    {"note": ["a"] * 6},  # a column the model does not read, of text
    {"weight": [1.0] * 6},  # ... or of numbers
])
def test_a_parquet_file_with_a_column_the_model_does_not_read_is_checked_row_by_row(monkeypatch, extra):
    model, p = predictor_of("bc-catboost")
    checked = counted_parquet_rows(monkeypatch)
    result, _, errors = score_parquet(p, parquet_of({**columns_of(model, 6), **extra}))
    assert checked == [6] and (result.rows, result.invalid) == (6, 6)
    assert errors.splitlines()[1:] == [f"{i},{next(iter(extra))},unknown feature" for i in range(1, 7)]


def test_a_numeric_model_with_a_text_column_in_the_parquet_file_is_checked_row_by_row(monkeypatch):
    model, p = predictor_of("bc-catboost")
    checked = counted_parquet_rows(monkeypatch)
    columns = columns_of(model, 4)
    first = model.schema[0]["name"]
    columns[first] = [str(v) for v in columns[first]]
    result, _, errors = score_parquet(p, parquet_of(columns))
    assert checked == [4] and result.invalid == 4
    assert errors.splitlines()[1] == f'1,{first},"must be a number, got str"'


def test_a_parquet_row_group_is_scored_a_chunk_at_a_time(monkeypatch):
    model, p = predictor_of("bc-lightgbm")
    sizes = []
    real = parquet._score_parquet_chunk
    monkeypatch.setattr(parquet, "_score_parquet_chunk",
                        lambda chunk, *args: sizes.append(chunk.num_rows) or real(chunk, *args))
    result, _, _ = score_parquet(p, parquet_of(columns_of(model, 10), row_group_size=10), chunk_rows=3)
    assert sizes == [3, 3, 3, 1] and result.predicted == 10  # memory bounded by the chunk, not the group


def test_a_parquet_row_groups_columns_are_read_in_one_request():
    model, p = predictor_of("bc-catboost")
    rng = np.random.default_rng(0)  # bigger than the footer's first read (64 KiB), which would hold it all
    data = parquet_of({f["name"]: rng.random(4000) for f in model.schema}, row_group_size=2000).getvalue()

    class Counting(io.RawIOBase):  # as the worker's ranged reads of S3: each read is one request
        def __init__(self):
            self.data, self.reads = io.BytesIO(data), 0

        def readable(self):
            return True

        def seekable(self):
            return True

        def seek(self, offset, whence=io.SEEK_SET):
            return self.data.seek(offset, whence)

        def tell(self):
            return self.data.tell()

        def readinto(self, buffer):
            self.reads += 1
            return self.data.readinto(buffer)

    file = Counting()
    result, _, _ = score_parquet(p, file, row_groups=(1, 2))
    assert result.predicted == 2000
    assert file.reads <= 3  # the footer, then the row group's 30 columns together (not one read each)


class _Delegating:
    """A Parquet record batch whose ids, or whose values, Python cannot hold (as ns durations
    without pandas): the calls the scorer makes are passed on, those two fail."""

    def __init__(self, chunk, fail_ids=False, fail_values=False):
        self.chunk, self.fail_ids, self.fail_values = chunk, fail_ids, fail_values

    def __getattr__(self, name):
        return getattr(self.chunk, name)

    def column(self, name):
        if name == "id" and self.fail_ids:
            raise ValueError("Nanosecond resolution temporal type 1 is not safely convertible")
        return self.chunk.column(name)

    def take(self, indices):
        return _Delegating(self.chunk.take(indices), self.fail_ids, self.fail_values)

    def to_pylist(self):
        if self.fail_values:
            raise ValueError("not safely convertible")
        return self.chunk.to_pylist()


@pytest.mark.parametrize("name", ["bc-catboost", "penguins-lightgbm"])  # fast path; row by row
def test_parquet_ids_or_values_python_cannot_hold_give_row_numbers_or_reported_rows(name):
    import pyarrow as pa

    model, p = predictor_of(name)
    columns = columns_of(model, 4)
    first = model.schema[0]["name"]
    columns[first][1] = None
    chunk = pa.table({"id": ["a", "b", "c", "d"], **columns}).to_batches()[0]
    numeric = name.startswith("bc")
    writer = writer_module.Writer(p, predictions := io.StringIO(), errors := io.StringIO(), False)
    assert parquet._score_parquet_chunk(_Delegating(chunk, fail_ids=True), 11, writer, numeric, pa) == 15
    assert [line.split(",")[0] for line in predictions.getvalue().splitlines()] == ["11", "13", "14"]
    assert errors.getvalue().startswith(f"12,{first},")
    writer = writer_module.Writer(p, io.StringIO(), errors := io.StringIO(), False)
    assert parquet._score_parquet_chunk(_Delegating(chunk, fail_values=True), 1, writer, numeric, pa) == 5
    assert writer.result.invalid == (1 if numeric else 4)  # the rows checked one by one are reported
    assert "b,,the row's values cannot be read: not safely convertible" in errors.getvalue().splitlines()


def test_parquet_decimals_are_read_as_numbers():
    import decimal

    import pyarrow as pa

    model, p = predictor_of("penguins-lightgbm")
    columns = columns_of(model, 5)
    numeric = next(f["name"] for f in model.schema if f["type"] == "numeric")
    as_decimals = {**columns, numeric: pa.array([decimal.Decimal(str(v)) for v in columns[numeric]],
                                                pa.decimal128(12, 4))}
    assert score_parquet(p, parquet_of(as_decimals))[1] == score_parquet(p, parquet_of(columns))[1]


def test_a_parquet_file_of_no_rows_gives_the_headers_only():
    import pyarrow as pa

    model, p = predictor_of("bc-catboost")
    empty = {f["name"]: pa.array([], pa.float64()) for f in model.schema}
    result, predictions, errors = score_parquet(p, parquet_of(empty))
    assert (result.rows, result.predicted, result.invalid) == (0, 0, 0)
    assert predictions.splitlines() == [",".join(writer_module.output_header(p))] and errors.count("\n") == 1
    writer = writer_module.Writer(p, out := io.StringIO(), io.StringIO(), False)  # a record batch of no rows
    assert parquet._score_parquet_chunk(pa.RecordBatch.from_pydict(empty), 7, writer, True, pa) == 7
    assert out.getvalue() == "" and writer.result.rows == 0


def rows_read_one_by_one(monkeypatch) -> list[int]:
    """The numbers of the CSV rows the row-by-row reader is asked to read (the fast path's fallback)."""
    numbers = []
    real = csvfile._csv_row
    monkeypatch.setattr(csvfile, "_csv_row", lambda number, line, header, id_column: (
        numbers.append(number) or real(number, line, header, id_column)))
    return numbers


def test_the_numeric_fast_path_leaves_only_the_rows_it_cannot_read_to_the_row_reader(monkeypatch):
    model, p = predictor_of("bc-lightgbm")
    slow = rows_read_one_by_one(monkeypatch)
    header, *rows = model.csv(12).splitlines()
    names = header.split(",")
    shuffled = names[::-1]  # the columns in another order: read into the model's order
    moved = [",".join(dict(zip(names, r.split(","), strict=True))[n] for n in shuffled) for r in rows]
    plain = [model.csv(12), f"id,{header}\n" + "\n".join(f"r{i},{r}" for i, r in enumerate(rows)),
             ",".join(shuffled) + "\n" + "\n".join(moved)]
    outputs = []
    for text in plain:
        out = io.StringIO()
        result = score_lines(io.BytesIO(text.encode()), "in.csv", p, out, io.StringIO(), chunk_rows=4)
        assert (result.predicted, slow) == (12, [])
        outputs.append([line.split(",", 1)[1] for line in out.getvalue().splitlines()[1:]])
    assert outputs[0] == outputs[1] == outputs[2]
    lines = [f"r{i},{r}".encode() for i, r in enumerate(rows)]
    lines[0] = f"é,{rows[0]}".encode()  # not ASCII
    lines[1] = f",{rows[1]}".encode()  # a blank id: the row's number
    lines[2] = b"\xff," + rows[2].encode()  # not UTF-8
    lines[4] = f'"r4",{rows[4]}'.encode()  # quoted, in a chunk of ASCII ids: the row reader unquotes it
    lines[5] = b"r5,n/a?," + rows[5].split(",", 1)[1].encode()  # a word where a number goes
    lines[6] = f'"q,1",{rows[6]}'.encode()  # quoted
    lines[7] = f"r7,{rows[7]}X".encode()  # a letter after the last number
    lines[9] = b"r9,1e," + rows[9].split(",", 1)[1].encode()  # passes the screen, not a number
    data = f"id,{header}\n".encode() + b"\n".join(lines)
    out = io.StringIO()
    result = score_lines(io.BytesIO(data), "in.csv", p, out, io.StringIO(), chunk_rows=4)
    # rows 1-4, 5-8 and 9-12 are chunks; "1e" sends its whole chunk to the row reader
    assert sorted(slow) == [1, 3, 5, 6, 7, 8, 9, 10, 11, 12] and (result.predicted, result.invalid) == (8, 4)
    written = list(csv.reader(io.StringIO(out.getvalue())))[1:]
    assert [r[0] for r in written] == ["é", "2", "r3", "r4", "q,1", "r8", "r10", "r11"]
    assert [",".join(r[1:]) for r in written] == [outputs[0][i] for i in (0, 1, 3, 4, 6, 8, 10, 11)]
