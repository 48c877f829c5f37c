"""Whether a model's inputs and answers moved: the training reference, and its comparison with a window.

The **reference** (``reference.json`` in a bundle, written by training through ``reference``)
describes, per column the model reads (a date's parts are columns of their own):
* numeric: the training rows' decile edges, the share of rows in each bin, the missing rate, and
  a sample of up to ``SAMPLE`` values (for the Kolmogorov-Smirnov test);
* categorical: the count of each category code in training, and the missing rate;
and the model's answers on the held-out rows: the probability of the second class (binary), the
predicted class (multiclass) or the value (regression), profiled the same way.

**compare** takes the rows and answers of a window (what the API captured) and gives per column:
* PSI, the population stability index, over the reference's bins (numeric: its deciles plus one
  bin for missing values; categorical: its categories, missing, and one bin for categories it did
  not see): sum((cur - ref) * ln(cur / ref)), shares clipped at ``PSI_FLOOR`` so that an empty bin
  counts and no log is infinite (the usual convention; Evidently does the same);
* a test: two-sample Kolmogorov-Smirnov on the values (numeric), chi-squared on the category
  counts (categorical; categories expected fewer than five times pooled into one), with their
  p-values; a categorical of more than ``TOP_CATEGORIES`` values is compared on its most
  frequent categories in training, any category that is ``HEAVY_SHARE`` of the window, and the
  rest as one;
* ``drifted``: PSI over ``psi`` **and** p-value under ``p_value`` (thresholds from the config):
  both, so that a tiny shift in a big window (significant, not material) or a big PSI from a
  handful of rows (material, not significant) is not drift.

Only numpy and the standard library: the drift function imports this module. The p-values are
computed here (scipy would add 100 MB to the function); the tests compare them with scipy: the KS
statistic with ``ks_2samp`` and its p-value with Kolmogorov's limiting distribution
(``kstwobign``), chi-squared with ``chi2_contingency``, and PSI with its definition as the
symmetric Kullback-Leibler divergence (``scipy.special.rel_entr``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

REFERENCE_FILE = "reference.json"  # in a bundle, beside model.npz
SAMPLE = 500  # reference values kept per numeric column for the KS test
TOP_CATEGORIES = 20  # a categorical with more is compared on its most frequent ones and "other"
HEAVY_SHARE = 0.05  # ... and on any category that is at least this share of the window
BINS = 10  # quantile bins of a numeric column
PSI_FLOOR = 1e-4  # a share below this counts as this in PSI
DEFAULT_THRESHOLDS = {"psi": 0.2, "p_value": 0.01, "min_rows": 100}


# --------------------------------------------------------------------------- the reference
def columns(features: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The columns a model reads (a feature schema's; a date's parts are numeric columns)."""
    out: list[dict[str, Any]] = []
    for f in features:
        if f["type"] == "categorical":
            out.append({"name": f["name"], "kind": "categorical", "categories": list(f["categories"])})
        elif f["type"] == "datetime":
            out += [{"name": f"{f['name']}.{part}", "kind": "numeric"} for part in f["parts"]]
        else:
            out.append({"name": f["name"], "kind": "numeric"})
    return out


def reference(matrix: np.ndarray, columns: list[dict[str, Any]], answers: np.ndarray, task: str,
              classes: list[str], seed: int = 0) -> dict[str, Any]:
    """The profile of the training rows (``matrix``, one entry of ``columns`` per column: name and
    kind, numeric or categorical) and of the model's held-out answers (as ``served`` gives them)."""
    rng = np.random.default_rng(seed)
    profiled = [_profile(matrix[:, j], column, rng) for j, column in enumerate(columns)]
    return {"rows": int(matrix.shape[0]), "columns": profiled,
            "prediction": _profile(prediction_values(answers, task), prediction_column(task, classes), rng)}


def prediction_column(task: str, classes: list[str]) -> dict[str, Any]:
    """How a model's answers are profiled: a numeric column, or the predicted class's code."""
    if task == "multiclass":
        return {"name": "prediction", "kind": "categorical", "categories": list(classes)}
    name = "prediction" if task == "regression" else f"probability of {classes[1]}"
    return {"name": name, "kind": "numeric"}


def prediction_values(answers: np.ndarray, task: str) -> np.ndarray:
    """Answers (n, classes) or (n, 1) → one number per row: the value, P(second class), or the class code."""
    if task == "regression":
        return answers[:, 0].astype(np.float64)
    if task == "binary":
        return answers[:, 1].astype(np.float64)
    return answers.argmax(axis=1).astype(np.float64)


