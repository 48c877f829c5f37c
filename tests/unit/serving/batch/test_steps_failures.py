"""The batch steps when things go wrong: retries, rows not accounted for, aborts, bad input."""

import json
import logging

import pytest
from serving.model import bundle

from tests.models import case
from tests.unit.conftest import BUCKET
from tests.unit.serving.batch.helpers import (
    Aborted,
    call,
    event_of,
    keys,
    messy_csv,
    parts_of,
    run_file,
    score_part,
    text,
)


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
    from tests.unit.fakes import metrics_of

    caplog.set_level(logging.INFO)
    capsys.readouterr()
    state = {**event_of("batch/input/z.csv"), "error": {"Error": "E", "Cause": "it broke"}}
    call(steps, step="abort", state=state, execution="z")
    metrics = metrics_of(capsys.readouterr().out)
    assert metrics["BatchFilesFailed"] == [1.0] and metrics["_units"]["BatchFilesFailed"] == "Count"
    [logged] = [r for r in caplog.records if r.getMessage() == "batch scoring failed"]
    assert (logged.input, logged.error, logged.cause) == ("batch/input/z.csv", "E", "it broke")


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


def test_a_worker_asked_to_hang_writes_half_its_part_then_waits_before_it_fails(s3, steps, monkeypatch):
    slept = []
    monkeypatch.setattr(steps.time, "sleep", slept.append)
    model = case("bc-lightgbm")
    s3.put_object(Bucket=BUCKET, Key="batch/input/h.csv", Body=messy_csv(model))
    with pytest.raises(Aborted, match="part 0 failed on purpose"):
        run_file(steps, s3, "batch/input/h.csv", part_megabytes=2000 / (1 << 20),
                 fault={"part": 0, "attempts": 1, "hang_seconds": 30})
    assert slept == [30]
