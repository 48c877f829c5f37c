"""The batch-scoring state machine's steps (handlers.batch), run in order in-process against moto.

`run_file` does what the state machine in template.yaml does: plan, count and number
when there are several parts, score every part, assemble, and abort after a failure.
The integration tests run the real state machine on LocalStack.
"""

import csv
import io
import json
import logging
import time

import numpy as np
import pytest
from serving.batch import parquet, rows, s3file
from serving.batch import steps as steps_module
from serving.model import bundle
from serving.settings import Settings
from serving.store import bundles

from tests.models import case
from tests.unit.conftest import BUCKET


class Context:
    function_name, memory_limit_in_mb = "batch", 1769
    invoked_function_arn, aws_request_id = "arn:aws:lambda:us-east-1:0:function:batch", "r"


@pytest.fixture
def steps(s3, monkeypatch):
    model = case("bc-lightgbm")
    manifest = bundles.publish(s3, BUCKET, "breast-cancer", model.arrays, model.manifest_fields())
    bundles.set_champion(s3, BUCKET, "breast-cancer", manifest["version"], "test")
    monkeypatch.setenv("MODEL_BUCKET", BUCKET)
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "Test")

    steps_module.configure(Settings.from_env())
    return steps_module


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


def test_a_file_cut_into_many_parts_gives_what_one_part_gives(s3, steps):
    model = case("bc-lightgbm")
    data = messy_csv(model)
    s3.put_object(Bucket=BUCKET, Key="batch/input/whole.csv", Body=data)
    s3.put_object(Bucket=BUCKET, Key="batch/input/parts.csv", Body=data)
    whole = run_file(steps, s3, "batch/input/whole.csv", execution="a")
    parted = run_file(steps, s3, "batch/input/parts.csv", execution="b", part_megabytes=1500 / (1 << 20))
    assert whole["parts"] == 1 and 5 <= parted["parts"] <= len(data) // 1500 + 1
    assert (whole["rows"], whole["predicted"], whole["invalid"]) == (59, 54, 5)
    assert {k: parted[k] for k in ("rows", "predicted", "invalid")} == {k: whole[k] for k in ("rows", "predicted",
                                                                                               "invalid")}
    for output in ("predictions", "errors"):
        assert text(s3, f"batch/output/parts.{output}.csv") == text(s3, f"batch/output/whole.{output}.csv")
    predictions = list(csv.DictReader(io.StringIO(text(s3, "batch/output/parts.predictions.csv"))))
    errors = list(csv.DictReader(io.StringIO(text(s3, "batch/output/parts.errors.csv"))))
    # numbered as in the file, the blank line skipped
    assert [(e["row_id"], e["field"]) for e in errors] == [
        ("3", "mean radius"), ("17", ""), ("29", ""), ("40", "mean texture"), ("49", "mean radius")]
    assert len(predictions) == 54 and predictions[0]["row_id"] == "1"
    valid = [i for i in range(60) if i + 1 not in (3, 17, 29, 40, 41, 50)]
    served = np.array([[float(r[f"probability_{c}"]) for c in model.classes] for r in predictions])
    assert np.max(np.abs(served - model.native[valid])) <= 1e-12
    assert keys(s3, "batch/work/") == []  # the work files are gone


def test_the_manifest_counts_rows_and_names_the_version_parts_and_timings(s3, steps):
    model = case("bc-lightgbm")
    s3.put_object(Bucket=BUCKET, Key="batch/input/m.csv", Body=messy_csv(model))
    started = time.perf_counter()
    answer = run_file(steps, s3, "batch/input/m.csv", part_megabytes=2000 / (1 << 20))
    took = time.perf_counter() - started
    manifest = json.loads(text(s3, "batch/output/m.manifest.json"))
    assert answer["manifest"] == "batch/output/m.manifest.json"
    assert {k: manifest[k] for k in ("input", "model", "model_version", "rows", "predicted", "invalid")} == {
        "input": "batch/input/m.csv", "model": "breast-cancer", "model_version": 1,
        "rows": 59, "predicted": 54, "invalid": 5}
    assert manifest["outputs"] == ["batch/output/m.predictions.csv", "batch/output/m.errors.csv"]
    parts = manifest["parts"]
    assert len(parts) == answer["parts"] > 1
    assert sum(p["rows"] for p in parts) == 59 and [p["index"] for p in parts] == list(range(len(parts)))
    assert [p["first_row"] for p in parts] == [1 + sum(q["rows"] for q in parts[:i]) for i in range(len(parts))]
    assert all(p["seconds"] >= 0 and p["peak_rss_mb"] > 0 for p in parts)
    assert sum(p["seconds"] for p in parts) <= took  # each part's own time, within the whole run's
    assert all(10 <= p["peak_rss_mb"] <= steps._peak_rss_mb() + 0.1 for p in parts)  # this process's, in MB
    for p in parts:  # where a part's seconds went: within them, none negative
        assert set(p["timings"]) == {"model_s", "read_wait_s", "upload_s"}
        assert min(p["timings"].values()) >= 0 and sum(p["timings"].values()) <= p["seconds"] + 0.002
    assert parts[0]["timings"]["model_s"] > 0 and parts[0]["timings"]["upload_s"] > 0
    assert manifest["timings"]["seconds"] >= 0 and manifest["timings"]["finished"] >= manifest["timings"]["started"]


def test_a_scored_file_is_logged_with_its_plan_and_its_totals(s3, steps, caplog):
    model = case("bc-lightgbm")
    s3.put_object(Bucket=BUCKET, Key="batch/input/m.csv", Body=messy_csv(model))
    with caplog.at_level(logging.INFO):
        answer = run_file(steps, s3, "batch/input/m.csv", part_megabytes=2000 / (1 << 20))
    fields = ("key", "model", "model_version", "size", "parts")
    [planned] = [{k: getattr(r, k) for k in fields} for r in caplog.records if r.getMessage() == "planned"]
    assert planned == {"key": "batch/input/m.csv", "model": "breast-cancer", "model_version": 1,
                       "size": len(messy_csv(model)), "parts": answer["parts"]}
    fields = ("input", "rows", "predicted", "invalid", "parts")
    [scored] = [{k: getattr(r, k) for k in fields} for r in caplog.records if r.getMessage() == "scored a file"]
    assert scored == {"input": "batch/input/m.csv", "rows": 59, "predicted": 54, "invalid": 5,
                      "parts": answer["parts"]}


