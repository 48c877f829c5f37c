"""Refit or bag an ensemble's members? Both, on the same study, scored on the same held-out rows.

    BENCH_SETS=titanic,credit BENCH_TRAIN_SEEDS=3 BENCH_TRAIN_BUDGET=30 python -m benchmarks.ensemble_refit

For each set and seed: one study (the training job's, ``BENCH_TRAIN_BUDGET`` seconds), one
ensemble selection; then its members two ways, scored with the job's own metric:

- *refit*: each member fitted once on every training row with its trial's median rounds (what
  the job publishes);
- *bagged*: each member's K fold models of the first repeat (early-stopped on their folds, as in
  the study), their raw scores averaged: AutoGluon's bagging.

Also the trees each way holds (what serving evaluates). Prints one JSON document and writes it to
benchmarks/results/<date>-<commit>-ensemble-refit.json; docs/decisions/ensembles.md cites it.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

from benchmarks import training_benchmark as T
from benchmarks.results import RESULTS, path_for, run_info


def one(name: str, seed: int, tmp: Path) -> dict:
    from training import config as C
    from training import ensemble, families, job, tune
    from training import evaluate as E

    dataset, target = T.DATASETS[name][0](tmp)
    overrides = [f"dataset={dataset}", "tuning.n_trials=100000", f"tuning.timeout_seconds={T.BUDGET}",
                 f"tuning.threads={T.THREADS}", "constant_columns=keep", f"seed={seed}"]
    config = C.load(None, overrides + ([f"target={target}"] if target else []))
    prepared = job.prepare(config)
    study, oof = job.tune_study(config, prepared, show_progress=False)
    values = {t.number: t.value for t in study.trials if t.number in oof}
    selection = ensemble.select(oof, values, prepared.y_train, prepared.metric, prepared.classes,
                                prepared.task)
    trials = {t.number: t for t in study.trials}
    folds = tune.splits(config, prepared.X_train, prepared.y_train, prepared.task)
    folds = folds[:config["tuning"]["cv_folds"]]  # the first repeat's
    refit_raw, bagged_raw, trees = 0.0, 0.0, {"refit": 0, "bagged": 0}
    for number, weight in selection.weights.items():
        *_, fitted = job.fit_trial(config, prepared, trials[number])
        refit_raw = refit_raw + weight * fitted.raw(prepared.X_test, prepared.schema)
        trees["refit"] += _trees(fitted)
        family, params = families.params_from_trial(trials[number].params)
        for train_idx, valid_idx in folds:
            model = families.fit(
                family, params, prepared.X_train.iloc[train_idx], prepared.y_train.iloc[train_idx],
                prepared.schema, task=prepared.task, seed=seed, threads=T.THREADS,
                rounds=config["tuning"]["max_rounds"], eval_set=(prepared.X_train.iloc[valid_idx],
                                                                 prepared.y_train.iloc[valid_idx]),
                early_stopping_rounds=config["tuning"]["early_stopping_rounds"])
            bagged_raw = bagged_raw + weight / len(folds) * model.raw(prepared.X_test, prepared.schema)
            trees["bagged"] += _trees(model)
    scores = {way: E.score(prepared.metric, prepared.y_test, ensemble.oof_output(raw, prepared.task),
                           prepared.classes)
              for way, raw in (("refit", refit_raw), ("bagged", bagged_raw))}
    T.log(f"{name} (seed {seed}): {prepared.metric} refit {scores['refit']:.4f}, "
          f"bagged {scores['bagged']:.4f}; trees {trees['refit']} / {trees['bagged']}")
    return {"seed": seed, "metric": prepared.metric, "rows_train": len(prepared.X_train),
            "members": len(selection.counts), "scores": scores, "trees": trees}


def _trees(fitted) -> int:
    if fitted.family == "catboost":
        return int(fitted.model.tree_count_)
    return int(fitted.model.booster_.num_trees())


def main() -> None:
    import warnings

    warnings.filterwarnings("ignore")
    names = T.ONLY or ["titanic", "credit", "cars", "penguins"]
    seeds = [42 + i for i in range(T.SEEDS)]
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for name in names:
            runs = [one(name, seed, Path(folder)) for seed in seeds]
            sign = 1 if runs[0]["metric"] in T.MAXIMIZED else -1
            refit = [r["scores"]["refit"] for r in runs]
            bagged = [r["scores"]["bagged"] for r in runs]
            results[name] = {"metric": runs[0]["metric"], "rows_train": runs[0]["rows_train"],
                             "refit_better_by": T.versus(refit, bagged, sign),
                             "trees_mean": {way: statistics.fmean(r["trees"][way] for r in runs)
                                            for way in ("refit", "bagged")},
                             "runs": runs}
    document = {"kind": "ensemble-refit", "run": run_info({"budget_seconds": T.BUDGET, "seeds": seeds,
                                                           "datasets": names}), "datasets": results}
    text = json.dumps(document, indent=2, default=float)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path_for(document).write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
