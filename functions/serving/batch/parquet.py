"""Parquet files, read a row group at a time (a part of a file is a run of row groups)."""

from __future__ import annotations

import datetime
import decimal
from typing import IO

import numpy as np

from serving.batch.rows import CHUNK_ROWS, ID_FIELD, BatchResult, Row, UnsupportedFile, check_rows, id_field
from serving.batch.writer import Writer, target
from serving.model.predictor import Predictor


def _pyarrow():
    import pyarrow
    import pyarrow.parquet

    return pyarrow, pyarrow.parquet


def parquet_row_groups(file: IO[bytes]) -> list[int]:
    """The rows of each row group of a Parquet file (from its footer); UnsupportedFile when it is none."""
    pa, pq = _pyarrow()
    try:
        metadata = pq.ParquetFile(file).metadata
    except (pa.ArrowException, OSError) as error:
        raise UnsupportedFile(f"not a Parquet file that can be read: {error}") from None
    return [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]


def parquet_columns(file: IO[bytes]) -> list[str]:
    """The column names of a Parquet file (from its footer)."""
    pa, pq = _pyarrow()
    try:
        return pq.ParquetFile(file).schema_arrow.names
    except (pa.ArrowException, OSError) as error:
        raise UnsupportedFile(f"not a Parquet file that can be read: {error}") from None


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
    labelled: bool | None = None,
) -> BatchResult:
    """Scores the row groups [first, last) of a Parquet file (all of them by default), as ``score_lines``
    scores lines: the same outputs, row ids (an ``id`` column, else row numbers) and error lines.

    Values come typed: numbers, strings, booleans and nulls are checked as JSON values are;
    dates and timestamps become ISO 8601 text for datetime features; NaN counts as null. When
    every column is a numeric feature, a chunk becomes a matrix column by column and only rows
    with a null or a non-finite value are checked one by one.
    """
    pa, pq = _pyarrow()
    try:
        parquet = pq.ParquetFile(file, pre_buffer=True)  # a row group's columns in few reads
    except (pa.ArrowException, OSError) as error:
        raise UnsupportedFile(f"not a Parquet file that can be read: {error}") from None
    if labelled is None:
        labelled = target(predictor) in parquet.schema_arrow.names
    writer = Writer(predictor, predictions_out, errors_out, headers, labelled)
    groups = range(*row_groups) if row_groups is not None else range(parquet.metadata.num_row_groups)
    schema = predictor.schema
    # pandas stores a DataFrame's index as a column (__index_level_0__ after a filter): not data
    index = {c for c in (parquet.schema_arrow.pandas_metadata or {}).get("index_columns", [])
             if isinstance(c, str)}
    read = [name for name in parquet.schema_arrow.names if name not in index]
    id_name = id_field(predictor, read)
    columns = [name for name in read if name != id_name]
    numeric = (sorted(columns) == sorted(schema.names)
               and all(f["type"] == "numeric" for f in schema.features)
               and all(pa.types.is_integer(t) or pa.types.is_floating(t)
                       for t in (parquet.schema_arrow.field(name).type for name in columns)))
    number = first_row
    for group in groups:
        for chunk in parquet.iter_batches(batch_size=chunk_rows, row_groups=[group], columns=read):
            number = _score_parquet_chunk(chunk, number, writer, numeric, pa, id_name)
        writer.result.row_groups += 1
    return writer.finish()


def _score_parquet_chunk(chunk, first: int, writer: Writer, numeric: bool, pa, id_name: str = ID_FIELD
                         ) -> int:
    """One record batch of a Parquet file, its first row numbered ``first``; → the next row's number."""
    schema, rows_in = writer.predictor.schema, chunk.num_rows
    chunk = _microseconds(chunk, pa)
    try:
        given = chunk.column(id_name).to_pylist() if id_name in chunk.schema.names else None
    except (ValueError, pa.ArrowException):  # ids of a type Python cannot hold: the row numbers
        given = None
    # a null or blank id is no id: the row's number, as in a CSV
    ids = [first + k if given is None or given[k] is None or (type(given[k]) is str and not given[k].strip())
           else given[k] for k in range(rows_in)]
    if not numeric:
        rows = _parquet_rows(chunk, ids, pa, id_name)
        kept, X, errors = check_rows(schema, rows, csv_text=False)
        actuals = [rows[i].values.get(writer.target) for i in kept] if writer.target is not None else None
        writer.chunk(len(rows), [rows[i].id for i in kept], X, errors, actuals)
        return first + rows_in
    X = np.column_stack([chunk.column(name).to_numpy(zero_copy_only=False).astype(np.float64)
                         for name in schema.names])  # (0, width) for a chunk of no rows
    finite = np.isfinite(X).all(axis=1)
    if finite.all():
        writer.chunk(chunk.num_rows, ids, X, [])
        return first + rows_in
    other = np.flatnonzero(~finite)  # a null or a NaN: checked as a typed row, which says which field
    rows = _parquet_rows(chunk.take(pa.array(other)), [ids[k] for k in other.tolist()], pa, id_name)
    kept, other_X, errors = check_rows(schema, rows, csv_text=False)
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


def _parquet_rows(chunk, ids: list, pa, id_name: str = ID_FIELD) -> list[Row]:
    """A chunk of a Parquet file → rows of JSON-like values (the id column left out); a chunk whose
    values Python cannot hold gets each of its rows reported, with why."""
    try:
        records = chunk.to_pylist()
    except (ValueError, pa.ArrowException) as error:
        return [Row(row_id, problem=f"the row's values cannot be read: {error}") for row_id in ids]
    rows = []
    for row_id, record in zip(ids, records, strict=True):
        record.pop(id_name, None)
        for name, value in record.items():
            if isinstance(value, float) and value != value:  # NaN: missing, as in a CSV
                record[name] = None
            elif isinstance(value, datetime.date):  # (a datetime is a date)
                record[name] = value.isoformat()
            elif isinstance(value, decimal.Decimal):
                record[name] = float(value)
        rows.append(Row(row_id, record))
    return rows