def test_a_part_streamed_in_small_chunks_gives_what_one_chunk_gives(s3, steps, monkeypatch):
    model = case("bc-lightgbm")
    data = messy_csv(model).rstrip(b"\r\n")  # the last row without a line end
    s3.put_object(Bucket=BUCKET, Key="batch/input/big.csv", Body=data)
    s3.put_object(Bucket=BUCKET, Key="batch/input/small.csv", Body=data)
    run_file(steps, s3, "batch/input/big.csv", execution="a", part_megabytes=3000 / (1 << 20))
    monkeypatch.setattr(s3file, "READ_BYTES", 100)
    sizes, waits = [], []
    real = s3file.prefetched

    def prefetched(chunks, read=None):  # what the read-ahead is given, and whether it counts waits
        waits.append(read)
        return real((sizes.append(len(c)) or c for c in chunks), read=read)

    monkeypatch.setattr(s3file, "prefetched", prefetched)
    # (every part's bytes read are checked against its range when the file is assembled)
    answer = run_file(steps, s3, "batch/input/small.csv", execution="b", part_megabytes=3000 / (1 << 20))
    assert answer["rows"] == 59 and max(sizes) == 100 and len(sizes) >= len(data) // 100
    assert all(isinstance(read, s3file.Read) for read in waits)
    for output in ("predictions", "errors"):
        assert text(s3, f"batch/output/small.{output}.csv") == text(s3, f"batch/output/big.{output}.csv")
    manifest = json.loads(text(s3, "batch/output/small.manifest.json"))
    timings = manifest["timings"]
    assert timings["seconds"] == round(timings["finished"] - timings["started"], 3)
    assert timings["worker_seconds"] == round(sum(p["seconds"] for p in manifest["parts"]), 3)


def test_a_byte_order_mark_inside_the_file_is_data_even_where_a_part_starts(s3, steps):
    # only the file's first bytes may be a mark: a line further on that starts with one is read as
    # it is, whichever part it falls at the start of (here every row is a part)
    model = case("bc-lightgbm")
    names = [f["name"] for f in model.schema]
    lines = [",".join(names)] + [",".join(str(row[n]) for n in names) for row in model.instances[:12]]
    lines[6] = "\ufeff" + lines[6]
    body = ("\n".join(lines) + "\n").encode()
    for key in ("one", "many"):
        s3.put_object(Bucket=BUCKET, Key=f"batch/input/{key}.csv", Body=body)
    run_file(steps, s3, "batch/input/one.csv", execution="one")
    answer = run_file(steps, s3, "batch/input/many.csv", execution="many", part_megabytes=100 / (1 << 20))
    assert answer["parts"] == 12 and (answer["rows"], answer["invalid"]) == (12, 1)  # a part per row
    for output in ("predictions", "errors"):
        assert text(s3, f"batch/output/many.{output}.csv") == text(s3, f"batch/output/one.{output}.csv")
    assert list(csv.reader(io.StringIO(text(s3, "batch/output/many.errors.csv"))))[1][:2] == ["6", names[0]]


def test_json_lines_in_parts_are_numbered_as_in_one_part(s3, steps):
    model = case("bc-lightgbm")
    lines = [json.dumps(i) for i in model.instances[:30]]
    lines[4] = "{not json"
    lines[9] = json.dumps({"id": "given", **model.instances[9]})
    s3.put_object(Bucket=BUCKET, Key="batch/input/a.jsonl", Body="\n".join(lines).encode())
    # a byte-order mark, as some editors save: dropped at the file's start, by the part that starts there
    s3.put_object(Bucket=BUCKET, Key="batch/input/b.jsonl", Body="\ufeff".encode() + "\n".join(lines).encode())
    run_file(steps, s3, "batch/input/a.jsonl", execution="a")
    answer = run_file(steps, s3, "batch/input/b.jsonl", execution="b", part_megabytes=700 / (1 << 20))
    assert answer["parts"] >= 3 and (answer["rows"], answer["predicted"]) == (30, 29)
    assert text(s3, "batch/output/a.predictions.csv") == text(s3, "batch/output/b.predictions.csv")
    rows = list(csv.DictReader(io.StringIO(text(s3, "batch/output/b.predictions.csv"))))
    assert [r["row_id"] for r in rows[7:10]] == ["9", "given", "11"]  # the broken line 5 is not among them
    assert list(csv.reader(io.StringIO(text(s3, "batch/output/b.errors.csv"))))[1][0] == "5"


def test_a_csv_with_ids_keeps_them_and_a_header_only_file_gives_headers(s3, steps):
    model = case("bc-lightgbm")
    lines = model.csv(8).splitlines()
    body = "\n".join([f"id,{lines[0]}"] + [f"r{i},{line}" for i, line in enumerate(lines[1:])]) + "\n"
    s3.put_object(Bucket=BUCKET, Key="batch/input/ids.csv", Body=body.encode())
    s3.put_object(Bucket=BUCKET, Key="batch/input/none.csv", Body=f"{lines[0]}\n".encode())
    run_file(steps, s3, "batch/input/ids.csv", part_megabytes=300 / (1 << 20))
    rows = list(csv.DictReader(io.StringIO(text(s3, "batch/output/ids.predictions.csv"))))
    assert [r["row_id"] for r in rows] == [f"r{i}" for i in range(8)]
    empty = run_file(steps, s3, "batch/input/none.csv", execution="e")
    assert (empty["rows"], empty["parts"]) == (0, 1)
    assert text(s3, "batch/output/none.predictions.csv") == "row_id,label,probability_benign,probability_malignant\n"
    assert keys(s3, "batch/output/none.") == ["batch/output/none.manifest.json",
                                               "batch/output/none.predictions.csv"]


