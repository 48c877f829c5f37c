"""One Optuna study over both families, scored by K-fold cross-validation (stratified for classes).

The family is itself a parameter, so TPE learns which family to spend trials on;
the first trials are each family's library defaults, so tuning starts from them.
Each fold fits with early stopping on that fold's validation part; the mean of
the folds so far is reported after each fold, so the pruner can stop a poor
trial early. The study lives in an Optuna storage when one is given, so several
workers (processes or AWS Batch array jobs) can share it.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import optuna
import pandas as pd
from sklearn.model_selection import KFold, StratifiedKFold

from training import evaluate, families

LOG = logging.getLogger(__name__)


def storage_for(url: str | None):
    """An Optuna storage from a URL; ``journal:///path`` is a file journal (no server)."""
    if not url:
        return None
    if url.startswith("journal://"):
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        return JournalStorage(JournalFileBackend(url.removeprefix("journal://")))
    engine = {"connect_args": {"timeout": 30}} if url.startswith("sqlite") else {}
    # Workers that start together race to create the schema: the loser retries
    # and finds it there.
    for attempt in range(5):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=engine)
        except Exception as error:  # sqlalchemy OperationalError / IntegrityError
            if attempt == 4 or "already exists" not in str(error) and "UNIQUE" not in str(error):
                raise
            time.sleep(0.2 * (attempt + 1))


def worker_seed(seed: int) -> int:
    """A sampler seed of this worker's own: workers with one seed would sample the same trials.

    The AWS Batch array index when there is one (stable across retries), else the process id.
    """
    index = os.environ.get("TUNING_WORKER_INDEX") or os.environ.get("AWS_BATCH_JOB_ARRAY_INDEX")
    return seed + 1 + (int(index) if index is not None else os.getpid())


def create_study(config: dict[str, Any], study_name: str, metric: str, worker: bool = False) -> optuna.Study:
    tuning = config["tuning"]
    seed = worker_seed(config["seed"]) if worker else config["seed"]
    return optuna.create_study(
        study_name=study_name,
        storage=storage_for(tuning["storage"]),
        direction=evaluate.DIRECTION[metric],
        sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(6, tuning["n_trials"] or 6)),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=1),
        load_if_exists=True,
    )


def objective(config: dict[str, Any], X: pd.DataFrame, y: pd.Series, schema, classes: list[str], task: str,
              metric: str):
    tuning = config["tuning"]
    kind = KFold if task == "regression" else StratifiedKFold
    folds = list(kind(n_splits=tuning["cv_folds"], shuffle=True, random_state=config["seed"]).split(X, y))

    def run(trial: optuna.Trial) -> float:
        family = trial.suggest_categorical("family", tuning["families"])
        params = families.suggest(trial, family, task, config["class_weight"])
        scores, rounds = [], []
        for k, (train_idx, valid_idx) in enumerate(folds):
            fitted = families.fit(
                family, params, X.iloc[train_idx], y.iloc[train_idx], schema, task=task,
                seed=config["seed"], threads=tuning["threads"], rounds=tuning["max_rounds"],
                objective=config["regression"]["objective"], huber_delta=config["regression"]["huber_delta"],
                eval_set=(X.iloc[valid_idx], y.iloc[valid_idx]),
                early_stopping_rounds=tuning["early_stopping_rounds"],
            )
            output = fitted.predict(X.iloc[valid_idx], schema)
            scores.append(evaluate.score(metric, y.iloc[valid_idx], output, classes))
            rounds.append(fitted.best_rounds)
            trial.report(float(np.mean(scores)), step=k)
            if trial.should_prune():
                raise optuna.TrialPruned()
        trial.set_user_attr("rounds", int(np.median(rounds)))
        trial.set_user_attr("fold_scores", [float(s) for s in scores])
        return float(np.mean(scores))

    return run


def optimize(
    study: optuna.Study,
    config: dict[str, Any],
    X: pd.DataFrame,
    y: pd.Series,
    schema,
    classes: list[str],
    task: str,
    metric: str,
    on_trial: Callable[[optuna.Study, optuna.trial.FrozenTrial], None] | None = None,
    show_progress: bool = True,
    worker: bool = False,
) -> None:
    """Run this worker's share of trials, with a progress bar showing the best score.

    The study starts from each library's defaults: the training job's own study always, a
    shared study only from worker 0 (TUNING_WORKER_INDEX or AWS_BATCH_JOB_ARRAY_INDEX):
    ``enqueue_trial(skip_if_exists=True)`` is not atomic, and two workers adding the defaults at
    once were seen to run them twice."""
    from tqdm.auto import tqdm

    tuning = config["tuning"]
    n_trials = tuning["n_trials"]
    if not n_trials:
        return
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    bar = tqdm(total=n_trials, desc=f"tuning ({metric})", unit="trial",
               disable=not show_progress, dynamic_ncols=True)

    def callback(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        bar.update(1)
        try:
            best = study.best_trial
            bar.set_postfix(best=f"{best.value:.4f}", family=best.params.get("family"),
                            state=trial.state.name.lower())
        except ValueError:
            pass
        if on_trial:
            on_trial(study, trial)

    index = os.environ.get("TUNING_WORKER_INDEX") or os.environ.get("AWS_BATCH_JOB_ARRAY_INDEX")
    if not worker or index == "0":
        for family in tuning["families"]:
            start = families.starting_point(family, task, config["class_weight"])
            study.enqueue_trial(start, skip_if_exists=True)
    started = time.monotonic()
    try:
        study.optimize(
            objective(config, X, y, schema, classes, task, metric),
            n_trials=n_trials,
            timeout=tuning["timeout_seconds"],
            callbacks=[callback],
            gc_after_trial=False,
        )
    finally:
        bar.close()
    LOG.info("tuned %d trials in %.1f s", n_trials, time.monotonic() - started)
