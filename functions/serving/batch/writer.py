"""The outputs of a batch file: one predictions CSV (row id, then the label and one probability
column per class, or the predicted value; then the actual value when the file carries the model's
target) and an errors CSV (row id, field, message)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import IO, Any

import numpy as np
import orjson

from serving.batch.rows import BatchResult
from serving.model.predictor import Predictor, label_indices

ERRORS_HEADER = ["row_id", "field", "message"]


def output_header(predictor: Predictor, labelled: bool = False) -> list[str]:
    """row_id, then the label and a probability per class, or the predicted value; then ``actual``
    for a file that carries the model's target."""
    actual = ["actual"] if labelled else []
    if predictor.task == "regression":
        return ["row_id", "prediction", *actual]
    return ["row_id", "label", *[f"probability_{c}" for c in predictor.classes], *actual]


def target(predictor: Predictor) -> str | None:
    """The model's target column (None for a bundle published without one)."""
    return predictor.bundle.manifest.get("target")


class Writer:
    """The two outputs and the counts: what scoring a file, or a part of one, adds up to."""

    def __init__(self, predictor: Predictor, predictions_out: IO[str], errors_out: IO[str], headers: bool,
                 labelled: bool = False):
        self.predictor = predictor
        self.predictions_out = predictions_out
        self.errors_out = errors_out
        # a labelled file: each row's actual value is written, and kept with the answer to evaluate
        self.target = target(predictor) if labelled else None
        if headers:
            predictions_out.write(csv_line(output_header(predictor, self.target is not None)))
            errors_out.write(csv_line(ERRORS_HEADER))
        self.labels = [csv_field(str(c)) for c in predictor.classes]
        self.result = BatchResult()
        self.actuals: list = []
        self.outputs: list[np.ndarray] = []

    def chunk(self, rows: int, ids: list, X: np.ndarray, errors: list[list], actuals: list | None = None
              ) -> None:
        """One chunk's valid rows (ids, matrix, in input order; their actual values in a labelled
        file) and its invalid rows' error lines."""
        self.result.rows += rows
        self.result.predicted += len(ids)
        self.result.invalid += rows - len(ids)
        self.errors_out.write("".join(map(csv_line, errors)))
        if ids:
            output = self.predictor.predict_matrix(X)
            if self.target is not None:
                actuals = actuals if actuals is not None else [None] * len(ids)
                self.actuals += actuals
                self.outputs.append(output)
            self.predictions_out.write(self.lines(ids, output, actuals if self.target is not None else None))

    def finish(self) -> BatchResult:
        """The counts; for a labelled file, with the actual values of the rows predicted and the
        model's answers for them."""
        if self.target is not None:
            width = len(self.predictor.classes) or 1
            self.result.evaluated = (self.actuals, np.concatenate(self.outputs) if self.outputs
                                     else np.empty((0, width)))
        return self.result

    def lines(self, ids: list, output: np.ndarray, actuals: list | None = None) -> str:
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
        if actuals is not None:  # a labelled file: each line ends with the row's actual value
            values = [f"{v},{csv_field(a)}" for v, a in zip(values, actuals, strict=True)]
        if self.predictor.task == "regression":
            return "".join([f"{i},{v}\n" for i, v in zip(ids, values, strict=True)])
        labels, chosen = self.labels, label_indices(output, self.predictor.threshold).tolist()
        return "".join([f"{i},{labels[k]},{v}\n" for i, k, v in zip(ids, chosen, values, strict=True)])


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