def test_a_retried_part_replaces_its_half_written_output(s3, steps):
    model = case("bc-lightgbm")
    s3.put_object(Bucket=BUCKET, Key="batch/input/r.csv", Body=messy_csv(model))
    s3.put_object(Bucket=BUCKET, Key="batch/input/clean.csv", Body=messy_csv(model))
    run_file(steps, s3, "batch/input/clean.csv", execution="clean", part_megabytes=2000 / (1 << 20))
    options = {"part_megabytes": 2000 / (1 << 20), "fault": {"part": 1, "attempts": 1}}
    plan = call(steps, step="plan", event=event_of("batch/input/r.csv", **options), execution="r")
    counts = [call(steps, step="count", part=p, plan=plan) for p in parts_of(s3, plan)]
    call(steps, step="number", plan=plan, counts=counts)
    parts = parts_of(s3, plan)
    with pytest.raises(steps.InjectedFault, match="part 1 failed on purpose"):
        score_part(steps, s3, plan, parts[1], attempt=0)
    half = text(s3, f"{plan['work']}part-00001.predictions.csv")
    assert len(half) > 0 and f"{plan['work']}part-00001.json" not in keys(s3, plan["work"])
    for part in parts:
        score_part(steps, s3, plan, part, attempt=1)
    assert len(half) < len(text(s3, f"{plan['work']}part-00001.predictions.csv"))  # the crash cut it short
    answer = call(steps, step="assemble", plan=plan)
    assert (answer["rows"], answer["predicted"]) == (59, 54)
    assert text(s3, "batch/output/r.predictions.csv") == text(s3, "batch/output/clean.predictions.csv")
    manifest = json.loads(text(s3, "batch/output/r.manifest.json"))
    assert [p["attempt"] for p in manifest["parts"]] == [1] * len(parts)


@pytest.mark.parametrize(("tamper", "message"), [
    (lambda r: r.update(rows=r["rows"] + 1), "rows read but"),
    (lambda r: r.update(model_version=2), "was scored by version 2, not the pinned 1"),
    (lambda r: r.update(bytes_read=r["bytes_read"] - 1), "bytes read"),
    (lambda r: r.update(first_row=r["first_row"] + 1), "was scored as another range"),
    (lambda r: r.update(rows=r["rows"] - 1, predicted=r["predicted"] - 1), "counted"),
    (None, r"part-00001.json is missing \(a worker did not finish\)"),
])
def test_rows_not_accounted_for_fail_the_file_and_write_nothing_final(s3, steps, tamper, message):
    model = case("bc-lightgbm")
    s3.put_object(Bucket=BUCKET, Key="batch/input/t.csv", Body=messy_csv(model))
    plan = call(steps, step="plan", event=event_of("batch/input/t.csv", part_megabytes=2000 / (1 << 20)),
                execution="t")
    counts = [call(steps, step="count", part=p, plan=plan) for p in parts_of(s3, plan)]
    call(steps, step="number", plan=plan, counts=counts)
    for part in parts_of(s3, plan):
        score_part(steps, s3, plan, part)
    record_key = f"{plan['work']}part-00001.json"
    if tamper is None:
        s3.delete_object(Bucket=BUCKET, Key=record_key)
    else:
        record = json.loads(text(s3, record_key))
        tamper(record)
        s3.put_object(Bucket=BUCKET, Key=record_key, Body=json.dumps(record).encode())
    with pytest.raises(steps.RowsNotAccountedFor, match=message):
        call(steps, step="assemble", plan=plan)
    assert keys(s3, "batch/output/") == []


def test_parts_that_do_not_cover_the_file_are_refused(steps):
    planned = {"key": "batch/input/x.csv", "size": 100, "model_version": 1}
    record = {"start": 0, "end": 60, "first_row": 1, "bytes_read": 60, "rows": 3, "predicted": 3, "invalid": 0,
              "model_version": 1}
    with pytest.raises(steps.RowsNotAccountedFor, match="the parts end at bytes 60, the file at 100"):
        steps.account(planned, [{"index": 0, "start": 0, "end": 60, "first_row": 1}], [record])
    with pytest.raises(steps.RowsNotAccountedFor, match="the parts end at bytes 0, the file at 100$"):
        steps.account(planned, [], [])  # no part at all: nothing read
    short = {**record, "start": 70, "end": 90, "bytes_read": 20}
    with pytest.raises(steps.RowsNotAccountedFor) as caught:  # every problem, each said once
        steps.account(planned, [{"index": 0, "start": 0, "end": 60, "first_row": 1},
                                {"index": 1, "start": 70, "end": 90, "first_row": 1}], [record, short])
    assert str(caught.value) == ("batch/input/x.csv: part 1 (bytes 70-90) does not start where the previous part "
                                 "ended (60); the parts end at bytes 90, the file at 100")
    gap = {**record, "start": 70, "end": 100, "bytes_read": 30}
    with pytest.raises(steps.RowsNotAccountedFor, match=r"does not start where the previous part ended \(60\)"):
        steps.account(planned, [{"index": 0, "start": 0, "end": 60, "first_row": 1},
                                {"index": 1, "start": 70, "end": 100, "first_row": 1}], [record, gap])
    assert steps.account({**planned, "size": 60}, [{"index": 0, "start": 0, "end": 60, "first_row": 1}],
                         [record]) == {"rows": 3, "predicted": 3, "invalid": 0}


