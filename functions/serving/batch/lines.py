"""Score a file of rows in bounded memory: every row ends up predicted or reported.

Input: CSV with a header of feature names, or JSON lines of ``{feature: value}``;
an ``id`` column/field, when present, is the row id, else the row's number
(1-based, blank lines not counted). A file is read line by line, so a row is one
line: a quoted CSV value cannot hold a line break. Whatever is wrong with a line
(bytes that are not UTF-8, broken quoting, too few or too many values, JSON that
does not parse) makes that row invalid, never the file. Files as spreadsheets
write them are read as meant: a byte-order mark, CRLF line ends, quoted header
names, padded numbers, and empty, ``nan``, ``NA`` or ``null`` cells as missing
values.

A file can be scored whole or a part at a time (a byte range that starts and ends
on a line boundary, see ``serving.batch_parts``): a part is given the file's CSV
header and the number of its first row, and its output has no header of its own,
so that the parts' outputs put end to end are the file's.

Rows are read and scored CHUNK_ROWS at a time, so memory does not grow with the
file. A CSV whose columns are all numeric features is parsed a chunk at a time by
Arrow's CSV reader (pyarrow); a line it would not read as plain numbers (an empty cell, a word,
quoting, a missing or extra value) is left to the row-by-row reader, which says
what is wrong with it. Both give the same numbers: the fast path is only faster.

Output: one predictions CSV (row id, then label and one probability column
per class, or the predicted value) and an errors CSV (row id, field, message).
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import decimal
import io
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np
import orjson

from serving.model.features import RequestError
from serving.model.predictor import Predictor

CHUNK_ROWS = 5000
ID_FIELD = "id"
MISSING_TEXT = frozenset({"", "nan", "na", "n/a", "null", "none"})  # a missing cell, in any case
FORMATS = (".csv", ".jsonl", ".ndjson", ".parquet")
PARQUET = ".parquet"
BOM = b"\xef\xbb\xbf"
NUMBER_BYTES = b"0123456789.eE+-"  # what a plain number is written with


@dataclass
class BatchResult:
    rows: int = 0
    predicted: int = 0
    invalid: int = 0
    row_groups: int = 0  # of a Parquet file: read to their end


@dataclass
class Row:
    """One line of the input: its id and values, or what is wrong with it."""

    id: Any
    values: dict[str, Any] = field(default_factory=dict)
    problem: str | None = None


class UnsupportedFile(ValueError):
    """The file cannot be read as a table at all (its type, or its header)."""


def check_format(name: str) -> None:
    """Refuses a file that is neither CSV nor JSON lines, saying which types are."""
    if not name.endswith(FORMATS):
        raise UnsupportedFile(f"{name}: use {', '.join(FORMATS)} (CSV with a header, JSON lines or Parquet)")


def data_lines(lines: Iterable[bytes], *, at_file_start: bool = True) -> Iterator[bytes]:
    """The non-blank lines; a byte-order mark is dropped from the start of the file only.

    Line ends are left on: the CSV reader and the JSON parser both ignore them.
    """
    lines = iter(lines)
    if at_file_start:
        first = next(lines, None)
        if first is None:
            return iter(())
        lines = itertools.chain([first.removeprefix(BOM)], lines)
    return filter(bytes.strip, lines)  # in C: a blank line strips to nothing


def count_rows(lines: Iterable[bytes], *, at_file_start: bool = True) -> int:
    """How many rows some lines hold (blank lines are not rows): what numbers the next part's rows."""
    return sum(1 for _ in data_lines(lines, at_file_start=at_file_start))


def read_header(line: bytes | None) -> list[str]:
    """A CSV header line → its column names; UnsupportedFile when it cannot be one."""
    if line is None:
        raise UnsupportedFile("the file is empty: a CSV needs a header of feature names")
    try:
        header = [name.strip() for name in next(csv.reader([line.removeprefix(BOM).decode()], strict=True))]
    except (UnicodeDecodeError, csv.Error) as error:
        raise UnsupportedFile(f"the header cannot be read: {error}") from None
    if len(set(header)) != len(header):
        raise UnsupportedFile("the header repeats a column name")
    return header


