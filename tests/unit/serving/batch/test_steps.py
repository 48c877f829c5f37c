"""The batch-scoring state machine's steps (serving.batch.steps), run in order in-process against moto.

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
from serving.batch import parquet, rows
from serving.model import bundle
from serving.settings import Settings
from serving.store import bundles

from tests.models import case
from tests.unit.conftest import BUCKET
from tests.unit.serving.batch.helpers import (
    call,
    event_of,
    keys,
    messy_csv,
    parts_of,
    run_file,
    score_part,
    text,
)


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


def test_the_manifest_counts_rows_and_names_the_version_parts_and_timings(s3, steps, monkeypatch):
    model = case("bc-lightgbm")
    upload = s3.upload_fileobj
    monkeypatch.setattr(s3, "upload_fileobj", lambda *a, **k: time.sleep(0.004) or upload(*a, **k))
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
    assert parts[0]["timings"]["model_s"] > 0 and parts[0]["timings"]["upload_s"] >= 0.008  # two files, 4 ms each
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
    from tests.unit.fakes import metrics_of

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