def _profile(values: np.ndarray, column: dict[str, Any], rng) -> dict[str, Any]:
    values = np.asarray(values, np.float64)
    missing = np.isnan(values)
    present = values[~missing]
    out: dict[str, Any] = {**column, "missing_rate": float(missing.mean()) if len(values) else 0.0}
    if column["kind"] == "categorical":
        codes = present.astype(np.int64)
        out["counts"] = np.bincount(codes, minlength=len(column["categories"])).tolist()
        return out
    if present.size == 0:
        edges: list[float] = []
    else:
        edges = np.unique(np.quantile(present, np.linspace(0, 1, BINS + 1)[1:-1])).tolist()
    out["edges"] = edges
    out["shares"] = (_bin_counts(present, edges) / max(1, present.size)).tolist()
    chosen = present if present.size <= SAMPLE else rng.choice(present, SAMPLE, replace=False)
    out["sample"] = np.sort(chosen).tolist()
    return out


def _bin_counts(values: np.ndarray, edges: list[float]) -> np.ndarray:
    """Counts per bin: (-inf, e0], (e0, e1], ..., (e_last, inf)."""
    return np.bincount(np.searchsorted(np.asarray(edges), values, side="left"), minlength=len(edges) + 1)


# --------------------------------------------------------------------------- the statistics
def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """Population stability index of two distributions over the same bins (shares, or counts)."""
    e = np.asarray(expected, np.float64)
    a = np.asarray(actual, np.float64)
    e = np.clip(e / max(e.sum(), 1e-300), PSI_FLOOR, None)
    a = np.clip(a / max(a.sum(), 1e-300), PSI_FLOOR, None)
    return float(np.sum((a - e) * np.log(a / e)))


