"""The batch baseline: what a user would run on one worker instead of the batch state machine.

    python -m benchmarks.batch_baseline MODEL_FILE CSV_FILE pandas|pyarrow

One process on one core (a batch worker has one vCPU: template.yaml gives it 1769 MB), the
libraries sized to it: read the CSV (pandas' C reader, or pyarrow's), turn every column into
numbers (a value that is not one becomes missing: nothing is rejected), then native CatBoost's
``predict_proba`` on all rows. It neither validates the rows nor writes the outputs; the batch
function does both. Prints one JSON line: the rows, each step's seconds, the rows per second and
the process's peak memory.
"""

from __future__ import annotations

import json
import os
import sys
import time


def read_pandas(path: str):
    import pandas as pd

    frame = pd.read_csv(path)
    for column in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame[column]):
            frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return frame


def read_pyarrow(path: str):
    import pandas as pd
    import pyarrow as pa
    from pyarrow import csv

    table = csv.read_csv(path)
    frame = table.to_pandas()
    for name, kind in zip(table.column_names, table.schema.types, strict=True):
        if not (pa.types.is_floating(kind) or pa.types.is_integer(kind)):
            frame[name] = pd.to_numeric(frame[name], errors="coerce")
    return frame


def main() -> None:
    model_file, csv_file, reader = sys.argv[1:4]
    cores = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cores[-1]})  # before any library starts a thread pool
    import numpy as np
    import pyarrow as pa
    from catboost import CatBoostClassifier

    pa.set_cpu_count(1)
    started = time.perf_counter()
    model = CatBoostClassifier()
    model.load_model(model_file)
    loaded = time.perf_counter()
    frame = {"pandas": read_pandas, "pyarrow": read_pyarrow}[reader](csv_file)
    X = frame[model.feature_names_].to_numpy(dtype=float)
    read = time.perf_counter()
    proba = model.predict_proba(X, thread_count=1)
    predicted = time.perf_counter()
    if proba.shape[0] != len(frame) or not np.isfinite(proba).all():
        raise SystemExit("the baseline did not predict every row")
    total = predicted - started
    print(json.dumps({"reader": reader, "rows": len(frame), "missing_values": int(np.isnan(X).sum()),
                      "model_s": round(loaded - started, 3), "read_s": round(read - loaded, 3),
                      "predict_s": round(predicted - read, 3), "seconds": round(total, 3),
                      "rows_per_s": round(len(frame) / total), "peak_rss_mb": peak_rss_mb()}))


def peak_rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


if __name__ == "__main__":
    main()
