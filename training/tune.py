"""One Optuna study over both families, scored by K-fold cross-validation (stratified for classes).

The family is itself a parameter, so TPE learns which family to spend trials on;
the first trials are each family's library defaults, so tuning starts from them.
Each fold fits with early stopping on that fold's validation part; the mean of
the folds so far is reported after each fold, so the pruner can stop a poor
trial early. Small tables repeat the K folds with new shuffles, and every
completed trial leaves its out-of-fold raw scores for the ensemble selection
(``training.ensemble``). ``tuning.timeout_seconds`` is the whole job's budget,
from the first fit to the checked model: the study ends early enough to leave
the refit of the best trials on every row, and the checks after it, their
time (``Objective.reserve``, estimated from the trials' own fits), and a fit
still running when the study's time ends is stopped. The study lives in an
Optuna storage when one is given, so several workers (processes or AWS Batch
array jobs) can share it.
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
from sklearn.model_selection import RepeatedKFold, RepeatedStratifiedKFold

from training import evaluate, families
from training.ensemble import POOL

LOG = logging.getLogger(__name__)
# The time kept back from the study for what follows it: the refit of this many of the best trials
# (an ensemble's distinct members are usually fewer), each a fold's fit scaled to every training
# row, and then CHECKS times that for the exactness and SHAP checks, the serving guard and the export
# (measured on hotel_rates, one core: a 7.4 s refit of four members, then 13 s of checks: CatBoost's
# ShapValues and the explainers' tables cost about as much as the fits, whatever the rows)
RESERVED_TRIALS = 5
CHECKS = 1.5
# With cv_repeats auto, a study that would score fewer trials than this in its budget repeats its
# folds fewer times (measured on the first trial's first fit): digits' ten classes on one core
# scored 2 trials in 60 s with 2 repeats (the first trial, CatBoost's defaults, is usually the slowest)
MIN_TRIALS = 6


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


def worker_index() -> str | None:
    """This worker's number in a shared study: TUNING_WORKER_INDEX, or the AWS Batch array index."""
    return os.environ.get("TUNING_WORKER_INDEX") or os.environ.get("AWS_BATCH_JOB_ARRAY_INDEX")


def worker_seed(seed: int) -> int:
    """A sampler seed of this worker's own: workers with one seed would sample the same trials.

    The AWS Batch array index when there is one (stable across retries), else the process id.
    """
    index = worker_index()
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


def repeats_for(config: dict[str, Any], rows: int) -> int:
    """K-fold repeats: on small tables one split's luck decides which trial wins, so it is reshuffled."""
    repeats = config["tuning"]["cv_repeats"]
    if repeats != "auto":
        return int(repeats)
    return 3 if rows < 1_000 else 2 if rows < 5_000 else 1


