"""A labelled batch file scored is a model evaluated: its rows' actual values against the answers.

A file that carries the model's target column gets, beside each prediction, the actual value,
and its manifest the model's metrics on those rows: the metrics training reports for its
held-out split (``training/evaluate.py``, scikit-learn's definitions), computed here with numpy
alone. A row whose label is missing, or a class the model does not know, is counted and named,
never scored.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from serving.batch.rows import MISSING_TEXT
from serving.model.predictor import label_indices

MISSING, UNKNOWN = -1, -2  # codes of a row without a usable label
SHOWN_UNKNOWN = 20  # unknown labels named in the manifest, at most
MAX_ROWS = 5_000_000  # labelled rows evaluated in one place at most (every row's answer is held)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value) or (
        isinstance(value, str) and value.strip().lower() in MISSING_TEXT)


def codes(actuals: list, classes: list) -> tuple[np.ndarray, list[str]]:
    """Actual values → class codes (MISSING, UNKNOWN) and the unknown values seen; for a regression
    model (no classes), the values as floats with NaN where there is none."""
    if not classes:
        values = np.full(len(actuals), np.nan)
        unknown = []
        for i, value in enumerate(actuals):
            if _missing(value):
                continue
            try:
                values[i] = float(value)
            except (TypeError, ValueError):
                unknown.append(str(value))
        values[~np.isfinite(values)] = np.nan
        return values, unknown
    index = {str(c): k for k, c in enumerate(classes)}
    found = np.empty(len(actuals), np.int64)
    unknown = []
    for i, value in enumerate(actuals):
        if _missing(value):
            found[i] = MISSING
            continue
        text = str(value).strip() if isinstance(value, str) else _label_text(value)
        k = index.get(text)
        if k is None:
            found[i] = UNKNOWN
            unknown.append(text)
        else:
            found[i] = k
    return found, unknown


def _label_text(value: Any) -> str:
    """A typed label (JSON lines, Parquet) as training wrote its classes: 1.0 is "1", True "True"."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def evaluate(labels: np.ndarray, output: np.ndarray, classes: list, unknown_rows: int,
             unknown: list[str], threshold: float | None = None) -> dict[str, Any]:
    """The model's metrics on the labelled rows, with the rows left out counted and named:
    ``unknown_rows`` had a label the model does not know (some of them: ``unknown``)."""
    usable = ~np.isnan(labels) if not classes else labels >= 0
    summary = {"rows": int(usable.sum()), "missing_label": int(len(labels) - usable.sum() - unknown_rows),
               "unknown_label": int(unknown_rows)}
    if unknown:
        summary["unknown_labels"] = sorted(set(unknown))[:SHOWN_UNKNOWN]
    if not usable.any():
        return {**summary, "metrics": {}}
    if not classes:
        return {**summary, "metrics": _regression(labels[usable], output[usable, 0])}
    return {**summary, "metrics": _classification(labels[usable], output[usable], classes, threshold)}


def _regression(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    residual = actual - predicted
    total = float(((actual - actual.mean()) ** 2).sum())
    squares = float((residual ** 2).sum())
    # scikit-learn's r2_score: 1 - SS_res / SS_tot; with a constant target, 1.0 when exact, else 0.0
    r2 = 1.0 - squares / total if total else (1.0 if squares == 0 else 0.0)
    return {"rmse": float(np.sqrt(np.mean(residual ** 2))), "mae": float(np.mean(np.abs(residual))), "r2": r2,
            "rows": int(len(actual))}


def _classification(codes: np.ndarray, proba: np.ndarray, classes: list,
                    threshold: float | None) -> dict[str, Any]:
    k = len(classes)
    predicted = label_indices(proba, threshold)
    confusion = np.zeros((k, k), np.int64)
    np.add.at(confusion, (codes, predicted), 1)
    hits = np.diag(confusion).astype(np.float64)
    support, claimed = confusion.sum(axis=1), confusion.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(claimed > 0, hits / claimed, 0.0)
        recall = np.where(support > 0, hits / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    present = (support > 0) | (claimed > 0)  # f1_score's macro average is over the labels seen
    # log_loss: probabilities clipped to [eps, 1 - eps], as scikit-learn does
    eps = np.finfo(proba.dtype).eps
    clipped = np.clip(proba, eps, 1 - eps)
    return {
        "accuracy": float(hits.sum() / len(codes)),
        "f1_macro": float(f1[present].mean()),
        "roc_auc": _roc_auc(codes, proba, k),
        "log_loss": float(-np.log(clipped[np.arange(len(codes)), codes]).mean()),
        "per_class": {str(c): {"precision": float(precision[j]), "recall": float(recall[j]),
                               "f1-score": float(f1[j]), "support": float(support[j])}
                      for j, c in enumerate(classes)},
        "rows": int(len(codes)),
    }


def _roc_auc(codes: np.ndarray, proba: np.ndarray, k: int) -> float | None:
    """Binary: the positive class's AUC; multiclass: the mean of one-vs-rest AUCs. None when a class
    has no row (scikit-learn refuses to score it then)."""
    if k == 2:
        return _auc(codes == 1, proba[:, 1])
    aucs = [_auc(codes == j, proba[:, j]) for j in range(k)]
    return None if any(a is None for a in aucs) else float(np.mean(aucs))


def _auc(positive: np.ndarray, score: np.ndarray) -> float | None:
    """The area under the ROC curve as the Mann-Whitney statistic, ties counted half (what the
    trapezoids of scikit-learn's roc_auc_score add up to)."""
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(score, kind="mergesort")
    ranked = score[order]
    # average ranks (1-based) over runs of equal scores
    starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])
    ends = np.r_[starts[1:], len(ranked)]
    ranks = np.empty(len(score))
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
