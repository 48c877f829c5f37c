"""One container serving several models, as the benchmark's function process: memory and warm latency.

    python container.py CALLS EVENT_FILE [EVENT_FILE ...]

Run by benchmarks/serving_benchmark.py with the function's own interpreter and package.
For each event in turn (each names its model: /models/{name}/predict): the first call
(the model's load, S3 fetch included), the process's resident memory after it, then
CALLS warm calls (p50 and p99) after WARMUP untimed ones. Prints one JSON line: a list, one entry per event.
"""

import json
import sys
import time

from lambda_process import Context, quiet_call, rss_mb

calls = int(sys.argv[1])
WARMUP = 300
module = __import__("handlers.api", fromlist=["handler"])
results = []
for path in sys.argv[2:]:
    with open(path) as handle:
        event = json.load(handle)
    started = time.perf_counter()
    response = quiet_call(module.handler, event, Context())
    first_ms = (time.perf_counter() - started) * 1000
    if response["statusCode"] != 200:
        raise SystemExit(f"{path}: {response}")
    memory = rss_mb()
    for _ in range(WARMUP):  # untimed, as coldstart.py's warm calls (it says why)
        quiet_call(module.handler, event, Context())
    timings = []
    for _ in range(calls):
        t = time.perf_counter()
        quiet_call(module.handler, event, Context())
        timings.append((time.perf_counter() - t) * 1e6)
    timings.sort()
    results.append({"event": path, "first_call_ms": round(first_ms, 1), "rss_mb_after_load": round(memory, 1),
                    "warm_p50_us": round(timings[len(timings) // 2], 1),
                    "warm_p99_us": round(timings[max(0, int(len(timings) * 0.99) - 1)], 1)})
print(json.dumps(results))
