"""What a model costs to serve, measured as the prediction function answers: one row through
``serving.model.predictor`` (the row read by name, checked, evaluated, answered), in this process.

The ensemble's guard reads it: an ensemble whose warm single-row answer is more than
``ensemble_max_slowdown`` times its best trial's is narrowed (``training.job.refit``). The
benchmark reads it too, beside the bundle's bytes and a cold load.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np
from serving.model import bundle as B
from serving.model.predictor import Predictor

from training import data as D

WARM_CALLS = 300  # timed single-row answers per model, after as many untimed ones
BLOCK = 25  # answers in a row by one model


def _predictor(arrays: dict[str, np.ndarray], schema: list[dict], classes: list[str]) -> Predictor:
    manifest = {"name": "cost", "version": 1, "feature_schema": schema, "classes": classes}
    return Predictor(B.Bundle(manifest, arrays), unknown_category="missing")


def _row(prepared) -> dict[str, Any]:
    return {"instances": D.to_instances(prepared.X_test.iloc[:1], prepared.schema)}


def slowdown(model: dict[str, np.ndarray], reference: dict[str, np.ndarray], prepared,
             calls: int = WARM_CALLS) -> float:
    """``model``'s warm single-row answer over ``reference``'s: medians of ``calls`` answers each,
    timed as ``measure`` times them (``warm_times``)."""
    body = _row(prepared)
    predictors = [_predictor(arrays, prepared.schema, prepared.classes) for arrays in (model, reference)]
    times = warm_times(predictors, body, calls)
    return statistics.median(times[0]) / statistics.median(times[1])


def warm_times(predictors: list, body: dict[str, Any], calls: int = WARM_CALLS) -> list[list[float]]:
    """Each predictor's ``calls`` timed single-row answers (seconds, whole blocks: ``calls`` rounded
    up to a multiple of ``BLOCK``), after as many untimed ones.

    The answers come in blocks of ``BLOCK`` by one predictor, the predictors taking turns block by
    block: the machine's drift falls on all of them, and each answer finds its own model's arrays
    in the cache, as a container answering one model does. (Taking turns answer by answer, each
    model evicted the other's arrays: a bagged model measured 1.88 times the best trial's time so,
    and 2.13 times with their answers back to back, as the benchmark measures them.)"""
    blocks = max(1, -(-calls // BLOCK))
    times: list[list[float]] = [[] for _ in predictors]
    for block in range(2 * blocks):  # the first half warms up
        for side, predictor in enumerate(predictors):
            for _ in range(BLOCK):
                started = time.perf_counter()
                predictor.predict(body, 1)
                if block >= blocks:
                    times[side].append(time.perf_counter() - started)
    return times


def measure(arrays: dict[str, np.ndarray], prepared) -> dict[str, float]:
    """Bundle bytes, a warm single-row answer (median of WARM_CALLS, ms) and a cold load (the arrays'
    bytes to the first answer, median of 5, ms)."""
    body = _row(prepared)
    data = B.encode_arrays(arrays)
    colds = []
    for _ in range(5):
        started = time.perf_counter()
        predictor = _predictor(B.decode_arrays(data), prepared.schema, prepared.classes)
        predictor.predict(body, 1)
        colds.append(time.perf_counter() - started)
    warm = warm_times([predictor], body)[0]
    return {"bundle_bytes": len(data), "warm_p50_ms": round(statistics.median(warm) * 1e3, 3),
            "cold_ms": round(statistics.median(colds) * 1e3, 2)}