def splits(config: dict[str, Any], X: pd.DataFrame, y: pd.Series,
           task: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """The folds every trial is scored on: K-fold (stratified for classes), repeated with new shuffles."""
    tuning = config["tuning"]
    kind = RepeatedKFold if task == "regression" else RepeatedStratifiedKFold
    splitter = kind(n_splits=tuning["cv_folds"], n_repeats=repeats_for(config, len(X)),
                    random_state=config["seed"])
    return list(splitter.split(X, y))


class Objective:
    """One trial: fit and score every fold; keep the trial's out-of-fold raw scores for the ensemble.

    A row's out-of-fold score is the mean over the repeats of the raw scores of the folds that held
    it out. Past ``deadline`` (time.monotonic()) a trial stops, in a fold or between folds, and is
    pruned: the budget bounds the fits too, not only the start of trials. The deadline is the
    budget's ``end`` less ``reserve``, which grows as trials finish. When no trial has finished
    yet, the stopped one is scored on the folds it finished (without out-of-fold scores), so that a
    short budget still gives a model.

    A ``worker`` of a shared study neither refits (the job that refits the study keeps the reserve)
    nor chooses its own repeats (every worker's trials are scored on the same folds).
    """

    def __init__(self, config: dict[str, Any], X: pd.DataFrame, y: pd.Series, schema, classes: list[str],
                 task: str, metric: str, end: float | None = None, worker: bool = False,
                 models: dict[int, list[families.Fitted]] | None = None) -> None:
        self.config, self.X, self.y, self.schema = config, X, y, schema
        self.classes, self.task, self.metric, self.end = classes, task, metric, end
        self.worker = worker
        self.started = time.monotonic()
        self.folds = splits(config, X, y, task)
        self.sized = worker  # the repeats were fitted to the budget (after the first fit), or are not
        self.oof: dict[int, np.ndarray] = {}  # trial number → (rows, outputs) raw scores
        # given: trial number → its fold models of the first repeat (bagged members), for the trials
        # whose out-of-fold scores are kept
        self.models = models
        self._values: dict[int, float] = {}
        self._sign = -1 if evaluate.DIRECTION[metric] == "maximize" else 1  # sign * value: best first
        self._fit_seconds: dict[int, float] = {}  # trial number → its folds' mean fit time
        self.completed = False  # a trial of this process has finished (a partial one counts)

    @property
    def deadline(self) -> float | None:
        return None if self.end is None else self.end - self.reserve

    @property
    def reserve(self) -> float:
        """Seconds kept back for the refit and the checks: the sum of the ``RESERVED_TRIALS`` best
        finished trials' fits on every training row (a fold's fit times all rows over a fold's
        training rows), and ``CHECKS`` times that again; none for a worker."""
        if self.worker:
            return 0.0
        best = sorted(self._fit_seconds, key=lambda t: self._sign * self._values[t])[:RESERVED_TRIALS]
        folds = self.config["tuning"]["cv_folds"]
        refit = sum(self._fit_seconds[t] for t in best) * folds / (folds - 1)
        return refit * (1 + CHECKS)

    def __call__(self, trial: optuna.Trial) -> float:
        tuning, config = self.config["tuning"], self.config
        worker = worker_index()
        if worker is not None:  # which worker of a shared study ran it (the dashboard shows it)
            trial.set_user_attr("worker", int(worker))
        family = trial.suggest_categorical("family", tuning["families"])
        params = families.suggest(trial, family, self.task, config["class_weight"])
        scores, rounds, fit_seconds, models = [], [], [], []
        raw_sum, seen = None, np.zeros(len(self.X))
        for k, (train_idx, valid_idx) in enumerate(self.folds):
            if k >= len(self.folds):  # the repeats were cut during this trial
                break
            if self.deadline is not None and time.monotonic() > self.deadline:
                if scores and not self.completed:
                    return self._partial(trial, scores, rounds)
                raise optuna.TrialPruned("the tuning budget ended between folds")
            fit_started = time.monotonic()
            try:
                fitted = families.fit(
                    family, params, self.X.iloc[train_idx], self.y.iloc[train_idx], self.schema,
                    task=self.task, seed=config["seed"], threads=tuning["threads"],
                    rounds=tuning["max_rounds"],
                    objective=config["regression"]["objective"],
                    huber_delta=config["regression"]["huber_delta"],
                    eval_set=(self.X.iloc[valid_idx], self.y.iloc[valid_idx]),
                    early_stopping_rounds=tuning["early_stopping_rounds"], deadline=self.deadline,
                )
            except families.OutOfTime:
                if scores and not self.completed:
                    return self._partial(trial, scores, rounds)
                raise optuna.TrialPruned("the tuning budget ended in a fit") from None
            fit_seconds.append(time.monotonic() - fit_started)
            if self.models is not None and k < tuning["cv_folds"]:
                models.append(fitted)
            if not self.sized:
                self.sized = True
                self.fit_repeats(fit_seconds[0])
            raw = fitted.raw(self.X.iloc[valid_idx], self.schema)
            if raw_sum is None:
                raw_sum = np.zeros((len(self.X), raw.shape[1]))
            raw_sum[valid_idx] += raw
            seen[valid_idx] += 1
            output = fitted.predict(self.X.iloc[valid_idx], self.schema)
            scores.append(evaluate.score(self.metric, self.y.iloc[valid_idx], output, self.classes))
            rounds.append(fitted.best_rounds)
            trial.report(float(np.mean(scores)), step=k)
            if trial.should_prune():
                raise optuna.TrialPruned()
        trial.set_user_attr("rounds", int(np.median(rounds)))
        trial.set_user_attr("fold_scores", [float(s) for s in scores])
        value = float(np.mean(scores))
        self.completed = True
        self.oof[trial.number] = raw_sum / seen[:, None]
        if self.models is not None:
            self.models[trial.number] = models
        trial.set_user_attr("fit_seconds", round(float(np.mean(fit_seconds)), 3))
        self._keep_best(trial.number, value, float(np.mean(fit_seconds)))
        return value

    def _partial(self, trial: optuna.Trial, scores: list[float], rounds: list[int]) -> float:
        """The study's only trial, stopped by the budget: its finished folds decide."""
        trial.set_user_attr("rounds", int(np.median(rounds)))
        trial.set_user_attr("fold_scores", [float(s) for s in scores])
        trial.set_user_attr("partial", f"{len(scores)} of {len(self.folds)} folds: budget ended")
        self.completed = True
        return float(np.mean(scores))

    def fit_repeats(self, fold_seconds: float) -> None:
        """With ``cv_repeats: auto`` and a budget, fewer repeats when a trial as slow as the first fit
        would leave fewer than ``MIN_TRIALS`` in the budget: the search needs trials more than each
        trial needs its repeats (``wanted``: fewer for a study of fewer trials). Decided once, on the
        first trial's first fit, so every trial of this process is scored on the same folds; never
        in a worker of a shared study, whose trials must be scored as the other workers' are."""
        folds = self.config["tuning"]["cv_folds"]
        repeats = len(self.folds) // folds
        if self.config["tuning"]["cv_repeats"] != "auto" or self.end is None or repeats == 1:
            return
        wanted = min(MIN_TRIALS, self.config["tuning"]["n_trials"])  # a study of 3 trials does not need 6
        affordable = int((self.end - self.started) // (wanted * folds * max(fold_seconds, 1e-9)))
        kept = max(1, min(repeats, affordable))
        if kept < repeats:
            self.folds = self.folds[:folds * kept]
            LOG.info("the first fit took %.1f s: %d repeat(s) of the folds, not %d, so that about %d "
                     "trials fit in the budget", fold_seconds, kept, repeats, wanted)

    def _keep_best(self, number: int, value: float, fit_seconds: float) -> None:
        """Only the ``ensemble.POOL`` best trials' scores are kept: memory stays bounded on big tables."""
        self._values[number] = value
        self._fit_seconds[number] = fit_seconds
        if len(self.oof) > POOL:
            worst = max(self.oof, key=lambda t: self._sign * self._values[t])
            del self.oof[worst]
            if self.models is not None:
                self.models.pop(worst, None)


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
    models: dict[int, list[families.Fitted]] | None = None,
) -> dict[int, np.ndarray]:
    """Run this worker's share of trials, with a progress bar showing the best score; the trials'
    out-of-fold raw scores (trial number → (rows, outputs)) for the ensemble selection. Given
    ``models``, it receives the kept trials' fold models of the first repeat (bagged members).

    The study starts from each library's defaults: the training job's own study always, a
    shared study only from worker 0 (TUNING_WORKER_INDEX or AWS_BATCH_JOB_ARRAY_INDEX):
    ``enqueue_trial(skip_if_exists=True)`` is not atomic, and two workers adding the defaults at
    once were seen to run them twice."""
    from tqdm.auto import tqdm

    tuning = config["tuning"]
    n_trials = tuning["n_trials"]
    if not n_trials:
        return {}
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    bar = tqdm(total=n_trials, desc=f"tuning ({metric})", unit="trial",
               disable=not show_progress, dynamic_ncols=True)

    def callback(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        bar.update(1)
        if objective.deadline is not None and time.monotonic() >= objective.deadline:
            study.stop()  # what is left of the budget is the refit's and the checks'
        try:
            best = study.best_trial
            bar.set_postfix(best=f"{best.value:.4f}", family=best.params.get("family"),
                            state=trial.state.name.lower())
        except ValueError:
            pass
        if on_trial:
            on_trial(study, trial)

    if not worker or worker_index() == "0":
        for family in tuning["families"]:
            start = families.starting_point(family, task, config["class_weight"])
            study.enqueue_trial(start, skip_if_exists=True)
    started = time.monotonic()
    budget = tuning["timeout_seconds"]
    objective = Objective(config, X, y, schema, classes, task, metric,
                          end=started + budget if budget else None, worker=worker,
                          models=models)
    try:
        study.optimize(
            objective,
            n_trials=n_trials,
            timeout=tuning["timeout_seconds"],
            callbacks=[callback],
            gc_after_trial=False,
        )
    finally:
        bar.close()
    kept = f", {objective.reserve:.1f} s kept for the refit and the checks" if budget and not worker else ""
    LOG.info("tuned %d trials in %.1f s%s", len(objective.oof), time.monotonic() - started, kept)
    return objective.oof