def test_counts_that_do_not_match_the_parts_are_refused(s3, steps):
    model = case("bc-lightgbm")
    s3.put_object(Bucket=BUCKET, Key="batch/input/c.csv", Body=messy_csv(model))
    plan = call(steps, step="plan", event=event_of("batch/input/c.csv", part_megabytes=2000 / (1 << 20)),
                execution="c")
    with pytest.raises(steps.RowsNotAccountedFor, match="1 counts for"):
        call(steps, step="number", plan=plan, counts=[5])


def test_a_failure_removes_the_work_files_and_names_the_file(s3, steps, caplog):
    caplog.set_level(logging.ERROR)
    model = case("bc-lightgbm")
    s3.put_object(Bucket=BUCKET, Key="batch/input/f.csv", Body=messy_csv(model))
    with pytest.raises(Aborted) as failed:
        run_file(steps, s3, "batch/input/f.csv", part_megabytes=2000 / (1 << 20),
                 fault={"part": 0, "attempts": 1})
    assert str(failed.value) == ("batch/input/f.csv could not be scored: InjectedFault: part 0 failed on "
                                 "purpose (attempt 0)")
    assert keys(s3, "batch/work/") == [] and keys(s3, "batch/output/") == []
    [logged] = [r for r in caplog.records if r.getMessage() == "batch scoring failed"]
    assert (logged.input, logged.error) == ("batch/input/f.csv", "InjectedFault")


def test_abort_reads_a_lambda_error_document_and_the_state_before_planning(s3, steps):
    s3.put_object(Bucket=BUCKET, Key="batch/work/z/parts.json", Body=b"[]")
    cause = json.dumps({"errorMessage": "boom", "errorType": "RuntimeError", "stackTrace": []})
    state = {**event_of("batch/input/z.csv"), "error": {"Error": "RuntimeError", "Cause": cause}}
    answer = call(steps, step="abort", state=state, execution="z")
    assert answer == {"error": "BatchScoringFailed",
                      "cause": "batch/input/z.csv could not be scored: RuntimeError: boom"}
    assert keys(s3, "batch/work/") == []


@pytest.mark.parametrize(("error", "said"), [
    ({"Error": "States.Timeout"}, "States.Timeout: "),  # no cause
    ({}, "error: "),  # nothing said at all
    ({"Error": "E", "Cause": "42"}, "E: 42"),  # a cause that is JSON but not an error document
    ({"Error": "E", "Cause": '{"errorType": "E"}'}, 'E: {"errorType": "E"}'),  # a document without a message
    ({"Error": "E", "Cause": "x" * 40_000}, "E: " + "x" * 40_000),  # cut to what Step Functions keeps
])
def test_abort_says_what_it_was_told_within_step_functions_limits(s3, steps, error, said):
    state = {**event_of("batch/input/z.csv"), "error": error}
    answer = call(steps, step="abort", state=state, execution="z")
    assert answer["error"] == "BatchScoringFailed"
    assert answer["cause"] == f"batch/input/z.csv could not be scored: {said}"[:32_000]


def test_a_failed_file_is_counted_and_logged_with_its_cause(s3, steps, capsys, caplog):
    from tests.unit.serving.test_api_handler import metrics_of

    caplog.set_level(logging.INFO)
    capsys.readouterr()
    state = {**event_of("batch/input/z.csv"), "error": {"Error": "E", "Cause": "it broke"}}
    call(steps, step="abort", state=state, execution="z")
    metrics = metrics_of(capsys.readouterr().out)
    assert metrics["BatchFilesFailed"] == [1.0] and metrics["_units"]["BatchFilesFailed"] == "Count"
    [logged] = [r for r in caplog.records if r.getMessage() == "batch scoring failed"]
    assert (logged.input, logged.error, logged.cause) == ("batch/input/z.csv", "E", "it broke")


def test_the_champion_version_is_pinned_when_the_file_is_planned(s3, steps):
    model = case("bc-lightgbm")
    s3.put_object(Bucket=BUCKET, Key="batch/input/v.csv", Body=messy_csv(model))
    plan = call(steps, step="plan", event=event_of("batch/input/v.csv"), execution="v")
    other = case("bc-catboost")
    manifest = bundles.publish(s3, BUCKET, "breast-cancer", other.arrays, other.manifest_fields())
    bundles.set_champion(s3, BUCKET, "breast-cancer", manifest["version"], "promoted mid-run")
    for part in parts_of(s3, plan):
        score_part(steps, s3, plan, part)
    answer = call(steps, step="assemble", plan=plan)
    assert json.loads(text(s3, "batch/output/v.manifest.json"))["model_version"] == 1 == plan["model_version"]
    rows = list(csv.DictReader(io.StringIO(text(s3, "batch/output/v.predictions.csv"))))
    assert answer["predicted"] == len(rows) == 54
    assert float(rows[0]["probability_malignant"]) == pytest.approx(model.native[0][1], abs=1e-12)


def test_a_part_scores_the_pinned_version_only_when_its_manifest_is_the_one_pinned(s3, steps):
    model = case("bc-lightgbm")
    s3.put_object(Bucket=BUCKET, Key="batch/input/m.csv", Body=messy_csv(model))
    plan = call(steps, step="plan", event=event_of("batch/input/m.csv"), execution="m")
    pointer = json.loads(text(s3, "models/breast-cancer/champion.json"))
    assert plan["manifest_sha256"] == pointer["manifest_sha256"]
    [part] = parts_of(s3, plan)
    with pytest.raises(bundle.BundleError, match="does not match the champion pointer"):
        score_part(steps, s3, {**plan, "manifest_sha256": "0" * 64}, part)
    assert score_part(steps, s3, plan, part) == {"index": 0, "rows": 59}


def test_a_fault_without_a_number_of_attempts_fails_none(s3, steps):
    model = case("bc-lightgbm")
    s3.put_object(Bucket=BUCKET, Key="batch/input/n.csv", Body=messy_csv(model))
    plan = call(steps, step="plan", event=event_of("batch/input/n.csv", fault={"part": 0}), execution="n")
    [part] = parts_of(s3, plan)
    assert score_part(steps, s3, plan, part) == {"index": 0, "rows": 59}


