"""How a binary model's label threshold is chosen out of fold, each rule measured on the same model.

    BENCH_SETS=breast_cancer,titanic BENCH_TRAIN_SEEDS=5 BENCH_TRAIN_BUDGET=60 \
        python -m benchmarks.decision_thresholds

For each binary set scored by F1 macro and each seed: one study and the model the job publishes
from it (``job.refit``, as in ``make bench-train``), then its held-out F1 macro with the label
threshold each rule picks from the same out-of-fold predictions (the published model's):

- *half*: 0.5, no tuning;
- *argmax*: the threshold of the best out-of-fold F1, of equals the nearest 0.5 (AutoGluon's
  ``calibrate_decision_threshold``; the job's rule before ``one_se``);
- *one_se*: the threshold nearest 0.5 whose out-of-fold F1 is within one standard error of the
  best's, the error of their paired difference over bootstrap resamples of the out-of-fold rows
  (the one-standard-error rule: a threshold moves from 0.5 only as far as the evidence carries it);
- *smoothed*: the argmax of the F1 curve averaged over a window of +-0.05;
- *bagged*: the mean of the argmax thresholds of bootstrap resamples.

Paired on one model per split, so the comparison leaves out the study's own variation. Prints one
JSON document and writes it to benchmarks/results/<date>-<commit>-decision-thresholds.json;
docs/training.md (the decision threshold) cites it.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

import numpy as np

from benchmarks import ensemble_choices as choices
from benchmarks import training_benchmark as T

RULES = ("half", "argmax", "one_se", "smoothed", "bagged")
GRID = np.round(np.linspace(0.02, 0.98, 97), 2)
BOOTSTRAPS = 500


def f1_macro(y: np.ndarray, p: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """F1 macro of labels ``p > t`` for every t of GRID, for each row of ``weights`` (resamples, n)."""
    above = (p[:, None] > GRID[None, :]).astype(float)  # (n, thresholds)
    positive = y.astype(float)
    tp1 = (weights * positive) @ above
    fp1 = (weights * (1 - positive)) @ above
    fn1 = (weights * positive).sum(axis=1, keepdims=True) - tp1
    tp0 = (weights * (1 - positive)).sum(axis=1, keepdims=True) - fp1
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.nan_to_num(2 * tp1 / (2 * tp1 + fp1 + fn1)) + np.nan_to_num(2 * tp0 / (2 * tp0 + fn1 + fp1))
    return f1 / 2


def nearest_half(scores: np.ndarray) -> float:
    """The threshold of the best score, of equals the nearest 0.5."""
    order = np.argsort(np.abs(GRID - 0.5), kind="stable")
    return float(GRID[order[int(np.argmax(scores[order]))]])


def thresholds(y: np.ndarray, p: np.ndarray, seed: int = 0) -> dict[str, float]:
    full = f1_macro(y, p, np.ones((1, len(y))))[0]
    rng = np.random.default_rng(seed)
    resampled = f1_macro(y, p, rng.multinomial(len(y), np.full(len(y), 1 / len(y)), size=BOOTSTRAPS))
    found = {"half": 0.5, "argmax": nearest_half(full)}
    best = int(np.argmin(np.abs(GRID - found["argmax"])))
    gap = full[best] - full  # how far each threshold is below the best, out of fold
    noise = (resampled[:, [best]] - resampled).std(axis=0)  # that gap's paired standard error
    admissible = np.where(gap <= noise, 1.0, 0.0)
    found["one_se"] = nearest_half(admissible)
    window = np.convolve(np.pad(full, 5, mode="edge"), np.ones(11) / 11, mode="valid")
    found["smoothed"] = nearest_half(window)
    found["bagged"] = float(np.mean([nearest_half(row) for row in resampled]))
    return found


def one(name: str, tmp: Path, seed: int) -> dict:
    from training import ensemble, job
    from training import evaluate as E

    config, prepared, study, oof, models = choices.tuned(name, tmp, seed)
    seen: list[np.ndarray] = []  # the out-of-fold raw scores each threshold was tuned on; the last is
    tune = job.decision_threshold  # the published model's

    def recording(config, prepared, oof_raw):
        seen.append(oof_raw)
        return tune(config, prepared, oof_raw)

    job.decision_threshold = recording
    try:
        published = job.refit(config, prepared, study, oof, models)
    finally:
        job.decision_threshold = tune
    output = job.evaluate(prepared, published).output
    y = (np.asarray(prepared.y_train) == prepared.classes[1]).astype(int)
    p = ensemble.oof_output(seen[-1], "binary")[:, 1]
    found = thresholds(y, p, seed)
    scores = {rule: round(float(E.score("f1_macro", prepared.y_test, output, prepared.classes, t)), 4)
              for rule, t in found.items()}
    T.log(f"{name} (seed {seed}): thresholds {found}; f1_macro {scores}")
    return {"seed": seed, "rows_train": len(prepared.X_train), "positives": round(float(y.mean()), 3),
            "published_threshold": published.threshold, "thresholds": found, "scores": scores}


def summary(runs: list[dict]) -> dict:
    argmax = [r["scores"]["argmax"] for r in runs]
    return {"rows_train": runs[0]["rows_train"], "positives": runs[0]["positives"],
            "mean": {rule: round(statistics.fmean(r["scores"][rule] for r in runs), 4) for rule in RULES},
            "versus_argmax": {rule: T.versus([r["scores"][rule] for r in runs], argmax, 1)
                              for rule in RULES if rule != "argmax"}}


def main() -> None:
    choices.run("decision-thresholds", ["breast_cancer", "titanic", "credit", "lending_club"], one, summary)


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
