"""Score a text file (CSV or JSON lines), or a part of one, given as its lines.

A file can be scored whole or a part at a time (a byte range that starts and ends on a line
boundary, see ``serving.batch.parts``): a part is given the file's CSV header and the number of
its first row, and its output has no header of its own, so that the parts' outputs put end to
end are the file's. ``serving.batch.rows`` says how rows are read and reported.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import IO

from serving.batch.csvfile import csv_rows, numeric_columns, read_header, score_numeric_csv
from serving.batch.jsonl import json_rows
from serving.batch.rows import (
    CHUNK_ROWS,
    PARQUET,
    BatchResult,
    UnsupportedFile,
    check_format,
    data_lines,
    score_rows,
)
from serving.batch.writer import Writer
from serving.model.predictor import Predictor


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
    writer = Writer(predictor, predictions_out, errors_out, headers)
    data = data_lines(lines, at_file_start=at_file_start)
    if name.endswith(".csv"):
        if header is None:
            header = read_header(next(data, None))
        if numeric_columns(header, predictor.schema) is not None:
            score_numeric_csv(data, header, first_row, writer, chunk_rows)
            return writer.result
        rows = csv_rows(data, header, first_row)
    else:
        rows = json_rows(data, first_row)
    score_rows(rows, writer, csv_text=name.endswith(".csv"), chunk_rows=chunk_rows)
    return writer.result
