"""One fresh process runs the batch-scoring handler on one S3 object; prints JSON.

    python batch_run.py BUCKET KEY
"""

import json
import sys
import time

started = time.perf_counter()
bucket, key = sys.argv[1], sys.argv[2]


def peak_rss_mb() -> float:
    with open("/proc/self/status") as status:  # VmHWM: this process's own peak
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


class Context:
    function_name = "bench-batch"
    memory_limit_in_mb = 1769
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:bench-batch"
    aws_request_id = "bench"


import handlers.batch  # noqa: E402

event = {"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
                      "s3": {"bucket": {"name": bucket}, "object": {"key": key}}}]}
answer = handlers.batch.handler(event, Context())
elapsed = time.perf_counter() - started
scored = answer["scored"][0]
print(json.dumps({"rows": scored["rows"], "predicted": scored["predicted"],
                  "seconds": round(elapsed, 2), "rows_per_second": round(scored["rows"] / elapsed),
                  "peak_rss_mb": round(peak_rss_mb(), 1)}))
