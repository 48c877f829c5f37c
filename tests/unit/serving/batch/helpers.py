"""What the batch tests share: a predictor, files scored in memory, and `run_file`, which does what
the state machine in template.yaml does (plan, count and number when there are several parts,
score every part, assemble, abort after a failure) in-process against moto. The integration tests
run the real state machine on LocalStack."""

import csv
import io
import json
from unittest import mock

import numpy as np
from serving.batch import csvfile
from serving.batch import rows as rows_module
from serving.batch.lines import score_lines
from serving.model import bundle
from serving.model.predictor import Predictor

from tests.models import case
from tests.unit.conftest import BUCKET
from tests.unit.fakes import Context


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


def call(module, **event):
    """One invocation of the batch function, as a state of the state machine makes it."""
    import handlers.batch

    return handlers.batch.handler(event, Context())


def event_of(key: str, **options) -> dict:
    return {"detail": {"bucket": {"name": BUCKET}, "object": {"key": key}}, "options": options}


def run_file(module, s3, key: str, execution: str = "run-1", **options) -> dict:
    """The state machine's path through the steps; a failure goes to abort, whose cause is raised."""
    state = event_of(key, **options)
    try:
        plan = call(module, step="plan", event=state, execution=execution)
        if plan["done"]:
            return plan
        state = plan
        if plan["count"]:
            counts = [call(module, step="count", part=part, plan=plan) for part in parts_of(s3, plan)]
            numbered = call(module, step="number", plan={**plan, "counts": counts}, counts=counts)
            assert numbered == {"rows": sum(counts)}  # the state machine selects Payload.rows
        for part in parts_of(s3, plan):
            score_part(module, s3, plan, part)
        return call(module, step="assemble", plan=plan)
    except Exception as error:
        failed = call(module, step="abort", state={**state, "error": {"Error": type(error).__name__,
                                                                       "Cause": str(error)}},
                      execution=execution)
        raise Aborted(failed["cause"]) from error


class Aborted(Exception):
    pass


def score_part(module, s3, plan, part, attempt=0):
    return call(module, step="score", part=part, plan=plan, attempt=attempt)


def parts_of(s3, plan) -> list[dict]:
    return json.loads(s3.get_object(Bucket=BUCKET, Key=f"{plan['work']}parts.json")["Body"].read())


def text(s3, key):
    return s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode()


def keys(s3, prefix):
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", []))


def messy_csv(model, rows=60) -> bytes:
    """Rows as spreadsheets write them, with invalid ones spread through the file."""
    lines = model.csv(rows).splitlines()
    lines[0] = "\ufeff" + lines[0]
    lines[3] = "x," + lines[3].split(",", 1)[1]  # a word in a number column
    lines[17] = lines[17].rsplit(",", 1)[0]  # a value short
    lines[29] = lines[29] + ",9"  # a value too many
    lines[40] = ""  # a blank line: not a row
    lines[41] = lines[41].replace(",", ",,", 1).rsplit(",", 1)[0]  # an empty cell: missing, not allowed here
    lines[50] = "1e999," + lines[50].split(",", 1)[1]  # not a finite number
    return ("\r\n".join(lines) + "\r\n").encode()