def _csv_rows(lines: Iterable[bytes], header: list[str], first_row: int) -> Iterator[Row]:
    id_column = header.index(ID_FIELD) if ID_FIELD in header else None
    for number, line in enumerate(lines, start=first_row):
        yield _csv_row(number, line, header, id_column)


def _csv_row(number: int, line: bytes, header: list[str], id_column: int | None) -> Row:
    try:
        values = next(csv.reader([line.decode()], strict=True))
    except UnicodeDecodeError:
        return Row(number, problem="the line is not valid UTF-8")
    except csv.Error as error:
        return Row(number, problem=f"the line is not valid CSV: {error}")
    given_id = values[id_column].strip() if id_column is not None and id_column < len(values) else ""
    row_id = given_id or number
    if len(values) != len(header):
        return Row(row_id, problem=f"{len(values)} values, but the header has {len(header)} columns")
    record = dict(zip(header, values, strict=True))
    record.pop(ID_FIELD, None)
    return Row(row_id, record)


def _json_rows(lines: Iterable[bytes], first_row: int) -> Iterator[Row]:
    for number, line in enumerate(lines, start=first_row):
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError as error:
            yield Row(number, problem=f"not valid JSON: {error}")
            continue
        if not isinstance(record, dict):
            yield Row(number, problem="each line must be a JSON object")
            continue
        yield Row(record.pop(ID_FIELD, None) or number, record)


def _from_csv_text(record: dict[str, Any], schema: list[dict[str, Any]]) -> dict[str, Any]:
    """CSV cells are text: missing-value words become null, numbers and booleans are parsed."""
    out = dict(record)
    for feature in schema:
        name = feature["name"]
        value = record.get(name)
        if value is None:
            continue
        if value.strip().lower() in MISSING_TEXT:
            out[name] = None
        elif feature["type"] == "numeric":
            with contextlib.suppress(ValueError):  # left as text: validation names the field
                out[name] = float(value)
        elif feature["type"] == "boolean" and value.strip().lower() in ("true", "false", "1", "0"):
            out[name] = value.strip().lower() in ("true", "1")
    return out


def _chunks(items: Iterable, size: int) -> Iterator[tuple]:
    return itertools.batched(items, size)


ERRORS_HEADER = ["row_id", "field", "message"]


def output_header(predictor: Predictor) -> list[str]:
    """row_id, then the label and a probability per class, or the predicted value."""
    if predictor.task == "regression":
        return ["row_id", "prediction"]
    return ["row_id", "label", *[f"probability_{c}" for c in predictor.classes]]


class _Writer:
    """The two outputs and the counts: what scoring a file, or a part of one, adds up to."""

    def __init__(self, predictor: Predictor, predictions_out: IO[str], errors_out: IO[str], headers: bool):
        self.predictor = predictor
        self.predictions_out = predictions_out
        self.errors_out = errors_out
        if headers:
            predictions_out.write(csv_line(output_header(predictor)))
            errors_out.write(csv_line(ERRORS_HEADER))
        self.labels = [csv_field(str(c)) for c in predictor.classes]
        self.result = BatchResult()

    def chunk(self, rows: int, ids: list, X: np.ndarray, errors: list[list]) -> None:
        """One chunk's valid rows (ids, matrix, in input order) and its invalid rows' error lines."""
        self.result.rows += rows
        self.result.predicted += len(ids)
        self.result.invalid += rows - len(ids)
        self.errors_out.write("".join(map(csv_line, errors)))
        if ids:
            self.predictions_out.write(self.lines(ids, self.predictor.predict_matrix(X)))

    def lines(self, ids: list, output: np.ndarray) -> str:
        """The predictions' CSV lines: fields quoted as csv.writer does, floats as shortest round-trip text.

        Written here rather than by csv.writer because formatting the floats is most of a worker's
        time otherwise: orjson writes a whole chunk's array in one call, ~12x faster than Python's
        repr (the text differs only in spelling, e.g. ``0.00001`` for ``1e-05``; both read back as
        the same double). A value that is not finite, which JSON cannot spell, takes repr.
        """
        if np.isfinite(output).all():
            text = orjson.dumps(np.ascontiguousarray(output, np.float64), option=orjson.OPT_SERIALIZE_NUMPY)
            values = text[2:-2].decode().split("],[")
        else:
            values = repr(output.tolist())[2:-2].replace(", ", ",").split("],[")
        if set(map(type, ids)) != {int}:  # (row numbers need no quoting)
            ids = [str(i) if type(i) is int else csv_field(i) for i in ids]
        if self.predictor.task == "regression":
            return "".join([f"{i},{v}\n" for i, v in zip(ids, values, strict=True)])
        labels = self.labels
        return "".join([f"{i},{labels[k]},{v}\n"
                        for i, k, v in zip(ids, output.argmax(axis=1).tolist(), values, strict=True)])


