"""CSV files: the header, spreadsheet spellings, and the numeric fast path against the row reader."""

import csv
import io

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from serving.batch import csvfile
from serving.batch import rows as rows_module
from serving.batch.lines import score_lines

from tests.unit.serving.batch.helpers import csv_rows, predictor_of, row_reader, served


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


def test_the_header_names_are_trimmed_and_a_bom_is_not_part_of_the_first_name():
    rows = csv_rows(b'\xef\xbb\xbf"id", a ,b\r\n7,1,2\r\n,3,4\r\n\xef\xbb\xbf8,5,6\n9,7\n')
    assert [(r.id, r.values, r.problem) for r in rows] == [
        ("7", {"a": "1", "b": "2"}, None), (2, {"a": "3", "b": "4"}, None),
        ("\ufeff8", {"a": "5", "b": "6"}, None),  # a byte-order mark is one only at the start of the file
        ("9", {}, "2 values, but the header has 3 columns")]
    rows = csv_rows(b"a,id\n1\n")
    assert [(r.id, r.problem) for r in rows] == [(1, "1 values, but the header has 2 columns")]


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
