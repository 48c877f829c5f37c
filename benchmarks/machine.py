"""The machine a benchmark ran on, and a calibration figure of its speed.

Absolute times differ about twofold between machines of the same kind; a result file carries
what it ran on and a few fixed workloads timed on it, so that two files can be compared.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import statistics
import time

PACKAGES = ("numpy", "pandas", "pyarrow", "scikit-learn", "catboost", "lightgbm", "optuna", "flaml",
            "boto3", "aws-lambda-powertools", "orjson")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_gib() -> float | None:
    try:
        with open("/proc/meminfo") as info:
            for line in info:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / (1 << 20), 1)
    except OSError:
        pass
    return None


def versions(names=PACKAGES) -> dict[str, str | None]:
    found = {}
    for name in names:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def describe(**extra) -> dict:
    """CPU, cores, memory, OS, Python and the libraries' versions; ``extra`` adds what a benchmark
    runs besides this interpreter (the function's runtime and package, the baseline's library)."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "cores_usable": usable, "memory_gib": memory_gib(),
            "os": platform.platform(), "python": platform.python_version(), "packages": versions(), **extra}


def _median_ms(work, repeats: int = 7) -> float:
    work()  # once untimed: caches, lazy imports
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 2)


def calibrate() -> dict:
    """Two fixed single-threaded workloads, median of 7 (ms): an interpreter loop and a numpy sort.
    The same in every result file: their ratio between two files is the machines' ratio."""
    import numpy as np

    values = np.random.default_rng(0).random(1_000_000)

    def interpreter():
        total = 0
        for i in range(1_000_000):
            total += i * i
        return total

    return {"python_loop_1m_ms": _median_ms(interpreter),
            "numpy_sort_1m_ms": _median_ms(lambda: np.sort(values))}
