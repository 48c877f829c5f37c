"""What follows a study, each choice measured on the same study and the same held-out rows.

    BENCH_SETS=titanic,cars BENCH_TRAIN_SEEDS=5 BENCH_TRAIN_BUDGET=60 python -m benchmarks.ensemble_choices

For each set and seed: one study (the training job's, ``BENCH_TRAIN_BUDGET`` seconds, one core,
runs side by side as in ``make bench-train``), then the model made from it several ways, each
scored with the job's metric and the decision threshold the job would tune for it out of fold:

- *published*: what the job published with its members refit (``job.refit`` without fold models:
  the selection, the serving guard);
- *refit*: the selection on the study's metric, its members each fitted once on every training
  row, without the guard;
- *bagged*: the same members' K fold models of the first repeat, as the study kept them
  (early-stopped on their folds), their raw scores averaged: AutoGluon's bagging, as the job bags;
- *log_loss_selection* (classification): the selection made on the out-of-fold log loss instead
  of the study's metric (a proper scoring rule is smoother than F1 on a few hundred rows; the job
  selects so on binary F1 tables, ``job.selection_metric``), its members refit, without the guard;
- *bagged_log_loss* (classification): that selection's members bagged.

Paired on one study, the comparisons leave out the study's own run-to-run variation (a budget in
seconds gives a different number of trials on every run). Also the trees each way holds (what
serving evaluates). Prints one JSON document and writes it to
benchmarks/results/<date>-<commit>-ensemble-choices.json; docs/decisions/ensembles.md cites it.
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

WAYS = ("published", "refit", "bagged", "log_loss_selection", "bagged_log_loss")


def log_loss_selection(oof: dict, values: dict, prepared):
    """The ensemble selection made on each trial's out-of-fold log loss (lower first)."""
    from training import ensemble
    from training import evaluate as E

    losses = {t: E.score("log_loss", prepared.y_train, ensemble.oof_output(oof[t], prepared.task),
                         prepared.classes) for t in values if t in oof}
    return ensemble.select(oof, losses, prepared.y_train, "log_loss", prepared.classes, prepared.task)


def tuned(name: str, tmp: Path, seed: int) -> tuple:
    """One split of ``name`` and its study as the job tunes it (``BENCH_TRAIN_BUDGET`` seconds,
    ``BENCH_TRAIN_THREADS`` cores): the config, the prepared data, the study, its out-of-fold raw
    scores and the kept trials' fold models (as the job keeps them to bag)."""
    from training import config as C
    from training import job

    tmp = tmp / f"{name}-{seed}"
    tmp.mkdir(parents=True, exist_ok=True)
    dataset, target = T.ALL_SETS[name][0](tmp)
    overrides = [f"dataset={dataset}", "tuning.n_trials=100000", f"tuning.timeout_seconds={T.BUDGET}",
                 f"tuning.threads={T.THREADS}", "constant_columns=keep", f"seed={seed}",
                 f"mlflow.tracking_uri=sqlite:///{tmp}/mlflow.db"]
    config = C.load(None, overrides + ([f"target={target}"] if target else []))
    prepared = job.prepare(config)
    models: dict[int, list] = {}
    study, oof = job.tune_study(config, prepared, show_progress=False, models=models)
    return config, prepared, study, oof, models


