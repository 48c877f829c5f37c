"""Score a text file (CSV or JSON lines), or a part of one, given as its lines.

A file can be scored whole or a part at a time (a byte range that starts and ends on a line
boundary, see ``serving.batch.parts``): a part is given the file's CSV header and the number of
its first row, and its output has no header of its own, so that the parts' outputs put end to
end are the file's. ``serving.batch.rows`` says how rows are read and reported.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import IO

from serving.batch.csvfile import csv_rows, numeric_columns, read_header, score_numeric_csv
from serving.batch.jsonl import has_field, json_rows
from serving.batch.rows import (
    CHUNK_ROWS,
    PARQUET,
    BatchResult,
    UnsupportedFile,
    check_format,
    data_lines,
    id_field,
    score_rows,
)
from serving.batch.writer import Writer
from serving.batch.writer import target as writer_target
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
    labelled: bool | None = None,
) -> BatchResult:
    """Scores a file, or a part of it, given as its lines: writes predictions and error lines, returns counts.

    A part after the first gives the file's CSV ``header`` (its lines hold none), ``first_row``
    (the number of its first row in the file) and ``at_file_start=False`` (a byte-order mark is
    one only at the file's start); ``headers=False`` leaves the outputs' header lines to whoever
    assembles the parts. ``labelled``: whether the file carries the model's target (each part of a
    file is told the same); by default, whether the CSV header or the first JSON line has it.
    """
    check_format(name)
    if name.endswith(PARQUET):
        raise UnsupportedFile(f"{name}: a Parquet file is read by row groups (score_parquet), not by lines")
    data = data_lines(lines, at_file_start=at_file_start)
    target = writer_target(predictor)
    if name.endswith(".csv"):
        if header is None:
            header = read_header(next(data, None))
        id_name = id_field(predictor, header)
        if labelled is None:
            labelled = target is not None and target in header
    elif labelled is None:
        first = next(data, None)
        labelled = first is not None and target is not None and has_field(first, target)
        data = itertools.chain([first] if first is not None else [], data)
    writer = Writer(predictor, predictions_out, errors_out, headers, labelled)
    if name.endswith(".csv"):
        if numeric_columns(header, predictor.schema, id_name) is not None:
            score_numeric_csv(data, header, first_row, writer, chunk_rows)
            return writer.finish()
        rows = csv_rows(data, header, first_row, id_name)
    else:
        rows = json_rows(data, first_row, id_field(predictor))
    score_rows(rows, writer, csv_text=name.endswith(".csv"), chunk_rows=chunk_rows)
    return writer.finish()
