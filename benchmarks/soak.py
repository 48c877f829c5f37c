"""A warm container's memory over a long run: does it grow?

    python soak.py CALLS EVENT_FILE [EVENT_FILE ...]

Run by benchmarks/serving_benchmark.py with the function's own interpreter and package, as
container.py. The events (several models, predict and explain) are sent in turn, with a body
that is not JSON and a name that is not valid among them, CALLS requests in all. The resident
memory is read after a warm-up (every event and every model loaded, caches full) and every
tenth of the run; prints one JSON line: the memory then and at the end, its largest growth, the
answers by status. An answer of 5xx stops the run.
"""

import copy
import json
import sys

from lambda_process import Context, quiet_call, rss_mb

calls = int(sys.argv[1])
WARMUP = 5_000
module = __import__("handlers.api", fromlist=["handler"])
events = []
for path in sys.argv[2:]:
    with open(path) as handle:
        events.append(json.load(handle))
broken = copy.deepcopy(events[0])
broken["body"], broken["isBase64Encoded"] = "{not json", False
misnamed = copy.deepcopy(events[0])
misnamed["pathParameters"] = {"name": "..%2Fsecrets"}
misnamed["resource"] = "/models/{name}/predict"
events += [broken, misnamed]

statuses: dict[str, int] = {}


def send(i: int) -> None:
    response = quiet_call(module.handler, events[i % len(events)], Context())
    status = response["statusCode"]
    statuses[str(status)] = statuses.get(str(status), 0) + 1
    if status >= 500:
        raise SystemExit(f"event {i % len(events)}: {response}")


for i in range(WARMUP):
    send(i)
statuses.clear()
start = rss_mb()
samples = []
for i in range(calls):
    send(i)
    if (i + 1) % max(1, calls // 10) == 0:
        samples.append(round(rss_mb(), 2))
print(json.dumps({"requests": calls, "events": len(events), "rss_mb_after_warmup": round(start, 2),
                  "rss_mb_at_end": samples[-1], "rss_mb_samples": samples,
                  "growth_mb": round(max(samples) - start, 2), "statuses": statuses}))