def test_a_part_sent_without_an_attempt_number_is_its_first_attempt(s3, steps):
    model = case("bc-lightgbm")
    s3.put_object(Bucket=BUCKET, Key="batch/input/a.csv", Body=messy_csv(model))
    plan = call(steps, step="plan", event=event_of("batch/input/a.csv", fault={"part": 0, "attempts": 1}),
                execution="a")
    [part] = parts_of(s3, plan)
    with pytest.raises(steps.InjectedFault, match=r"part 0 failed on purpose \(attempt 0\)"):
        call(steps, step="score", part=part, plan=plan)


def test_a_parts_rows_are_counted_with_a_byte_order_mark_dropped_at_the_files_start_only(s3, steps):
    bom = b"\xef\xbb\xbf"
    data = bom + b"\n" + b'{"a": 1}\n' + bom + b"\n" + b'{"a": 2}\n'  # JSON lines: part 0 starts at byte 0
    s3.put_object(Bucket=BUCKET, Key="batch/input/bom.jsonl", Body=data)
    plan = {"bucket": BUCKET, "key": "batch/input/bom.jsonl"}

    def counted(start: int, end: int) -> int:
        return call(steps, step="count", part={"start": start, "end": end}, plan=plan)

    assert counted(0, len(bom) + 1) == 0  # a spreadsheet's mark and a blank line: no row
    middle = data.index(bom, 1)
    assert counted(middle, len(data)) == 2  # the same bytes within the file are a row (an invalid one)


def test_the_steps_count_rows_and_invalid_rows_as_metrics(s3, steps, capsys):
    from tests.unit.serving.test_api_handler import metrics_of

    s3.put_object(Bucket=BUCKET, Key="batch/input/m.csv", Body=messy_csv(case("bc-lightgbm")))
    capsys.readouterr()
    run_file(steps, s3, "batch/input/m.csv")
    metrics = metrics_of(capsys.readouterr().out)
    assert (metrics["BatchRows"], metrics["BatchInvalidRows"]) == ([59.0], [5.0])
    assert metrics["_units"]["BatchRows"] == metrics["_units"]["BatchInvalidRows"] == "Count"


def test_a_key_s3_sent_url_encoded_is_found(s3, steps):
    s3.put_object(Bucket=BUCKET, Key="batch/input/day 1.v2.csv", Body=case("bc-lightgbm").csv(5).encode())
    answer = run_file(steps, s3, "batch/input/day+1.v2.csv")
    assert (answer["input"], answer["rows"]) == ("batch/input/day 1.v2.csv", 5)
    assert keys(s3, "batch/output/") == ["batch/output/day 1.v2.manifest.json",
                                          "batch/output/day 1.v2.predictions.csv"]


def test_a_file_that_is_not_a_table_gets_an_errors_file_saying_why(s3, steps, caplog):
    caplog.set_level(logging.INFO)
    s3.put_object(Bucket=BUCKET, Key="batch/input/report.xlsx", Body=b"PK\x03\x04")
    s3.put_object(Bucket=BUCKET, Key="batch/input/empty.csv", Body=b"\n  \n")
    s3.put_object(Bucket=BUCKET, Key="batch/input/long.csv", Body=b"a" * ((1 << 20) + 5))
    s3.put_object(Bucket=BUCKET, Key="batch/input/table.parquet", Body=b"a,b\n1,2\n")
    s3.put_object(Bucket=BUCKET, Key="batch/input/zero.csv", Body=b"")
    names = ("report.xlsx", "empty.csv", "long.csv", "table.parquet", "zero.csv")
    answers = [run_file(steps, s3, f"batch/input/{name}", execution=name) for name in names]
    assert [a["unreadable"] for a in answers] == [
        "report.xlsx: use .csv, .jsonl, .ndjson, .parquet (CSV with a header, JSON lines or Parquet)",
        "the file is empty: a CSV needs a header of feature names",
        "the header does not end within the first 1 MiB",
        answers[3]["unreadable"],
        "the file is empty: a CSV needs a header of feature names"]
    assert answers[3]["unreadable"].startswith("not a Parquet file that can be read: ")
    assert all(a["done"] for a in answers)
    # the execution's output names the file and the model, as a scored file's does
    assert [(a["input"], a["model"]) for a in answers] == [(f"batch/input/{name}", "breast-cancer") for name in names]
    assert text(s3, "batch/output/empty.errors.csv") == (
        "row_id,field,message\n,,the file is empty: a CSV needs a header of feature names\n")
    warned = [r for r in caplog.records if r.getMessage() == "not scored"]
    assert [r.reason for r in warned] == [a["unreadable"] for a in answers]
    assert [r.input for r in warned] == [f"batch/input/{name}" for name in names]


@pytest.mark.parametrize(("data", "header", "rows_at"), [
    (b"a,b", ["a", "b"], 3),  # a header alone without a line end: the whole file
    (b"\xef\xbb\xbf\na,b\n1,2\n", ["a", "b"], 8),  # a spreadsheet's mark alone on the first line: blank
    (b"\xef\xbb\xbfa,b\n1,2\n", ["a", "b"], 7),  # the mark before the header's names
    (b"\n\xef\xbb\xbf\na,b\n", [], 5),  # after the first line a mark is not a spreadsheet's: not blank
])
def test_the_header_is_the_first_line_that_is_not_blank(s3, steps, data, header, rows_at):
    s3.put_object(Bucket=BUCKET, Key="batch/input/h.csv", Body=data)
    assert steps._read_header(BUCKET, "batch/input/h.csv", len(data)) == (header, rows_at)


def test_an_empty_file_is_not_read_for_a_header(steps, monkeypatch):
    monkeypatch.setattr(steps, "_read", lambda *args: pytest.fail(f"read {args}"))
    with pytest.raises(rows.UnsupportedFile, match="^the file is empty"):
        steps._read_header(BUCKET, "batch/input/zero.csv", 0)