def ks_2samp(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov: the statistic D (as scipy's ``ks_2samp``) and its asymptotic
    p-value, Kolmogorov's limiting distribution at sqrt(n m / (n + m)) D (scipy's ``kstwobign``)."""
    x, y = np.sort(np.asarray(x, np.float64)), np.sort(np.asarray(y, np.float64))
    n, m = len(x), len(y)
    if n == 0 or m == 0:
        return 0.0, 1.0
    both = np.concatenate([x, y])
    cdf_x = np.searchsorted(x, both, side="right") / n
    cdf_y = np.searchsorted(y, both, side="right") / m
    d = float(np.max(np.abs(cdf_x - cdf_y)))
    return d, _kolmogorov_sf(math.sqrt(n * m / (n + m)) * d)


def _kolmogorov_sf(t: float) -> float:
    """P(K > t) of Kolmogorov's limiting distribution: 2 sum_k (-1)^(k-1) exp(-2 k^2 t^2)."""
    if t <= 0:
        return 1.0
    if t < 1.0:  # the series converges slowly here: use the dual (Jacobi theta) form
        w = math.sqrt(2 * math.pi) / t
        total = sum(math.exp(-((2 * k - 1) ** 2) * math.pi**2 / (8 * t * t)) for k in range(1, 20))
        return min(1.0, max(0.0, 1.0 - w * total))
    total = sum((-1) ** (k - 1) * math.exp(-2 * k * k * t * t) for k in range(1, 101))
    return min(1.0, max(0.0, 2 * total))


def chi2_contingency(expected_counts: np.ndarray, actual_counts: np.ndarray) -> tuple[float, float]:
    """Chi-squared test of homogeneity of two count vectors over the same categories (a 2 x k table;
    categories empty in both are left out): the statistic and its p-value, as scipy's
    ``chi2_contingency`` (no continuity correction: it applies to 2 x 2 tables only, when k = 2 it is
    used, as scipy does)."""
    table = np.vstack([np.asarray(expected_counts, np.float64), np.asarray(actual_counts, np.float64)])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return 0.0, 1.0
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    dof = table.shape[1] - 1
    difference = table - expected
    if dof == 1:  # Yates' correction, as scipy applies to 2 x 2 tables
        correction = np.minimum(0.5, np.abs(difference))
        difference = np.sign(difference) * (np.abs(difference) - correction)
    statistic = float(np.sum(difference**2 / expected))
    return statistic, _chi2_sf(statistic, dof)


def _chi2_sf(x: float, dof: int) -> float:
    """P(X > x) for chi-squared with ``dof`` degrees of freedom: Q(dof / 2, x / 2), the regularized
    upper incomplete gamma function (series below a + 1, continued fraction above; Numerical Recipes)."""
    if x <= 0:
        return 1.0
    a, z = dof / 2.0, x / 2.0
    log_prefix = -z + a * math.log(z) - math.lgamma(a)
    if z < a + 1:
        term = total = 1.0 / a
        k = a
        for _ in range(1000):
            k += 1
            term *= z / k
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return max(0.0, 1.0 - total * math.exp(log_prefix))
    tiny = 1e-300
    b = z + 1 - a
    c = 1 / tiny
    d = 1 / b
    h = d
    for i in range(1, 1000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        step = d * c
        h *= step
        if abs(step - 1) < 1e-15:
            break
    return min(1.0, math.exp(log_prefix) * h)


def _pool_small(expected_counts: np.ndarray, actual_counts: np.ndarray, least: float = 5.0):
    """The categories whose expected count (under no drift) is under ``least`` in either sample,
    pooled into one: the chi-squared approximation needs about five per cell (Cochran's rule)."""
    total = expected_counts.sum() + actual_counts.sum()
    if total == 0:
        return expected_counts, actual_counts
    both = expected_counts + actual_counts
    smallest = both * min(expected_counts.sum(), actual_counts.sum()) / total
    small = smallest < least
    if small.sum() < 2:
        return expected_counts, actual_counts
    return (np.append(expected_counts[~small], expected_counts[small].sum()),
            np.append(actual_counts[~small], actual_counts[small].sum()))


# --------------------------------------------------------------------------- the comparison
def compare(ref: dict[str, Any], matrix: np.ndarray, predictions: np.ndarray,
            thresholds: dict[str, float] | None = None) -> dict[str, Any]:
    """Each column's and the predictions' drift in a window of rows (``matrix``, the model's columns)
    and answers (``prediction_values``), against the reference."""
    limits = {**DEFAULT_THRESHOLDS, **(thresholds or {})}
    rows = int(matrix.shape[0])
    features = {c["name"]: _drift(c, matrix[:, j], limits) for j, c in enumerate(ref["columns"])}
    prediction = _drift(ref["prediction"], predictions, limits)
    enough = rows >= limits["min_rows"]
    drifted = sorted(name for name, d in features.items() if d["drifted"]) if enough else []
    return {
        "rows": rows,
        "reference_rows": ref["rows"],
        "enough_rows": enough,
        "thresholds": limits,
        "drifted_features": drifted,
        "prediction_drifted": bool(enough and prediction["drifted"]),
        "features": features,
        "prediction": prediction,
    }


def _drift(column: dict[str, Any], values: np.ndarray, limits: dict[str, float]) -> dict[str, Any]:
    values = np.asarray(values, np.float64)
    missing = np.isnan(values)
    present = values[~missing]
    n = max(1, len(values))
    ref_missing = column["missing_rate"]
    cur_missing = float(missing.mean()) if len(values) else 0.0
    if column["kind"] == "categorical":
        labels = list(column["categories"]) + ["(unseen)"]
        k = len(column["categories"])
        codes = present.astype(np.int64)
        counts = np.bincount(np.where((codes >= 0) & (codes < k), codes, k), minlength=k + 1)
        ref_counts = np.asarray(column["counts"] + [0], np.float64)
        if k > TOP_CATEGORIES:
            # the most frequent categories in training, any category that is now a large share of
            # the window (a rare one that became common must show), and the rest as one. Bins are
            # not chosen from the window's top counts: with many rare categories that choice alone
            # would make a window of the same distribution look different.
            then = np.argsort(-ref_counts[:k], kind="stable")[:TOP_CATEGORIES]
            now = np.flatnonzero(counts[:k] >= HEAVY_SHARE * max(1, counts.sum()))
            top = np.array(list(dict.fromkeys([*then.tolist(), *now.tolist()])), np.intp)
            rest = np.ones(k + 1, bool)
            rest[top] = False
            labels = [labels[i] for i in top] + ["(other)"]
            counts = np.append(counts[top], counts[rest].sum())
            ref_counts = np.append(ref_counts[top], ref_counts[rest].sum())
        statistic, p = chi2_contingency(*_pool_small(ref_counts, counts))
        test = "chi-squared"
        ref_shares = ref_counts / max(1.0, ref_counts.sum())
        cur_counts = counts
    else:
        statistic, p = ks_2samp(column["sample"], present)
        test = "kolmogorov-smirnov"
        edges = column["edges"]
        inner = [f"{a:.4g} to {b:.4g}" for a, b in zip(edges, edges[1:], strict=False)]
        labels = [f"<= {edges[0]:.4g}", *inner, f"> {edges[-1]:.4g}"] if edges else ["all"]
        ref_shares = np.asarray(column["shares"], np.float64)
        cur_counts = _bin_counts(present, edges)
    # PSI over the bins and one more for missing values, as shares of all rows (none: nothing to compare)
    ref_all = np.append(ref_shares * (1 - ref_missing), ref_missing)
    cur_all = np.append(cur_counts / n, cur_missing)
    index = psi(ref_all, cur_all) if len(values) else 0.0
    return {
        "kind": column["kind"], "psi": index, "test": test, "statistic": statistic, "p_value": p,
        "missing_rate": {"reference": ref_missing, "current": cur_missing},
        "drifted": bool(index > limits["psi"] and p < limits["p_value"]),
        "bins": {"labels": labels, "reference": ref_shares.tolist(),
                 "current": (cur_counts / max(1, cur_counts.sum())).tolist()},
    }
