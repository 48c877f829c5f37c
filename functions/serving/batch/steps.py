"""Batch scoring at any size: the steps of the batch-scoring state machine (template.yaml).

A file created under ``batch/input/`` in the data bucket starts an execution (S3 →
EventBridge → Step Functions). ``batch/input/<file>`` is scored by the default model,
``batch/input/<model>/<file>`` by that model, into ``batch/output/`` (or
``batch/output/<model>/``): ``<name>.predictions.csv`` (one header, rows in input
order), ``<name>.errors.csv`` when rows are invalid, and ``<name>.manifest.json``
with the counts, the model version, the parts and the timings.

The steps, each a Lambda invocation (``handler`` dispatches on ``event["step"]``):

``plan``      pins the champion's version, reads the CSV header, cuts the file into
              line-aligned byte ranges (``serving.batch_parts``) and writes them to
              ``batch/work/<execution>/parts.json`` for the Map states to read.
              A file that is no table (or names no model) gets an errors file here.
``count``     a worker counts the rows of one range (only when there are several):
``number``    the counts become each part's first row number, so row ids are those
              one process scoring the whole file would give.
``score``     a worker scores one range with the pinned version into its own part
              files; a retry overwrites only them. Its part record is written last.
``assemble``  checks that every row is accounted for (rows read = predicted +
              invalid, every range read to its end by the pinned version, the
              counts agree), then puts the parts end to end server-side and writes
              the manifest. A mismatch fails the execution: nothing final is written.
``abort``     after any failure: removes the work files and names the file in the
              execution's error.

Reading and scoring rows is ``serving.batch.lines``' (and Parquet's); reading S3
objects ``serving.batch.s3file``'s; cutting and assembling ``serving.batch.parts``'.
``handlers/batch.py`` dispatches to ``STEPS``.
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from pathlib import PurePosixPath
from typing import Any

import numpy as np
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from serving.batch import evaluation, s3file
from serving.batch import parts as batch_parts
from serving.batch.csvfile import read_header
from serving.batch.jsonl import has_field
from serving.batch.lines import score_lines
from serving.batch.parquet import parquet_columns, parquet_row_groups, score_parquet
from serving.batch.payloads import Part, PartRecord, Plan, Totals
from serving.batch.rows import (
    BOM,
    INPUT_PREFIX,
    OUTPUT_PREFIX,
    PARQUET,
    WORK_PREFIX,
    UnsupportedFile,
    check_format,
    count_rows,
    data_lines,
)
from serving.batch.writer import ERRORS_HEADER, csv_line, output_header
from serving.model import bundle
from serving.model.predictor import Predictor
from serving.settings import Settings
from serving.store import bundles
from serving.store.registry import UnknownModel
from serving.store.s3 import S3Reader

settings: Settings  # set by configure(), once per container
logger = Logger(service="batch-score")
metrics = Metrics(namespace="TabularServerless", service="batch-score")
HEADER_BYTES = 1 << 20  # a CSV header must end within the file's first MiB
S3_ATTEMPTS = 6  # boto3's standard retry mode: the first try and five more, jittered backoff up to 20 s
_s3 = None
_predictors: dict[tuple[str, int], Predictor] = {}


class RowsNotAccountedFor(RuntimeError):
    """The parts do not add up to the file: the execution fails and nothing final is written."""


class InjectedFault(RuntimeError):
    """A failure asked for by the execution's input (``fault``): how the tests see a retry through."""


def configure(new: Settings) -> None:
    """The settings of a new container: what the function runs at init, and tests call anew."""
    global settings, _s3
    settings, _s3 = new, None
    _predictors.clear()


def s3():
    """boto3 here (unlike the API): ranged reads, multipart uploads and copies of big files.
    A request that fails (5xx, SlowDown, a reset, a timeout) is tried again with backoff, up to
    S3_ATTEMPTS times; a read of a body that breaks off is ``serving.batch.s3file``'s to retry."""
    global _s3
    if _s3 is None:
        import boto3
        from botocore.config import Config

        _s3 = boto3.client("s3", config=Config(
            retries={"mode": "standard", "total_max_attempts": S3_ATTEMPTS}, connect_timeout=5,
            read_timeout=settings.s3_read_timeout_seconds))
    return _s3