@pytest.mark.parametrize(("head", "readable"), [
    (b"h" * 64 + b"\n" + b"1\n" * 100, False),  # a header one byte longer than the bytes read for it
    (b"h" * 63 + b"\n" + b"1\n" * 100, True),  # a header that fits, in a file longer than that
    (b"\n" + b"h" * 20 + b"\n" + b"1\n" * 100, True),  # a blank first line, then the header
])
def test_the_header_is_looked_for_in_the_first_bytes_only(s3, steps, monkeypatch, head, readable):
    monkeypatch.setattr(steps, "HEADER_BYTES", 64)
    s3.put_object(Bucket=BUCKET, Key="batch/input/h.csv", Body=head)
    if readable:
        header, start = steps._read_header(BUCKET, "batch/input/h.csv", len(head))
        assert header == [head.strip().split(b"\n")[0].decode()] and head[start:start + 2] == b"1\n"
    else:
        with pytest.raises(rows.UnsupportedFile, match="the header does not end within the first"):
            steps._read_header(BUCKET, "batch/input/h.csv", len(head))


@pytest.mark.parametrize(("key", "reason"), [
    ("batch/input/ghost/day.csv", "no model named 'ghost' has been published"),
    ("batch/input/Bad Name/day.csv", "model name 'Bad Name' is not valid"),
])
def test_a_file_in_a_folder_that_names_no_model_gets_an_errors_file(s3, steps, key, reason):
    s3.put_object(Bucket=BUCKET, Key=key, Body=case("bc-lightgbm").csv(2).encode())
    answer = run_file(steps, s3, key)
    assert answer["unreadable"].startswith(reason)
    assert (answer["input"], answer["model"]) == (key, key.split("/")[2])
    folder = key.split("/")[2]
    [error] = list(csv.DictReader(io.StringIO(text(s3, f"batch/output/{folder}/day.errors.csv"))))
    assert error["message"] == answer["unreadable"] and error["row_id"] == error["field"] == ""


def test_a_file_in_a_models_folder_is_scored_by_that_model(s3, steps):
    penguins = case("penguins-catboost")
    manifest = bundles.publish(s3, BUCKET, "penguins", penguins.arrays, penguins.manifest_fields())
    bundles.set_champion(s3, BUCKET, "penguins", manifest["version"], "test")
    s3.put_object(Bucket=BUCKET, Key="batch/input/penguins/day.csv", Body=penguins.csv(6).encode())
    answer = run_file(steps, s3, "batch/input/penguins/day.csv")
    assert (answer["predicted"], answer["manifest"]) == (6, "batch/output/penguins/day.manifest.json")
    rows = list(csv.DictReader(io.StringIO(text(s3, "batch/output/penguins/day.predictions.csv"))))
    served = np.array([[float(r[f"probability_{c}"]) for c in penguins.classes] for r in rows])
    assert np.max(np.abs(served - penguins.native[:6])) <= 1e-12


def test_without_a_champion_the_file_fails_loudly(s3, steps):
    s3.delete_object(Bucket=BUCKET, Key=bundle.champion_key("breast-cancer"))
    s3.put_object(Bucket=BUCKET, Key="batch/input/a.csv", Body=b"x\n1\n")
    with pytest.raises(Aborted, match="batch/input/a.csv could not be scored: RuntimeError: breast-cancer has no "
                                      "champion to score with"):
        run_file(steps, s3, "batch/input/a.csv")


def test_an_object_outside_the_input_prefix_or_an_unknown_step_is_refused(s3, steps):
    with pytest.raises(ValueError, match="batch/output/x.csv is not under batch/input/"):
        call(steps, step="plan", event=event_of("batch/output/x.csv"), execution="x")
    with pytest.raises(ValueError, match="unknown step 'bake': one of plan, count, number, score, assemble, abort"):
        call(steps, step="bake")


def parquet_bytes(columns: dict, row_group_size: int) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = io.BytesIO()
    pq.write_table(pa.table(columns), out, row_group_size=row_group_size)
    return out.getvalue()


def test_a_parquet_file_is_scored_in_parts_of_whole_row_groups_as_one_process_scores_it(s3, steps):
    model = case("bc-lightgbm")
    names = [f["name"] for f in model.schema]
    instances = (model.instances * 3)[:150]
    columns = {"id": [f"p{i}" for i in range(150)], **{n: [row[n] for row in instances] for n in names}}
    columns[names[2]][7] = None  # not allowed for this feature: reported
    columns["id"][130] = None  # a row without an id is named by its number, 131: the third part's 11th
    data = parquet_bytes(columns, row_group_size=20)  # 8 row groups
    s3.put_object(Bucket=BUCKET, Key="batch/input/rows.parquet", Body=data)
    answer = run_file(steps, s3, "batch/input/rows.parquet", part_megabytes=len(data) / 3 / (1 << 20))
    parts = json.loads(text(s3, "batch/output/rows.manifest.json"))["parts"]
    assert [(p["start"], p["end"], p["first_row"], p["rows"]) for p in parts] == [
        (0, 3, 1, 60), (3, 6, 61, 60), (6, 8, 121, 30)]  # whole row groups, numbered from the footer
    assert (answer["rows"], answer["predicted"], answer["invalid"]) == (150, 149, 1)
    predictions, errors = io.StringIO(), io.StringIO()  # the same file scored in one go, in memory
    version = json.loads(text(s3, "batch/output/rows.manifest.json"))["model_version"]
    parquet.score_parquet(io.BytesIO(data), steps._predictor("breast-cancer", version, None), predictions, errors)
    assert text(s3, "batch/output/rows.predictions.csv") == predictions.getvalue()
    assert text(s3, "batch/output/rows.errors.csv") == errors.getvalue()
    assert errors.getvalue().splitlines()[1].startswith(f"p7,{names[2]},")
    assert [line.split(",")[0] for line in predictions.getvalue().splitlines()[129:132]] == ["p129", "131", "p131"]
    assert keys(s3, "batch/work/") == []

