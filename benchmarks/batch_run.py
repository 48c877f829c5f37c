"""One fresh process runs the batch-scoring handler on one S3 object; prints JSON.

    python batch_run.py BUCKET KEY
"""

import json
import sys
import time

from lambda_process import Context, peak_rss_mb

started = time.perf_counter()
bucket, key = sys.argv[1], sys.argv[2]


import handlers.batch  # noqa: E402

event = {"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
                      "s3": {"bucket": {"name": bucket}, "object": {"key": key}}}]}
answer = handlers.batch.handler(event, Context())
elapsed = time.perf_counter() - started
scored = answer["scored"][0]
print(json.dumps({"rows": scored["rows"], "predicted": scored["predicted"],
                  "seconds": round(elapsed, 2), "rows_per_second": round(scored["rows"] / elapsed),
                  "peak_rss_mb": round(peak_rss_mb(), 1)}))
