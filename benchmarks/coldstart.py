"""One fresh process: import a handler, answer the first /predict, then warm calls.

    python coldstart.py MODULE EVENT_FILE [--warm N] [--also=LABEL=EVENT_FILE ...] [--floors]

``--floors`` (the project's handler only) also times each part of a warm answer alone.

Run by benchmarks/serving_benchmark.py with the function's own interpreter and package;
prints one JSON line. Times exclude the interpreter's own start (the same for
every handler); ``process_ms`` in the caller includes it.
"""

import json
import os
import sys
import time

from lambda_process import Context, peak_rss_mb, quiet_call

started = time.perf_counter()
module_name, event_file = sys.argv[1], sys.argv[2]
warm = int(sys.argv[4]) if len(sys.argv) > 4 and sys.argv[3] == "--warm" else 0
also = dict(arg.removeprefix("--also=").split("=", 1) for arg in sys.argv[3:] if arg.startswith("--also="))
floors = "--floors" in sys.argv[3:]
WARMUP = 300


def rows_1000_ms(path: str, calls: int = 20) -> list[float]:
    """The sorted times (ms) of ``calls`` answers to a 1000-row request; it must answer 1000 rows."""
    with open(path) as handle:
        event = json.load(handle)
    times = []
    for _ in range(calls):
        t = time.perf_counter()
        answer = quiet_call(module.handler, event)
        times.append((time.perf_counter() - t) * 1000)
    if len(json.loads(answer["body"])["predictions"]) != 1000:
        raise SystemExit(f"{path}: the 1000-row request did not answer 1000 rows")
    return sorted(times)


def p50_p99(function, calls: int) -> tuple[float, float]:
    timings = []
    for _ in range(calls):
        t = time.perf_counter()
        function()
        timings.append((time.perf_counter() - t) * 1e6)
    timings.sort()
    return timings[len(timings) // 2], timings[int(len(timings) * 0.99) - 1]


def floor_parts(module, event: dict, calls: int) -> dict:
    """Where a warm single-row answer's time goes: each part of the path timed alone (p50, µs)."""
    import orjson

    app = module.app  # handlers.api's PredictionApi
    predictor = app.serving_model(app.settings.default_model)
    body = orjson.loads(event["body"])
    X = predictor.schema.matrix(body, max_rows=app.settings.max_rows)
    answer = predictor.answer(predictor.predict_matrix(X))

    def respond():  # routing, validation, evaluation, answer; no logging, metrics left unflushed
        app.respond(event, Context())
        app.metrics.clear_metrics()

    def json_alone():  # the request's body parsed, the answer written
        orjson.loads(event["body"])
        orjson.dumps(answer)

    return {
        "floor_json_parse_and_dump_p50_us": p50_p99(json_alone, calls)[0],
        "floor_validation_p50_us": p50_p99(lambda: predictor.schema.matrix(body, max_rows=1000), calls)[0],
        "floor_evaluator_p50_us": p50_p99(lambda: predictor.predict_matrix(X), calls)[0],
        "floor_answer_without_logging_or_metrics_p50_us": p50_p99(respond, calls)[0],
    }


module = __import__(module_name, fromlist=["handler"])
imported = time.perf_counter()
with open(event_file) as handle:
    event = json.load(handle)
response = quiet_call(module.handler, event)
first = time.perf_counter()
if response["statusCode"] != 200:
    raise SystemExit(f"the first /predict failed: {response}")
result = {
    "import_ms": (imported - started) * 1000,
    "first_response_ms": (first - started) * 1000,
    "cold_peak_rss_mb": peak_rss_mb(),
}
if warm:
    # untimed calls first, as any benchmark warms up: the first hundreds of calls after a cold start
    # ran up to 2x slower in some processes (the local cloud still busy on the cores after the fetch)
    for _ in range(WARMUP):
        quiet_call(module.handler, event)
    single = []
    for _ in range(warm):
        t = time.perf_counter()
        quiet_call(module.handler, event)
        single.append((time.perf_counter() - t) * 1e6)
    single.sort()
    batch = rows_1000_ms(event_file.replace(".json", "-1000.json"))
    arrays_file = event_file.replace(".json", "-1000-features.json")
    if module_name == "handlers.api" and os.path.exists(arrays_file):  # the rows as arrays, in schema order
        arrays = rows_1000_ms(arrays_file)
        result["warm_1000_rows_features_median_ms"] = arrays[len(arrays) // 2]
    for label, path in also.items():  # the other routes, with the same single-row timing
        with open(path) as handle:
            other = json.load(handle)
        calls = warm if not label.startswith("explain") else max(50, warm // 10)
        timings = []
        for _ in range(calls):
            t = time.perf_counter()
            answer = quiet_call(module.handler, other)
            timings.append((time.perf_counter() - t) * 1e6)
        if answer["statusCode"] != 200:
            raise SystemExit(f"{label} failed: {answer}")
        timings.sort()
        key = label.replace("-", "_")
        result[f"warm_{key}_p50_us"] = timings[len(timings) // 2]
        result[f"warm_{key}_p99_us"] = timings[int(len(timings) * 0.99) - 1]
    if floors:
        result.update(floor_parts(module, event, warm))
    result.update(
        warm_single_p50_us=single[len(single) // 2],
        warm_single_p99_us=single[int(len(single) * 0.99) - 1],
        warm_1000_rows_median_ms=batch[len(batch) // 2],
        peak_rss_mb=peak_rss_mb(),
    )
print(json.dumps(result))