def test_parquet_parts_are_one_row_group_at_least_and_a_file_of_none_is_one_empty_part(s3, steps):
    import pyarrow as pa

    data = parquet_bytes({"a": list(range(50))}, row_group_size=10)  # 5 row groups of 10
    s3.put_object(Bucket=BUCKET, Key="batch/input/g.parquet", Body=data)
    parts, groups = steps._parquet_parts(BUCKET, "batch/input/g.parquet", len(data), part_bytes=1)
    assert groups == 5 and [(p["index"], p["start"], p["end"], p["first_row"], p["counted"]) for p in parts] == [
        (i, i, i + 1, 10 * i + 1, 10) for i in range(5)]
    import pyarrow.parquet as pq

    out = io.BytesIO()
    pq.ParquetWriter(out, pa.schema([("a", pa.int64())])).close()  # a schema and no row group
    empty = out.getvalue()
    s3.put_object(Bucket=BUCKET, Key="batch/input/e.parquet", Body=empty)
    assert steps._parquet_parts(BUCKET, "batch/input/e.parquet", len(empty), part_bytes=1 << 20) == (
        [{"index": 0, "start": 0, "end": 0, "first_row": 1, "counted": 0}], 0)


def test_parquet_parts_that_miss_a_row_group_or_a_row_are_refused(steps):
    planned = {"key": "batch/input/x.parquet", "size": 4, "unit": "row groups", "model_version": 1}
    part = {"index": 0, "start": 0, "end": 4, "first_row": 1, "counted": 30}
    record = {"start": 0, "end": 4, "first_row": 1, "bytes_read": 4, "rows": 30, "predicted": 29, "invalid": 1,
              "model_version": 1}
    assert steps.account(planned, [part], [record]) == {"rows": 30, "predicted": 29, "invalid": 1}
    with pytest.raises(steps.RowsNotAccountedFor, match=r"part 0 \(row groups 0-4\): 3 row groups read"):
        steps.account(planned, [part], [{**record, "bytes_read": 3}])
    with pytest.raises(steps.RowsNotAccountedFor, match="29 rows scored but 30 counted"):
        steps.account(planned, [part], [{**record, "rows": 29, "predicted": 28}])
    with pytest.raises(steps.RowsNotAccountedFor, match="the parts end at row groups 4, the file at 5"):
        steps.account({**planned, "size": 5}, [part], [record])


def test_a_download_is_read_ahead_in_order_a_bounded_number_of_chunks(steps):
    import threading
    import time

    produced = []

    def chunks():
        for i in range(10):
            produced.append(i)
            yield bytes([i])

    reader = s3file.prefetched(chunks(), depth=2)
    assert next(reader) == b"\x00"
    time.sleep(0.2)  # the reader runs ahead while the consumer works, but no further than the queue holds
    assert 2 <= len(produced) <= 4
    assert b"".join(reader) == bytes(range(1, 10))
    assert not [t for t in threading.enumerate() if t.name == "s3-read-ahead"]


def test_the_time_the_scoring_waits_for_the_download_is_counted(steps):
    import time

    def slow():
        for i in range(4):
            time.sleep(0.05)
            yield bytes([i])

    read = s3file.Read()
    assert b"".join(s3file.prefetched(slow(), read=read)) == bytes(range(4))
    assert 0.18 <= read.waited <= 1.0  # four chunks, each 50 ms behind the consumer

    read = s3file.Read()
    assert list(s3file.prefetched(iter([b"a"]), read=read)) == [b"a"]
    assert read.waited < 0.05


def test_a_failed_download_fails_the_reader_and_a_reader_closed_early_stops_reading(steps):
    import threading

    def broken():
        yield b"a"
        raise ConnectionError("connection reset")

    with pytest.raises(ConnectionError, match="reset"):
        list(s3file.prefetched(broken()))
    produced = []

    def endless():
        while True:
            produced.append(1)
            yield b"x"

    reader = s3file.prefetched(endless(), depth=2)
    next(reader)
    reader.close()
    assert not [t for t in threading.enumerate() if t.name == "s3-read-ahead"]
    assert len(produced) <= 5


def test_a_reader_closed_while_its_download_waits_on_the_network_stops_quietly(steps):
    import threading
    import time

    def slow():
        yield b"a"
        time.sleep(0.3)  # the next chunk is late: the queue is empty when the consumer stops
        yield b"b"

    reader = s3file.prefetched(slow())
    assert next(reader) == b"a"
    [thread] = [t for t in threading.enumerate() if t.name == "s3-read-ahead"]
    assert thread.daemon  # a download that never ends cannot keep the function's process alive
    reader.close()  # waits for the reader, without an error, until it has seen the stop
    assert not thread.is_alive()


def test_a_reader_that_dies_of_anything_fails_the_download_instead_of_hanging(steps):
    def interrupted():
        yield b"a"
        raise KeyboardInterrupt

    reader = s3file.prefetched(interrupted())
    assert next(reader) == b"a"
    with pytest.raises(KeyboardInterrupt):
        next(reader)


def test_an_s3_object_reads_as_a_seekable_file(s3, steps):
    data = bytes(range(256)) * 4
    s3.put_object(Bucket=BUCKET, Key="batch/input/f.bin", Body=data)
    file = s3file.S3File(s3, BUCKET, "batch/input/f.bin", len(data))
    assert file.readable() and file.seekable()  # pyarrow asks both before it seeks
    assert file.tell() == 0 and file.read(3) == data[:3] and file.read(3) == data[3:6] and file.tell() == 6
    assert file.read(0) == b"" and file.tell() == 6
    assert file.read() == data[6:] and file.read() == b"" and file.read(5) == b""
    for size in (None, -1):
        file.seek(1000)
        assert file.read(size) == data[1000:]
    assert file.seek(-10, io.SEEK_END) == len(data) - 10 and file.read(4) == data[-10:-6]
    assert file.seek(2, io.SEEK_CUR) == len(data) - 4 and file.read(100) == data[-4:]
    assert file.seek(-5, io.SEEK_SET) == 0 and file.read(2) == data[:2]  # never before the start
    buffer = bytearray(8)
    assert file.readinto(buffer) == 8 and bytes(buffer) == data[2:10]
    file.seek(len(data) - 3)
    assert file.readinto(buffer) == 3 and bytes(buffer[:3]) == data[-3:]


