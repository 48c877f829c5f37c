"""Leakage said out loud: a column that alone predicts the target almost perfectly.

A column that encodes the target (a sub-grade that spells the grade, a status
written after the outcome) gives held-out scores no model will reach in use. Each
column is scored alone, out of fold, by the simplest model that can read it: its
value (a category, or a numeric column cut into quantile bins, missing values a
value of their own) → the training fold's majority class, or mean value; for a
regression, a numeric column's squared correlation with the target too. A column
whose out-of-fold F1 macro (classification) or R² (regression) reaches
``LIMIT`` is named in the job's log, the summary and the manifest; nothing is
dropped: the user decides.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from sklearn.model_selection import KFold, StratifiedKFold

from training import evaluate as E

LOG = logging.getLogger(__name__)
LIMIT = 0.98  # out-of-fold F1 macro or R² of one column alone
BINS = 64  # quantile bins of a numeric column
ROWS = 50_000  # rows looked at, at most (a sample of a bigger table)
FOLDS = 3


def _codes(column: pd.Series) -> np.ndarray:
    """A column as small integer codes: its values, or its quantile bins; missing is a code too."""
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        values = column.astype(float)
        if values.nunique() > BINS:
            values = pd.qcut(values, BINS, labels=False, duplicates="drop")
        column = values
    codes, _ = pd.factorize(column.astype(object).where(column.notna(), "\0missing"), sort=False)
    return codes


def _linear_r2(column: pd.Series, target: np.ndarray) -> float:
    if not pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        return 0.0
    values = column.to_numpy(np.float64)
    known = np.isfinite(values)
    if known.sum() < 3 or np.std(values[known]) == 0 or np.std(target[known]) == 0:
        return 0.0
    return float(np.corrcoef(values[known], target[known])[0, 1] ** 2) * known.mean()


def single_column_scores(X: pd.DataFrame, y: pd.Series, task: str, seed: int = 0) -> dict[str, float]:
    """Each column's out-of-fold score alone: F1 macro (classification) or R² (regression)."""
    if len(X) > ROWS:
        keep = np.random.default_rng(seed).choice(len(X), ROWS, replace=False)
        X, y = X.iloc[keep], y.iloc[keep]
    regression = task == "regression"
    kind = KFold if regression else StratifiedKFold
    folds = list(kind(n_splits=FOLDS, shuffle=True, random_state=seed).split(X, y))
    target = y.to_numpy(np.float64) if regression else pd.factorize(y.astype(str))[0]
    classes = 0 if regression else int(target.max()) + 1
    scores = {}
    for name in X.columns:
        codes = _codes(X[name])
        predicted = np.empty(len(X))
        width = int(codes.max()) + 1
        for train, valid in folds:
            if regression:
                sums = np.bincount(codes[train], weights=target[train], minlength=width)
                counts = np.bincount(codes[train], minlength=width)
                seen = counts > 0
                table = np.where(seen, sums / np.maximum(counts, 1), target[train].mean())
            else:  # each code's majority class in the fold; a code not seen there, the fold's
                counts = np.zeros((width, classes))
                np.add.at(counts, (codes[train], target[train]), 1)
                fold_majority = np.bincount(target[train]).argmax()
                table = np.where(counts.any(axis=1), counts.argmax(axis=1), fold_majority)
            predicted[valid] = table[codes[valid]]
        if regression:  # binned, or linear: a numeric copy of the target has a correlation of 1
            scores[name] = max(E.score("r2", target, predicted[:, None], []), _linear_r2(X[name], target))
        else:
            from sklearn.metrics import f1_score

            scores[name] = float(f1_score(target, predicted.astype(int), average="macro"))
    return scores


def suspects(X: pd.DataFrame, y: pd.Series, task: str, seed: int = 0) -> list[dict[str, object]]:
    """The columns that alone reach ``LIMIT``, best first, each with its score and a message."""
    metric = "r2" if task == "regression" else "f1_macro"
    found = []
    for name, score in sorted(single_column_scores(X, y, task, seed).items(), key=lambda kv: -kv[1]):
        if score >= LIMIT:
            found.append({"column": name, "metric": metric, "score": round(score, 4),
                          "message": f"column {name!r} alone predicts the target almost perfectly "
                                     f"({metric} {score:.3f} out of fold): if it is known only after "
                                     f"the outcome, or encodes it, drop it (drop_columns=[{name}])"})
    for suspect in found:
        LOG.warning("possible leak: %s", suspect["message"])
    return found
