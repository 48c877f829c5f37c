"""Parquet files: row groups, types Python cannot hold, and the columns read in one request."""

import io
import sys

import numpy as np
import pytest
from serving.batch import parquet
from serving.batch import rows as rows_module
from serving.batch import writer as writer_module
from serving.batch.lines import score_lines

from tests.unit.serving.batch.helpers import predictor_of


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
    monkeypatch.setattr(parquet, "_parquet_rows", lambda chunk, ids, pa, *rest: calls.append(len(ids)) or real(chunk, ids, pa, *rest))
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


def test_a_parquet_file_with_the_models_target_is_labelled_and_one_without_it_is_not():
    from tests.unit.serving.batch.test_lines import labelled_predictor

    model, p = labelled_predictor(target="species")
    columns = columns_of(model, 6)
    result, predictions, _ = score_parquet(p, parquet_of({**columns, "species": model.labels[:6]}))
    lines = predictions.splitlines()
    assert lines[0].split(",")[-1] == "actual" and [line.split(",")[-1] for line in lines[1:]] == model.labels[:6]
    assert result.evaluated[0] == model.labels[:6]
    result, predictions, _ = score_parquet(p, parquet_of(columns))
    assert "actual" not in predictions.splitlines()[0] and result.evaluated is None
    assert parquet.parquet_columns(parquet_of({**columns, "species": model.labels[:6]}))[-1] == "species"
    with pytest.raises(rows_module.UnsupportedFile, match="^not a Parquet file that can be read: "):
        parquet.parquet_columns(io.BytesIO(b"PAR1 not really"))


@pytest.mark.parametrize("numeric", [True, False])
@pytest.mark.parametrize("id_name", ["rownames", "id"])
def test_parquet_ids_come_from_the_models_id_column_or_id(id_name, numeric, monkeypatch):
    """The model's own id column when the file has it, else `id`; on the column-wise path (all numeric)
    and row by row (a row with a gap is read alone)."""
    from tests.unit.serving.batch.test_lines import labelled_predictor

    model, p = labelled_predictor("bc-lightgbm", id_column="rownames")
    columns = columns_of(model, 5)
    if not numeric:
        columns[model.schema[0]["name"]][2] = None
    rows = counted_parquet_rows(monkeypatch)
    _, predictions, errors = score_parquet(p, parquet_of({id_name: [f"r{i}" for i in range(5)], **columns}))
    ids = [line.split(",")[0] for line in predictions.splitlines()[1:] + errors.splitlines()[1:]]
    assert sorted(ids) == ["r0", "r1", "r2", "r3", "r4"]
    assert rows == ([] if numeric else [1])


def test_a_parquet_file_of_a_model_with_categories_takes_its_ids_from_the_models_id_column():
    from tests.unit.serving.batch.test_lines import labelled_predictor

    model, p = labelled_predictor("penguins-lightgbm", id_column="rownames")
    _, predictions, errors = score_parquet(p, parquet_of({"rownames": [f"r{i}" for i in range(4)],
                                                          **columns_of(model, 4)}))
    assert [line.split(",")[0] for line in predictions.splitlines()[1:]] == ["r0", "r1", "r2", "r3"]
    assert errors.splitlines() == ["row_id,field,message"]