def csv_line(values: Iterable[Any]) -> str:
    """One line of a CSV output: each value as csv_field spells it, then a newline.

    Not csv.writer(lineterminator="\n"): before Python 3.13 it quotes only the terminator's own
    characters, so a bare carriage return in an id or a name went out unquoted, and a reader
    took it for the end of the line (the row's report split in two).
    """
    return ",".join(map(csv_field, values)) + "\n"


def csv_field(value: Any) -> str:
    """A value as csv.writer writes it (excel dialect): quoted if it holds a comma, a quote or a line end."""
    text = "" if value is None else str(value)
    if "," in text or '"' in text or "\n" in text or "\r" in text:
        return '"' + text.replace('"', '""') + '"'
    return text


def score_lines(
    lines: Iterable[bytes],
    name: str,
    predictor: Predictor,
    predictions_out: IO[str],
    errors_out: IO[str],
    *,
    header: list[str] | None = None,
    first_row: int = 1,
    at_file_start: bool = True,
    headers: bool = True,
    chunk_rows: int = CHUNK_ROWS,
) -> BatchResult:
    """Scores a file, or a part of it, given as its lines: writes predictions and error lines, returns counts.

    A part after the first gives the file's CSV ``header`` (its lines hold none), ``first_row``
    (the number of its first row in the file) and ``at_file_start=False`` (a byte-order mark is
    one only at the file's start); ``headers=False`` leaves the outputs' header lines to whoever
    assembles the parts.
    """
    check_format(name)
    if name.endswith(PARQUET):
        raise UnsupportedFile(f"{name}: a Parquet file is read by row groups (score_parquet), not by lines")
    writer = _Writer(predictor, predictions_out, errors_out, headers)
    data = data_lines(lines, at_file_start=at_file_start)
    if name.endswith(".csv"):
        if header is None:
            header = read_header(next(data, None))
        if _numeric_columns(header, predictor.schema) is not None:
            _score_numeric_csv(data, header, first_row, writer, chunk_rows)
            return writer.result
        rows = _csv_rows(data, header, first_row)
    else:
        rows = _json_rows(data, first_row)
    _score_rows(rows, writer, csv_text=name.endswith(".csv"), chunk_rows=chunk_rows)
    return writer.result


def _score_rows(rows: Iterable[Row], writer: _Writer, csv_text: bool, chunk_rows: int) -> None:
    schema = writer.predictor.schema
    for chunk in _chunks(rows, chunk_rows):
        kept, X, errors = _check_rows(schema, chunk, csv_text)
        writer.chunk(len(chunk), [chunk[i].id for i in kept], X, errors)


def _check_rows(schema, rows: list[Row], csv_text: bool) -> tuple[list[int], np.ndarray, list[list]]:
    """Rows → the positions and matrix of the valid ones, and an error line per problem of the others."""
    at, records, problems = [], [], []
    for i, row in enumerate(rows):
        if row.problem is not None:
            problems.append((i, [row.id, "", row.problem]))
        else:
            at.append(i)
            records.append(_from_csv_text(row.values, schema.features) if csv_text else row.values)
    try:
        X = schema.rows(records) if records else np.empty((0, schema.width))
        return at, X, [line for _, line in problems]
    except RequestError:
        pass  # some row is invalid: check them one by one
    kept, matrix = [], []
    for i, record in zip(at, records, strict=True):
        try:
            matrix.append(schema.rows([record])[0])
            kept.append(i)
        except RequestError as error:
            problems += [(i, [rows[i].id, p["field"], p["message"]]) for p in error.errors]
    problems.sort(key=lambda problem: problem[0])  # stable: a row's own lines keep their order
    return kept, np.array(matrix).reshape(len(kept), schema.width), [line for _, line in problems]