def reader() -> S3Reader:
    """The functions' own reader, for the bundle store: as patient as boto3 here (S3_ATTEMPTS tries,
    a minute in all), where no request waits on it."""
    return S3Reader.from_env(attempts=S3_ATTEMPTS, budget=60.0)


def locate(key: str) -> dict[str, str]:
    """An input key → the file's name, the model that scores it and the outputs' common prefix."""
    relative = PurePosixPath(key.removeprefix(INPUT_PREFIX))
    folder = f"{relative.parent}/" if relative.parent.parts else ""
    return {"name": relative.name, "model": relative.parts[0] if folder else settings.default_model,
            "stem": f"{OUTPUT_PREFIX}{folder}{relative.name.rsplit('.', 1)[0]}"}


def plan(event: dict[str, Any]) -> Plan | dict[str, Any]:
    """``event["event"]`` is the execution's input: S3's "Object Created" event (through EventBridge),
    or the same ``detail`` given to StartExecution with ``options`` (part_megabytes, concurrency, fault)."""
    source, execution = event["event"], event["execution"]
    bucket, key = _input_object(source["detail"])
    options = source.get("options") or {}
    where = locate(key)
    summary = {"input": key, "model": where["model"]}
    try:
        check_format(where["name"])
        pointer = _champion_pointer(where["model"])
    except (ValueError, UnknownModel) as problem:  # not a table, or no such model: say so beside the outputs
        return {"done": True, **_unreadable(bucket, key, where["stem"], str(problem), summary)}
    size = _size(bucket, key)
    csv_file = where["name"].endswith(".csv")
    parquet = where["name"].endswith(PARQUET)
    part_bytes = int(options.get("part_megabytes", settings.batch_part_megabytes) * (1 << 20))
    try:
        header, start = _read_header(bucket, key, size) if csv_file else (None, 0)
        if parquet:  # parts are runs of row groups, whose rows the footer gives: no count pass
            parts, units = _parquet_parts(bucket, key, size, part_bytes)
        labelled = _labelled(bucket, key, size, where, header, pointer)
    except UnsupportedFile as problem:
        return {"done": True, **_unreadable(bucket, key, where["stem"], str(problem), summary)}
    if not parquet:
        ranges = batch_parts.cut(size, start, part_bytes, lambda first, last: _read(bucket, key, first, last))
        ranges = ranges or [(start, start)]  # a header and no rows: one empty part, and an output of headers
        parts = [{"index": i, "start": a, "end": b, "first_row": 1} for i, (a, b) in enumerate(ranges)]
        units = size
    work = f"{WORK_PREFIX}{execution}/"
    s3().put_object(Bucket=bucket, Key=f"{work}parts.json", Body=json.dumps(parts).encode())
    planned: Plan = {
        "done": False, "bucket": bucket, "key": key, **where, "size": units, "bytes": size, "header": header,
        "unit": "row groups" if parquet else "bytes",
        "model_version": int(pointer["version"]), "manifest_sha256": pointer.get("manifest_sha256"),
        "work": work, "parts": len(parts), "count": len(parts) > 1 and not parquet,
        "concurrency": int(options.get("concurrency", settings.batch_concurrency)),
        "fault": options.get("fault"), "started": time.time(), "labelled": labelled,
    }
    logger.info("planned", extra={k: planned[k] for k in ("key", "model", "model_version", "size", "parts")})
    return planned


def _parquet_parts(bucket: str, key: str, size: int, part_bytes: int) -> tuple[list[Part], int]:
    """Parts of whole row groups, about ``part_bytes`` of the file each, numbered from the footer's
    row counts; and how many row groups the file has (what the parts must cover)."""
    rows = parquet_row_groups(s3file.S3File(s3(), bucket, key, size))
    groups_per_part = max(1, round(len(rows) * part_bytes / size))  # size > 0: the footer was read
    parts, first = [], 1
    for start in range(0, len(rows), groups_per_part):
        end = min(start + groups_per_part, len(rows))
        counted = sum(rows[start:end])
        parts.append({"index": len(parts), "start": start, "end": end, "first_row": first,
                      "counted": counted})
        first += counted
    return parts or [{"index": 0, "start": 0, "end": 0, "first_row": 1, "counted": 0}], len(rows)