@pytest.mark.parametrize(("status", "megabytes"), [
    ("Name:\tpython\nVmPeak:\t  999 kB\nVmHWM:\t    2560 kB\nVmRSS:\t  1024 kB\n", 2.5),
    ("Name:\tpython\n", 0.0),  # no such line (not Linux's format): no figure rather than a wrong one
    (None, 0.0),  # no /proc
])
def test_a_parts_peak_memory_is_the_processs_high_water_mark(steps, monkeypatch, status, megabytes):
    def fake_open(path, *args, **kwargs):
        assert path == "/proc/self/status"
        if status is None:
            raise FileNotFoundError(path)
        return io.StringIO(status)

    monkeypatch.setattr(steps, "open", fake_open, raising=False)
    assert steps._peak_rss_mb() == megabytes


def test_a_worker_scores_each_file_with_the_version_pinned_for_it(s3, steps):
    # one container, two files, a new champion between them: the second is scored by the new version,
    # not by the predictor the container kept from the first
    first, second = case("bc-lightgbm"), case("bc-catboost")
    for key, model in (("batch/input/one.csv", first), ("batch/input/two.csv", second)):
        if model is second:
            manifest = bundles.publish(s3, BUCKET, "breast-cancer", second.arrays, second.manifest_fields())
            bundles.set_champion(s3, BUCKET, "breast-cancer", manifest["version"], "test")
        s3.put_object(Bucket=BUCKET, Key=key, Body=first.csv(8).encode())
        run_file(steps, s3, key, execution=key)
    for name, model in (("one", first), ("two", second)):
        rows = list(csv.DictReader(io.StringIO(text(s3, f"batch/output/{name}.predictions.csv"))))
        served = np.array([float(r["probability_malignant"]) for r in rows])
        assert np.max(np.abs(served - model.native[:8, 1])) <= 1e-12, name
    assert np.max(np.abs(first.native[:8, 1] - second.native[:8, 1])) > 1e-3  # (the two models differ)


@pytest.mark.parametrize("policy", ["reject", "missing"])
def test_an_unknown_category_follows_the_functions_setting(s3, steps, monkeypatch, policy):
    from serving.model.predictor import Predictor

    penguins = case("penguins-catboost")
    manifest = bundles.publish(s3, BUCKET, "penguins", penguins.arrays, penguins.manifest_fields())
    bundles.set_champion(s3, BUCKET, "penguins", manifest["version"], "test")
    monkeypatch.setenv("UNKNOWN_CATEGORY", policy)
    steps.configure(Settings.from_env())
    module = steps
    lines = penguins.csv(4).splitlines()
    lines[2] = "Atlantis," + lines[2].split(",", 1)[1]  # the second row's island was never seen in training
    s3.put_object(Bucket=BUCKET, Key="batch/input/penguins/u.csv", Body="\n".join(lines).encode())
    answer = run_file(module, s3, "batch/input/penguins/u.csv")
    if policy == "reject":
        errors = list(csv.DictReader(io.StringIO(text(s3, "batch/output/penguins/u.errors.csv"))))
        assert (answer["predicted"], [(e["row_id"], e["field"]) for e in errors]) == (3, [("2", "island")])
        return
    assert (answer["predicted"], answer["invalid"]) == (4, 0)
    rows = list(csv.DictReader(io.StringIO(text(s3, "batch/output/penguins/u.predictions.csv"))))
    unseen = {**penguins.instances[1], "island": "Atlantis"}
    expected = Predictor(bundles.load(module.S3Reader.from_env(), BUCKET, "penguins", 1), unknown_category="missing") \
        .predict({"instances": [unseen]}, max_rows=1)["predictions"][0]["probabilities"]
    assert {c: float(rows[1][f"probability_{c}"]) for c in penguins.classes} == pytest.approx(expected, abs=1e-12)


def test_the_plan_counts_rows_only_for_several_parts_and_says_how_many_run_at_once(s3, steps):
    # the state machine counts and numbers the rows only when a file has several parts (its Choice
    # reads "count"), and runs at most "concurrency" parts at once (MaxConcurrencyPath)
    model = case("bc-lightgbm")
    data = messy_csv(model)
    for name in ("one", "two"):
        s3.put_object(Bucket=BUCKET, Key=f"batch/input/{name}.csv", Body=data)
    one = call(steps, step="plan", event=event_of("batch/input/one.csv"), execution="1")
    assert (one["parts"], one["count"], one["concurrency"]) == (1, False, steps.settings.batch_concurrency)
    halves = event_of("batch/input/two.csv", part_megabytes=0.6 * len(data) / (1 << 20), concurrency=3)
    two = call(steps, step="plan", event=halves, execution="2")
    assert (two["parts"], two["count"], two["concurrency"]) == (2, True, 3)
    whole = run_file(steps, s3, "batch/input/one.csv", execution="a")
    parted = run_file(steps, s3, "batch/input/two.csv", execution="b", part_megabytes=0.6 * len(data) / (1 << 20))
    assert (parted["parts"], parted["rows"], parted["invalid"]) == (2, whole["rows"], whole["invalid"])
    for output in ("predictions", "errors"):  # rows numbered as in one part
        assert text(s3, f"batch/output/two.{output}.csv") == text(s3, f"batch/output/one.{output}.csv")