def _numeric_columns(header: list[str], schema) -> list[int] | None:
    """Where each feature sits in a CSV whose columns are all numeric features (and maybe an id
    first): the files the fast path reads. None for any other header."""
    names = header[1:] if header[:1] == [ID_FIELD] else header
    if not schema.all_numeric or sorted(names) != sorted(schema.names):
        return None
    return [names.index(name) for name in schema.names]


def _score_numeric_csv(lines: Iterable[bytes], header: list[str], first_row: int, writer: _Writer,
                       chunk_rows: int) -> None:
    """CSV rows of numbers, a chunk at a time: plain lines through Arrow's reader, the rest row by row.

    A line is plain when it is digits, signs, dots and exponents between exactly the header's
    commas, with no empty cell. Anything else (an empty or a quoted cell, a word such as
    ``nan``, a missing or extra value, a number too big for a float) goes to the row-by-row
    reader, which reads it as a spreadsheet means it or says what is wrong. The screen works
    on a chunk's lines joined, so that Python does a few steps per chunk, not per line.
    """
    schema = writer.predictor.schema
    columns = _numeric_columns(header, schema)
    in_order = columns == list(range(len(columns)))
    with_id = header[0] == ID_FIELD
    commas = b"," * (len(columns) - 1)
    number = first_row
    for chunk in _chunks(lines, chunk_rows):
        n = len(chunk)
        first, number = number, number + n
        bodies = list(map(bytes.rstrip, chunk, itertools.repeat(b"\r\n", n)))
        given = None
        if with_id:
            given, bodies = zip(*(body.partition(b",")[::2] for body in bodies), strict=True)
        block = b"\n".join(bodies)
        plain = _plain_lines(block, bodies, commas)
        if given is not None:
            ids_text = b"".join(given)
            if b'"' in ids_text or not ids_text.isascii():  # quoted or not ASCII: the row reader reads it
                plain &= [b'"' not in value and value.isascii() for value in given]
        plain_at = np.flatnonzero(plain)
        X = _parse_numbers(block if plain_at.size == n else b"\n".join(itertools.compress(bodies, plain)),
                           plain_at.size, len(columns))
        if X is None:  # the screen let through something that is no number ("1e", "-"): row by row
            plain[:], plain_at, X = False, plain_at[:0], np.empty((0, len(columns)))
        if not in_order:
            X = X[:, columns]
        finite = np.isfinite(X).all(axis=1)
        if not finite.all():  # 1e999 and the like: the row-by-row reader says which field
            plain[plain_at[~finite]] = False
            plain_at, X = plain_at[finite], X[finite]
        if given is None:
            ids = (plain_at + first).tolist()
        else:
            ids = [given[k].decode().strip() or first + k for k in plain_at.tolist()]
        if plain_at.size == n:
            writer.chunk(n, ids, X, [])
            continue
        other = np.flatnonzero(~plain).tolist()
        rows = [_csv_row(first + k, chunk[k], header, 0 if with_id else None) for k in other]
        kept, other_X, errors = _check_rows(schema, rows, csv_text=True)
        order = np.argsort(np.concatenate([plain_at, np.array(other, np.intp)[kept]]), kind="stable")
        ids += [rows[i].id for i in kept]
        writer.chunk(n, [ids[i] for i in order.tolist()], np.concatenate([X, other_X])[order], errors)


def _plain_lines(block: bytes, bodies: list[bytes], commas: bytes) -> np.ndarray:
    """Which of a chunk's lines (``bodies``, joined by newlines in ``block``) are plain numbers."""
    shapes = block.translate(None, NUMBER_BYTES)  # what is left of a plain line is its commas
    if shapes == b"\n".join(itertools.repeat(commas, len(bodies))):
        plain = np.ones(len(bodies), bool)
    else:
        plain = np.fromiter(map(commas.__eq__, shapes.split(b"\n")), bool, len(bodies))
    # an empty cell (",," or a comma at either end of a line) is not plain either; found with numpy
    # because bytes.find stops at every comma of the block when looking for ",," (3 ms on 5000 lines)
    text = np.frombuffer(b"\n" + block + b"\n", np.uint8)
    comma, newline = text == 44, text == 10
    empty = comma[1:] & (comma[:-1] | newline[:-1])  # a comma after a comma or a line start
    empty[:-1] |= comma[1:-1] & newline[2:]  # a comma before a line end
    if empty.any():  # the lines they are on: how many line ends come before them
        plain[np.searchsorted(np.flatnonzero(newline[1:]), np.flatnonzero(empty), side="left")] = False
    return plain