def _input_object(detail: dict[str, Any]) -> tuple[str, str]:
    """The bucket and key of the dropped file.

    S3 URL-encodes keys in its event notifications ("a b.csv" arrives as "a+b.csv"); a key
    that does not exist as given is therefore looked up decoded.
    """
    bucket, key = detail["bucket"]["name"], detail["object"]["key"]
    if not key.startswith(INPUT_PREFIX):  # the EventBridge rule matches only these
        raise ValueError(f"{key} is not under {INPUT_PREFIX}")
    decoded = urllib.parse.unquote_plus(key)
    if decoded != key:
        try:
            s3().head_object(Bucket=bucket, Key=key)
        except s3().exceptions.ClientError as error:
            if error.response["Error"]["Code"] != "404":  # (a HEAD answer has no body to name NoSuchKey)
                raise
            return bucket, decoded
    return bucket, key


def _size(bucket: str, key: str) -> int:
    return s3().head_object(Bucket=bucket, Key=key)["ContentLength"]


def _champion_pointer(model: str) -> dict[str, Any]:
    bundle.check_name(model)
    store = reader()
    pointer = bundles.read_champion(store, settings.model_bucket, model)
    if pointer is None:
        if not bundles.has_versions(store, settings.model_bucket, model):
            raise UnknownModel(model)
        raise RuntimeError(f"{model} has no champion to score with")  # fails loudly: a setup problem
    return pointer


def _read(bucket: str, key: str, first: int, last: int) -> bytes:
    return s3file.read_range(s3(), bucket, key, first, last)


def _read_header(bucket: str, key: str, size: int) -> tuple[list[str], int]:
    """The CSV header (the first line that is not blank) and where the rows start."""
    head = _read(bucket, key, 0, min(size, HEADER_BYTES) - 1) if size else b""
    position = 0
    while position < len(head):
        end = head.find(b"\n", position)
        if end < 0 and len(head) < size:
            raise UnsupportedFile(f"the header does not end within the first {HEADER_BYTES >> 20} MiB")
        end = len(head) if end < 0 else end + 1
        line = head[position:end]
        if line.removeprefix(BOM).strip() if position == 0 else line.strip():
            return read_header(line), end
        position = end
    return read_header(None), size  # raises: the file is empty


def count(event: dict[str, Any]) -> int:
    part: Part = event["part"]
    planned: Plan = event["plan"]
    # closed when done: a reader thread is never left waiting on an abandoned download
    download = s3file.lines(s3(), planned["bucket"], planned["key"], part["start"], part["end"],
                            s3file.Read())
    with contextlib.closing(download) as lines:
        return count_rows(lines, at_file_start=part["start"] == 0)


def number(event: dict[str, Any]) -> dict[str, Any]:
    planned, counts = event["plan"], event["counts"]
    parts = _json(planned["bucket"], f"{planned['work']}parts.json")
    if len(counts) != len(parts):
        raise RowsNotAccountedFor(f"{len(counts)} counts for {len(parts)} parts of {planned['key']}")
    first = 1
    for part, rows in zip(parts, counts, strict=True):
        part.update(first_row=first, counted=rows)
        first += rows
    s3().put_object(Bucket=planned["bucket"], Key=f"{planned['work']}parts.json",
                    Body=json.dumps(parts).encode())
    return {"rows": first - 1}