def one(name: str, tmp: Path, seed: int) -> dict:
    from training import ensemble, families, job
    from training import evaluate as E

    config, prepared, study, oof, models = tuned(name, tmp, seed)
    trials = {t.number: t for t in study.trials}
    values = {t.number: t.value for t in study.trials if t.number in oof and t.value is not None}

    def scored(raw, weights) -> float:
        oof_raw = sum(w * oof[n] for n, w in weights.items())
        threshold = job.decision_threshold(config, prepared, oof_raw)
        return E.score(prepared.metric, prepared.y_test, ensemble.oof_output(raw, prepared.task),
                       prepared.classes, threshold)

    refits: dict[int, families.Fitted] = {}

    def refit(weights) -> tuple[np.ndarray, int]:
        raw, trees = 0.0, 0
        for number, weight in weights.items():
            if number not in refits:
                refits[number] = job.fit_trial(config, prepared, trials[number])[3]
            raw = raw + weight * refits[number].raw(prepared.X_test, prepared.schema)
            trees += _trees(refits[number])
        return raw, trees

    published = job.refit(config, prepared, study, oof)
    evaluation = job.evaluate(prepared, published)
    scores = {"published": evaluation.metrics[prepared.metric]}
    trees = {"published": sum(_trees(m) for m in getattr(published.fitted, "members", [published.fitted]))}
    members = {"published": len(published.members or [1])}
    if len(values) >= 2:
        selection = ensemble.select(oof, values, prepared.y_train, prepared.metric, prepared.classes,
                                    prepared.task)
    else:  # one finished trial: it is the selection
        selection = ensemble.Selection({study.best_trial.number: 1}, 0.0, 0.0, study.best_trial.number)
    raw, trees["refit"] = refit(selection.weights)
    scores["refit"], members["refit"] = scored(raw, selection.weights), len(selection.counts)

    def bag(weights) -> ensemble.Weighted:
        chosen = sorted(weights)
        return ensemble.Weighted.of([ensemble.Bagged(models[n]) if n in models  # a partial trial keeps none
                                     else job.fit_trial(config, prepared, trials[n])[3] for n in chosen],
                                    [weights[n] for n in chosen], chosen, prepared.task)

    bagged = bag(selection.weights)
    trees["bagged"] = sum(_trees(m) for m in bagged.members)
    scores["bagged"] = scored(bagged.raw(prepared.X_test, prepared.schema), selection.weights)
    members["bagged"] = len(selection.counts)
    if prepared.task != "regression" and len(values) >= 2:
        by_loss = log_loss_selection(oof, values, prepared)
        raw, trees["log_loss_selection"] = refit(by_loss.weights)
        scores["log_loss_selection"] = scored(raw, by_loss.weights)
        members["log_loss_selection"] = len(by_loss.counts)
        bagged = bag(by_loss.weights)
        trees["bagged_log_loss"] = sum(_trees(m) for m in bagged.members)
        scores["bagged_log_loss"] = scored(bagged.raw(prepared.X_test, prepared.schema), by_loss.weights)
        members["bagged_log_loss"] = len(by_loss.counts)
    scores = {way: round(float(value), 4) for way, value in scores.items()}
    T.log(f"{name} (seed {seed}): {prepared.metric} {scores}; trees {trees}")
    return {"seed": seed, "metric": prepared.metric, "rows_train": len(prepared.X_train),
            "trials": len(study.trials), "scores": scores, "members": members, "trees": trees}


def _trees(fitted) -> int:
    if fitted.family == "catboost":
        return int(fitted.model.tree_count_)
    return int(fitted.model.booster_.num_trees())


def compare_ways(runs: list[dict]) -> dict:
    """Each way against the published model over the seeds (positive: the way is better)."""
    sign = 1 if runs[0]["metric"] in T.MAXIMIZED else -1
    published = [r["scores"]["published"] for r in runs]
    found = {}
    for way in WAYS[1:]:
        if all(way in r["scores"] for r in runs):
            found[way] = T.versus([r["scores"][way] for r in runs], published, sign)
    if all("bagged_log_loss" in r["scores"] for r in runs):  # the selection's metric, both bagged
        found["bagged_log_loss_vs_bagged"] = T.versus([r["scores"]["bagged_log_loss"] for r in runs],
                                                      [r["scores"]["bagged"] for r in runs], sign)
    return found


def run(kind: str, names: list[str], one, summarise) -> None:
    """``one`` on every set of ``names`` (or ``BENCH_SETS``) and seed, side by side as in
    ``make bench-train``; each set's runs summarised (``summarise(runs)``); the result file of
    ``kind`` written and printed."""
    import warnings

    warnings.filterwarnings("ignore")
    names = T.ONLY or names
    seeds = [42 + i for i in range(T.SEEDS)]
    with tempfile.TemporaryDirectory() as folder:
        found = T.run_all(names, seeds, Path(folder), run=one)
    document = {"kind": kind,
                "run": run_info({"budget_seconds": T.BUDGET, "seeds": seeds, "datasets": names,
                                 "threads": T.THREADS, "parallel": T.PARALLEL}),
                "datasets": {name: {**summarise(runs), "runs": runs} for name, runs in found.items()}}
    text = json.dumps(document, indent=2, default=float)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path_for(document).write_text(text + "\n")
    print(text)


def summary(runs: list[dict]) -> dict:
    return {"metric": runs[0]["metric"], "rows_train": runs[0]["rows_train"],
            "versus_published": compare_ways(runs),
            "trees_mean": {way: statistics.fmean(r["trees"][way] for r in runs)
                           for way in WAYS if all(way in r["trees"] for r in runs)}}


def main() -> None:
    run("ensemble-choices", ["breast_cancer", "titanic", "cars"], one, summary)


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