def _parse_numbers(text: bytes, rows: int, width: int) -> np.ndarray | None:
    """Lines of plain numbers → a matrix, by Arrow's CSV reader (it rounds as ``float()`` does: the
    property test compares it with the row reader). None when a line is not numbers after all.

    Arrow rather than numpy's loadtxt: 1.7x faster on breast cancer's 30 columns (a third of a
    worker's time was parsing); the batch functions' package has pyarrow for Parquet anyway.
    """
    if not rows:
        return np.empty((0, width))
    pa, arrow_csv = _arrow_csv()
    names = [f"c{j}" for j in range(width)]
    try:
        table = arrow_csv.read_csv(
            io.BytesIO(text),
            read_options=arrow_csv.ReadOptions(column_names=names, use_threads=False, block_size=1 << 24),
            parse_options=arrow_csv.ParseOptions(quote_char=False, double_quote=False),
            convert_options=arrow_csv.ConvertOptions(column_types=dict.fromkeys(names, pa.float64()),
                                                     null_values=[], strings_can_be_null=False))
    except pa.ArrowInvalid:
        return None
    if table.shape != (rows, width):
        return None
    X = np.empty((rows, width))
    for j, column in enumerate(table.columns):
        X[:, j] = column.to_numpy()
    return X


# ---- Parquet ---------------------------------------------------------------------------------
# pyarrow is in the batch functions' package only (functions/Makefile), and imported when a file
# is read (numeric CSV lines, Parquet): the API never loads it.


def _pyarrow():
    import pyarrow
    import pyarrow.parquet

    return pyarrow, pyarrow.parquet


def _arrow_csv():
    import pyarrow
    import pyarrow.csv

    return pyarrow, pyarrow.csv


def parquet_row_groups(file: IO[bytes]) -> list[int]:
    """The rows of each row group of a Parquet file (from its footer); UnsupportedFile when it is none."""
    pa, pq = _pyarrow()
    try:
        metadata = pq.ParquetFile(file).metadata
    except (pa.ArrowException, OSError) as error:
        raise UnsupportedFile(f"not a Parquet file that can be read: {error}") from None
    return [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]


def score_parquet(
    file: IO[bytes],
    predictor: Predictor,
    predictions_out: IO[str],
    errors_out: IO[str],
    *,
    row_groups: tuple[int, int] | None = None,
    first_row: int = 1,
    headers: bool = True,
    chunk_rows: int = CHUNK_ROWS,
) -> BatchResult:
    """Scores the row groups [first, last) of a Parquet file (all of them by default), as ``score_lines``
    scores lines: the same outputs, row ids (an ``id`` column, else row numbers) and error lines.

    Values come typed: numbers, strings, booleans and nulls are checked as JSON values are;
    dates and timestamps become ISO 8601 text for datetime features; NaN counts as null. When
    every column is a numeric feature, a chunk becomes a matrix column by column and only rows
    with a null or a non-finite value are checked one by one.
    """
    pa, pq = _pyarrow()
    writer = _Writer(predictor, predictions_out, errors_out, headers)
    try:
        parquet = pq.ParquetFile(file, pre_buffer=True)  # a row group's columns in few reads
    except (pa.ArrowException, OSError) as error:
        raise UnsupportedFile(f"not a Parquet file that can be read: {error}") from None
    groups = range(*row_groups) if row_groups is not None else range(parquet.metadata.num_row_groups)
    schema = predictor.schema
    # pandas stores a DataFrame's index as a column (__index_level_0__ after a filter): not data
    index = {c for c in (parquet.schema_arrow.pandas_metadata or {}).get("index_columns", [])
             if isinstance(c, str)}
    read = [name for name in parquet.schema_arrow.names if name not in index]
    columns = [name for name in read if name != ID_FIELD]
    numeric = (sorted(columns) == sorted(schema.names)
               and all(f["type"] == "numeric" for f in schema.features)
               and all(pa.types.is_integer(t) or pa.types.is_floating(t)
                       for t in (parquet.schema_arrow.field(name).type for name in columns)))
    number = first_row
    for group in groups:
        for chunk in parquet.iter_batches(batch_size=chunk_rows, row_groups=[group], columns=read):
            number = _score_parquet_chunk(chunk, number, writer, numeric, pa)
        writer.result.row_groups += 1
    return writer.result