def score(event: dict[str, Any]) -> dict[str, Any]:
    part: Part = event["part"]
    planned: Plan = event["plan"]
    attempt: int = event.get("attempt", 0)
    started = time.perf_counter()
    predictor = _predictor(planned["model"], planned["model_version"], planned.get("manifest_sha256"))
    loaded = time.perf_counter()
    bucket, prefix = planned["bucket"], f"{planned['work']}part-{part['index']:05d}"
    read = s3file.Read()
    fault = planned.get("fault") or {}
    failing = fault.get("part") == part["index"] and attempt < fault.get("attempts", 0)
    with tempfile.TemporaryFile() as predictions, tempfile.TemporaryFile() as errors:
        # the text wrappers are kept: one closes its file when it is collected
        predictions_text, errors_text = _text(predictions), _text(errors)
        if planned.get("unit") == "row groups":
            source = s3file.S3File(s3(), bucket, planned["key"], planned["bytes"])
            result = score_parquet(
                source, predictor, predictions_text, errors_text,
                row_groups=(part["start"], part["end"]), first_row=part["first_row"], headers=False,
                labelled=planned["labelled"])
            read.amount = result.row_groups
        else:
            download = s3file.lines(s3(), bucket, planned["key"], part["start"], part["end"], read)
            with contextlib.closing(download) as lines:
                result = score_lines(
                    lines, planned["name"], predictor, predictions_text, errors_text,
                    header=planned["header"], first_row=part["first_row"], at_file_start=part["start"] == 0,
                    headers=False, labelled=planned["labelled"])
        if failing:  # half of this part's output written, then a crash: the retry must replace it
            predictions.truncate(predictions.tell() // 2)
            _upload(predictions, bucket, f"{prefix}.predictions.csv")
            if fault.get("hang_seconds"):  # ...or a worker that hangs there: killed, or timed out
                logger.warning("hanging on purpose", extra={"part": part["index"], "attempt": attempt})
                time.sleep(fault["hang_seconds"])
            raise InjectedFault(f"part {part['index']} failed on purpose (attempt {attempt})")
        scored = time.perf_counter()
        sizes = {"predictions_bytes": _upload(predictions, bucket, f"{prefix}.predictions.csv"),
                 "errors_bytes": _upload(errors, bucket, f"{prefix}.errors.csv")}
        labels = _save_evaluated(result, predictor, bucket, prefix)
    record: PartRecord = {
        "index": part["index"], "start": part["start"], "end": part["end"], "bytes_read": read.amount,
        "first_row": part["first_row"], "rows": result.rows, "predicted": result.predicted,
        "invalid": result.invalid, "model_version": predictor.version, "attempt": attempt, **sizes,
        "output_header": output_header(predictor, planned["labelled"]), **labels,
        "seconds": round(time.perf_counter() - started, 3), "peak_rss_mb": round(_peak_rss_mb(), 1),
        # where the seconds went: loading the model (once per container), the scoring's waits for
        # the download (the read-ahead fell behind), the uploads of the part's outputs
        "timings": {"model_s": round(loaded - started, 3), "read_wait_s": round(read.waited, 3),
                    "upload_s": round(time.perf_counter() - scored, 3)},
        "finished": time.time(),
    }
    # last: a part with a record is complete
    s3().put_object(Bucket=bucket, Key=f"{prefix}.json", Body=json.dumps(record).encode())
    metrics.add_metric(name="BatchRows", unit=MetricUnit.Count, value=result.rows)
    metrics.add_metric(name="BatchInvalidRows", unit=MetricUnit.Count, value=result.invalid)
    return {"index": part["index"], "rows": result.rows}


def _predictor(model: str, version: int, manifest_sha256: str | None) -> Predictor:
    """The pinned version, kept for the container's next parts: every part of a file uses the same."""
    key = (model, version)
    if key not in _predictors:
        loaded = bundles.load(reader(), settings.model_bucket, model, version, manifest_sha256)
        _predictors.clear()  # one model at a time: a worker's memory stays that of one model
        _predictors[key] = Predictor(loaded, unknown_category=settings.unknown_category)
    return _predictors[key]


def assemble(event: dict[str, Any]) -> dict[str, Any]:
    planned: Plan = event["plan"]
    bucket, work = planned["bucket"], planned["work"]
    parts = _json(bucket, f"{work}parts.json")
    with ThreadPoolExecutor(16) as pool:
        records = list(pool.map(lambda p: _record(bucket, f"{work}part-{p['index']:05d}.json", planned),
                                parts))
    totals = account(planned, parts, records)
    stem = planned["stem"]
    predictions = [batch_parts.Source(data=csv_line(records[0]["output_header"]).encode())] + [
        batch_parts.Source(key=f"{work}part-{r['index']:05d}.predictions.csv", size=r["predictions_bytes"])
        for r in records]
    batch_parts.assemble(s3(), bucket, f"{stem}.predictions.csv", predictions)
    outputs = [f"{stem}.predictions.csv"]
    if totals["invalid"]:
        errors = [batch_parts.Source(data=csv_line(ERRORS_HEADER).encode())] + [
            batch_parts.Source(key=f"{work}part-{r['index']:05d}.errors.csv", size=r["errors_bytes"])
            for r in records if r["errors_bytes"]]
        batch_parts.assemble(s3(), bucket, f"{stem}.errors.csv", errors)
        outputs.append(f"{stem}.errors.csv")
    evaluated = _evaluation(planned, records) if planned["labelled"] else None
    finished = time.time()
    manifest = {
        "input": planned["key"], "model": planned["model"], "model_version": planned["model_version"],
        **totals, "outputs": outputs, **({"evaluation": evaluated} if evaluated is not None else {}),
        "parts": [{k: r[k] for k in ("index", "start", "end", "first_row", "rows", "predicted", "invalid",
                                     "attempt", "seconds", "timings", "peak_rss_mb", "finished")}
                  for r in records],
        "timings": {"started": planned["started"], "finished": finished,
                    "seconds": round(finished - planned["started"], 3),
                    "worker_seconds": round(sum(r["seconds"] for r in records), 3)},
    }
    s3().put_object(Bucket=bucket, Key=f"{stem}.manifest.json", Body=json.dumps(manifest, indent=1).encode())
    _remove_work(bucket, work)
    logger.info("scored a file", extra={"input": planned["key"], **totals, "parts": len(records)})
    return {"input": planned["key"], **totals, "parts": len(records), "manifest": f"{stem}.manifest.json"}


def _labelled(bucket: str, key: str, size: int, where: dict, header: list[str] | None, pointer: dict) -> bool:
    """Whether the file carries the model's target column: its CSV header, its Parquet schema, or
    its first JSON line says so. Every part is told, so that they all write the same columns."""
    manifest = bundles.read_manifest(reader(), settings.model_bucket, where["model"],
                                     int(pointer["version"]), pointer.get("manifest_sha256"))
    target = manifest.get("target")
    if target is None:
        return False
    if header is not None:
        return target in header
    if where["name"].endswith(PARQUET):
        return target in parquet_columns(s3file.S3File(s3(), bucket, key, size))
    head = _read(bucket, key, 0, min(size, HEADER_BYTES) - 1) if size else b""
    return has_field(next(data_lines(head.split(b"\n")), b""), target)  # (no line: not JSON, so no label)


def _save_evaluated(result, predictor: Predictor, bucket: str, prefix: str) -> dict[str, Any]:
    """A labelled part's actual values (as class codes, or numbers) and answers, kept beside its
    outputs for ``assemble`` to evaluate the whole file; what the record says of them."""
    if result.evaluated is None:
        return {}
    actuals, output = result.evaluated
    labels, unknown = evaluation.codes(actuals, predictor.classes)
    buffer = io.BytesIO()
    np.savez(buffer, labels=labels, output=output)
    s3().put_object(Bucket=bucket, Key=f"{prefix}.evaluation.npz", Body=buffer.getvalue())
    return {"labelled": len(actuals), "unknown_labels": sorted(set(unknown))[:evaluation.SHOWN_UNKNOWN],
            "unknown_label_rows": len(unknown)}


def _evaluation(planned: Plan, records: list[PartRecord]) -> dict[str, Any]:
    """The model's metrics on the file's labelled rows, from every part's kept answers."""
    rows = sum(r["labelled"] for r in records)  # every part of a labelled file says
    if rows > evaluation.MAX_ROWS:
        return {"skipped": f"{rows} labelled rows: more than the {evaluation.MAX_ROWS} evaluated at once"}
    bucket, work = planned["bucket"], planned["work"]
    labels, outputs = [], []
    for record in records:
        key = f"{work}part-{record['index']:05d}.evaluation.npz"
        with np.load(io.BytesIO(s3file.read_object(s3(), bucket, key))) as saved:
            labels.append(saved["labels"])
            outputs.append(saved["output"])
    # the classes from the pinned version's manifest: assemble never loads the model itself
    manifest = bundles.read_manifest(reader(), settings.model_bucket, planned["model"],
                                     planned["model_version"], planned["manifest_sha256"])
    unknown = [name for r in records for name in r["unknown_labels"]]
    return evaluation.evaluate(np.concatenate(labels), np.concatenate(outputs), manifest.get("classes") or [],
                               sum(r["unknown_label_rows"] for r in records), unknown,
                               manifest.get("decision_threshold"))


def _record(bucket: str, key: str, planned: Plan) -> PartRecord:
    try:
        return _json(bucket, key)
    except s3().exceptions.NoSuchKey:
        raise RowsNotAccountedFor(f"{planned['key']}: {key} is missing (a worker did not finish)") from None


def account(planned: Plan, parts: list[Part], records: list[PartRecord]) -> Totals:
    """Every row predicted or reported, every byte of the file read once, by the pinned version."""
    problems = []
    unit = planned.get("unit", "bytes")  # CSV and JSON lines are cut in bytes, Parquet in row groups
    expected_start = parts[0]["start"] if parts else 0
    for part, record in zip(parts, records, strict=True):
        where = f"part {part['index']} ({unit} {part['start']}-{part['end']})"
        if part["start"] != expected_start:
            problems.append(f"{where} does not start where the previous part ended ({expected_start})")
        expected_start = part["end"]
        if any(record[k] != part[k] for k in ("start", "end", "first_row")):
            problems.append(f"{where} was scored as another range")
        if record["bytes_read"] != part["end"] - part["start"]:
            problems.append(f"{where}: {record['bytes_read']} {unit} read")
        if record["rows"] != record["predicted"] + record["invalid"]:
            problems.append(f"{where}: {record['rows']} rows read but {record['predicted']} predicted "
                            f"and {record['invalid']} invalid")
        if "counted" in part and record["rows"] != part["counted"]:
            problems.append(f"{where}: {record['rows']} rows scored but {part['counted']} counted")
        if record["model_version"] != planned["model_version"]:
            problems.append(f"{where} was scored by version {record['model_version']}, "
                            f"not the pinned {planned['model_version']}")
    if expected_start != planned["size"]:
        problems.append(f"the parts end at {unit} {expected_start}, the file at {planned['size']}")
    if problems:
        raise RowsNotAccountedFor(f"{planned['key']}: " + "; ".join(problems))
    return Totals(rows=sum(r["rows"] for r in records), predicted=sum(r["predicted"] for r in records),
                  invalid=sum(r["invalid"] for r in records))


def abort(event: dict[str, Any]) -> dict[str, Any]:
    """After a failure: the work files go, and the execution's error names the file and why.

    ``event["state"]`` is the failed state's input with the error caught as ``error``: the
    execution's input when planning failed, the plan after it.
    """
    state = event["state"]
    if "detail" in state:
        bucket, key = state["detail"]["bucket"]["name"], state["detail"]["object"]["key"]
    else:
        bucket, key = state["bucket"], state["key"]
    error = state.get("error") or {}
    cause = error.get("Cause", "")
    with contextlib.suppress(ValueError, AttributeError):  # a Lambda error's cause is its JSON error document
        cause = json.loads(cause).get("errorMessage", cause)
    work = f"{WORK_PREFIX}{event['execution']}/"
    _remove_work(bucket, work)
    message = f"{key} could not be scored: {error.get('Error', 'error')}: {cause}"
    logger.error("batch scoring failed", extra={"input": key, "error": error.get("Error"), "cause": cause})
    metrics.add_metric(name="BatchFilesFailed", unit=MetricUnit.Count, value=1)
    return {"error": "BatchScoringFailed", "cause": message[:32_000]}


def _remove_work(bucket: str, prefix: str) -> None:
    client = s3()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})


def _json(bucket: str, key: str) -> Any:
    return json.loads(s3file.read_object(s3(), bucket, key))


def _unreadable(bucket: str, key: str, stem: str, reason: str, summary: dict) -> dict:
    """A file that cannot be scored at all gets an errors file that says why."""
    body = csv_line(ERRORS_HEADER) + csv_line(["", "", reason])
    s3().put_object(Bucket=bucket, Key=f"{stem}.errors.csv", Body=body.encode())
    logger.warning("not scored", extra={"input": key, "reason": reason})
    return {**summary, "unreadable": reason}


def _text(file) -> io.TextIOWrapper:
    return io.TextIOWrapper(file, encoding="utf-8", write_through=True)


def _upload(file, bucket: str, key: str) -> int:
    size = file.seek(0, io.SEEK_END)
    file.seek(0)
    s3().upload_fileobj(file, bucket, key)
    return size


def _peak_rss_mb() -> float:
    """The process's peak memory (VmHWM: ru_maxrss would be the parent's after fork+exec)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


STEPS = {"plan": plan, "count": count, "number": number, "score": score, "assemble": assemble, "abort": abort}