def _score_parquet_chunk(chunk, first: int, writer: _Writer, numeric: bool, pa) -> int:
    """One record batch of a Parquet file, its first row numbered ``first``; → the next row's number."""
    schema, rows_in = writer.predictor.schema, chunk.num_rows
    chunk = _microseconds(chunk, pa)
    try:
        given = chunk.column(ID_FIELD).to_pylist() if ID_FIELD in chunk.schema.names else None
    except (ValueError, pa.ArrowException):  # ids of a type Python cannot hold: the row numbers
        given = None
    # a null or blank id is no id: the row's number, as in a CSV
    ids = [first + k if given is None or given[k] is None or (type(given[k]) is str and not given[k].strip())
           else given[k] for k in range(rows_in)]
    if not numeric:
        rows = _parquet_rows(chunk, ids, pa)
        kept, X, errors = _check_rows(schema, rows, csv_text=False)
        writer.chunk(len(rows), [rows[i].id for i in kept], X, errors)
        return first + rows_in
    X = np.column_stack([chunk.column(name).to_numpy(zero_copy_only=False).astype(np.float64)
                         for name in schema.names])  # (0, width) for a chunk of no rows
    finite = np.isfinite(X).all(axis=1)
    if finite.all():
        writer.chunk(chunk.num_rows, ids, X, [])
        return first + rows_in
    other = np.flatnonzero(~finite)  # a null or a NaN: checked as a typed row, which says which field
    rows = _parquet_rows(chunk.take(pa.array(other)), [ids[k] for k in other.tolist()], pa)
    kept, other_X, errors = _check_rows(schema, rows, csv_text=False)
    plain_at = np.flatnonzero(finite)
    order = np.argsort(np.concatenate([plain_at, other[kept]]))  # distinct row positions: one order
    merged_ids = [ids[k] for k in plain_at.tolist()] + [rows[i].id for i in kept]
    writer.chunk(chunk.num_rows, [merged_ids[i] for i in order.tolist()],
                 np.concatenate([X[finite], other_X])[order], errors)
    return first + rows_in


def _microseconds(chunk, pa):
    """Timestamps and times in nanoseconds (pandas writes them so) made microseconds, which Python's
    datetime holds: without pandas, pyarrow refuses to convert a value with nanoseconds."""
    columns = list(chunk.columns)
    changed = False
    for i, column in enumerate(columns):
        kind = column.type
        if pa.types.is_timestamp(kind) and kind.unit == "ns":
            columns[i], changed = column.cast(pa.timestamp("us", kind.tz), safe=False), True
        elif pa.types.is_time64(kind) and kind.unit == "ns":
            columns[i], changed = column.cast(pa.time64("us"), safe=False), True
    return pa.RecordBatch.from_arrays(columns, names=chunk.schema.names) if changed else chunk


def _parquet_rows(chunk, ids: list, pa) -> list[Row]:
    """A chunk of a Parquet file → rows of JSON-like values (the id column left out); a chunk whose
    values Python cannot hold gets each of its rows reported, with why."""
    try:
        records = chunk.to_pylist()
    except (ValueError, pa.ArrowException) as error:
        return [Row(row_id, problem=f"the row's values cannot be read: {error}") for row_id in ids]
    rows = []
    for row_id, record in zip(ids, records, strict=True):
        record.pop(ID_FIELD, None)
        for name, value in record.items():
            if isinstance(value, float) and value != value:  # NaN: missing, as in a CSV
                record[name] = None
            elif isinstance(value, datetime.date):  # (a datetime is a date)
                record[name] = value.isoformat()
            elif isinstance(value, decimal.Decimal):
                record[name] = float(value)
        rows.append(Row(row_id, record))
    return rows
