"""The training job: data → tuned model → checked bundle in S3 → promotion gate.

    python -m training train [--config FILE] [--set key=value ...]

``run`` is the job, one named step after another; each step is a function of
its own that a test can call alone:

    prepare → tune_study → refit → evaluate → export_and_check → build_manifest → publish_version → gate
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
from serving.model import bundle
from serving.monitoring import drift
from serving.store import bundles
from sklearn.model_selection import train_test_split

from training import data as D
from training import ensemble, families, leakage, promotion, serving_cost, tracking, tune
from training import evaluate as E
from training.export import MAX_ABS_DIFFERENCE, check_exactness, check_explanations

LOG = logging.getLogger("training")
EXAMPLES = 20  # held-out rows shipped in the manifest for clients ("fill with an example")
# held-out rows the SHAP values are checked on (every held-out row's prediction is): exact TreeSHAP
# in numpy costs about 6 ms a row for 600 LightGBM trees, so every row of a large held-out split
# took longer than the study (36 s for hotel_rates' 3,081 rows)
EXPLAINED_ROWS = 200


@dataclass
class Prepared:
    """The data, split and described: what every later step works on."""

    dataset: D.Dataset
    schema: list[dict[str, Any]]
    X_train: pd.DataFrame
    X_test: pd.DataFrame
    y_train: pd.Series
    y_test: pd.Series
    name: str  # the model's name in the bucket
    metric: str  # what tuning optimises
    gate_metric: str  # what promotion compares
    leaks: list[dict[str, Any]] = field(default_factory=list)  # columns that alone predict the target

    @property
    def classes(self) -> list[str]:
        return self.dataset.classes

    @property
    def task(self) -> str:
        return self.dataset.task


@dataclass
class Refit:
    """The study's best configuration, or the ensemble of its trials, fitted on all the training rows."""

    family: str  # catboost | lightgbm | ensemble
    params: dict[str, Any]
    rounds: int
    fitted: families.Fitted | ensemble.Weighted
    cv_score: float
    cv_folds: list[float] | None
    best_trial: int
    members: list[dict[str, Any]] | None = None  # an ensemble's: family, trial, weight, rounds, params
    selection: dict[str, Any] | None = None  # what the ensemble selection saw out of fold
    threshold: float | None = None  # a binary model's label threshold (None: the likelier class)


@dataclass
class Evaluation:
    """The refit model on the held-out rows: its native answers and their metrics."""

    output: np.ndarray  # class probabilities, or values (n, 1), from the native library
    metrics: dict[str, Any]
    threshold: float | None = None  # the labels' decision threshold the metrics used


def s3_client():
    import boto3

    return boto3.client("s3")


def prepare(config: dict[str, Any], s3=None) -> Prepared:
    """Load, screen, validate and split the data; infer the schema; settle the metrics for the task."""
    dataset = D.load(config["dataset"], config["target"], s3_client=s3, task=config["task"],
                     sheet=config["sheet"])
    dataset = D.screen(dataset, config["drop_columns"], config["id_column"], config["constant_columns"])
    D.validate(dataset, config["tuning"]["cv_folds"], config["constant_columns"])
    metric, gate_metric = metrics_for(config, dataset.task)
    X_train, X_test, y_train, y_test = train_test_split(
        dataset.X, dataset.y, test_size=config["test_size"],
        stratify=None if dataset.task == "regression" else dataset.y, random_state=config["seed"],
    )
    schema = D.infer_schema(dataset.X)
    target = dataset.classes if dataset.task != "regression" else f"{dataset.target} (regression)"
    LOG.info("data %s: %d rows (%d train, %d held out), %d features, %s: %s",
             dataset.name, len(dataset.X), len(X_train), len(X_test), len(schema), dataset.task, target)
    return Prepared(dataset, schema, X_train, X_test, y_train, y_test,
                    name=bundle.check_name(config["model_name"] or dataset.name), metric=metric,
                    gate_metric=gate_metric,
                    leaks=leakage.suspects(X_train, y_train, dataset.task, config["seed"]))


def metrics_for(config: dict[str, Any], task: str) -> tuple[str, str]:
    """The tuning and promotion metrics: the configured ones if they fit the task, else its defaults."""
    fitting = E.REGRESSION_METRICS if task == "regression" else E.CLASSIFICATION_METRICS
    metric = config["tuning"]["metric"] or E.DEFAULT_METRIC[task]
    gate = config["promotion"]["metric"] or metric
    for key, value in (("tuning.metric", metric), ("promotion.metric", gate)):
        if value not in fitting:
            raise D.DataError(f"{key} {value!r} does not fit a {task} task: use one of {', '.join(fitting)}")
    return metric, gate


def study_name(config: dict[str, Any], prepared: Prepared) -> str:
    """The configured name; else, for a kept study, the model and the time (each job a study of its own)."""
    tuning = config["tuning"]
    if tuning["study_name"]:
        return tuning["study_name"]
    if tuning["storage"]:
        return f"{prepared.name}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}"
    return f"{prepared.name}-{config['seed']}"


def tune_study(config: dict[str, Any], prepared: Prepared, on_trial=None, show_progress: bool = True,
               models: dict[int, list[families.Fitted]] | None = None) -> tuple[Any, dict[int, np.ndarray]]:
    """The Optuna study over both families, run for this job's share of trials, and the out-of-fold
    raw scores of the trials it ran; ``models``, when given, receives their fold models (``bagged``)."""
    study = tune.create_study(config, study_name(config, prepared), prepared.metric)
    oof = tune.optimize(study, config, prepared.X_train, prepared.y_train, prepared.schema, prepared.classes,
                        prepared.task, prepared.metric, on_trial=on_trial, show_progress=show_progress,
                        models=models)
    return study, oof


# ``ensemble_members: auto`` bags classification tables under this many training rows: measured on
# the training benchmark's small tables (benchmarks/ensemble_choices.py), the fold models scored
# better than the members refit on every row, and their trees stay few enough to serve
BAG_ROWS = 5_000


def bagged(config: dict[str, Any], prepared: Prepared) -> bool:
    """Whether the model's members are their trials' fold models (bagging) rather than refits."""
    setting = config["ensemble_members"]
    if setting != "auto":
        return setting == "bagged"
    return prepared.task != "regression" and len(prepared.X_train) < BAG_ROWS


def fit_trial(config: dict[str, Any], prepared: Prepared, trial,
              models: dict[int, list[families.Fitted]] | None = None,
              ) -> tuple[str, dict, int, families.Fitted | ensemble.Bagged]:
    """A trial's model: its fold models from the study when they were kept (bagged), else a fit of its
    parameters on every training row with its folds' median rounds."""
    family, params = families.params_from_trial(trial.params)
    rounds = int(trial.user_attrs.get("rounds", config["tuning"]["max_rounds"]))
    if models and trial.number in models:
        return family, params, rounds, ensemble.Bagged(models[trial.number])
    fitted = families.fit(family, params, prepared.X_train, prepared.y_train, prepared.schema,
                          task=prepared.task, seed=config["seed"], threads=config["tuning"]["threads"],
                          rounds=rounds, objective=config["regression"]["objective"],
                          huber_delta=config["regression"]["huber_delta"])
    if fitted.classes != prepared.classes:  # the served probability columns follow `classes`
        raise RuntimeError(f"model classes {fitted.classes} differ from the data's {prepared.classes}")
    return family, params, rounds, fitted


def selection_metric(config: dict[str, Any], prepared: Prepared) -> str:
    """What the ensemble selection optimises out of fold: the study's metric, except for a binary
    table scored by F1 whose label threshold is tuned afterwards (``decision_threshold: auto``).
    There it is the log loss: F1 at the default threshold ranks mixtures by labels the published
    model will not give, and a proper scoring rule is smoother on a few hundred rows. Measured in
    docs/decisions/ensembles.md."""
    if prepared.task == "binary" and prepared.metric == "f1_macro" and config["decision_threshold"] == "auto":
        return "log_loss"
    return prepared.metric


def select_ensemble(config: dict[str, Any], prepared: Prepared, study,
                    oof: dict[int, np.ndarray]) -> ensemble.Selection | None:
    """The ensemble of the study's trials, when ``ensemble: auto`` and it beats the best trial out of fold
    (both scored by ``selection_metric``)."""
    if config["ensemble"] != "auto":
        return None
    values = {t.number: t.value for t in study.trials if t.number in oof and t.value is not None}
    if len(values) < 2:
        return None
    metric = selection_metric(config, prepared)
    if metric != prepared.metric:  # each trial's out-of-fold score by the selection's metric
        values = {n: E.score(metric, prepared.y_train, ensemble.oof_output(oof[n], prepared.task),
                             prepared.classes) for n in values}
    selection = ensemble.select(oof, values, prepared.y_train, metric, prepared.classes, prepared.task)
    used = len(selection.counts) > 1 and E.better(metric, selection.score, selection.best_single, 0.0)
    LOG.info("ensemble selection: %d trials, weights %s; out of fold %s=%.4f against the best trial's "
             "%.4f: %s",
             len(selection.counts), {t: round(w, 3) for t, w in selection.weights.items()}, metric,
             selection.score, selection.best_single, "ensemble" if used else "the best trial alone")
    return selection if used else None


def decision_threshold(config: dict[str, Any], prepared: Prepared,
                       oof_raw: np.ndarray | None) -> float | None:
    """A binary model's label threshold: the configured one, or with ``auto`` and F1 as the tuning
    metric, the one that maximises it out of fold (probabilities stay as they are; only labels move)."""
    setting = config["decision_threshold"]
    if prepared.task != "binary":
        return None
    if setting != "auto":
        return float(setting)
    if prepared.metric != "f1_macro" or oof_raw is None:
        return None
    threshold = E.best_threshold(prepared.y_train, ensemble.oof_output(oof_raw, "binary"), prepared.classes)
    LOG.info("decision threshold %.2f on P(%s), tuned out of fold for f1_macro", threshold,
             prepared.classes[1])
    return threshold


def refit(config: dict[str, Any], prepared: Prepared, study, oof: dict[int, np.ndarray] | None = None,
          models: dict[int, list[families.Fitted]] | None = None) -> Refit:
    """The best trial, or the ensemble of trials the selection chose, fitted on every training row (or
    their fold models kept from the study: ``models``, when the members are bagged).

    Bagged members come first when the study kept them; when no bagged model (the ensemble, a
    narrower one, or the best trial's fold models alone) answers one row within
    ``ensemble_max_slowdown`` times the best trial alone, the members are refit instead: bagging
    multiplies the trees by the folds, and the guard bounds what that costs to serve."""
    if not any(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials):
        budget = config["tuning"]["timeout_seconds"]
        raise D.DataError(f"the tuning budget ({budget} s) ended before a trial finished one fold: give "
                          "tuning.timeout_seconds more, or lower tuning.max_rounds")
    best, oof = study.best_trial, oof or {}
    selection = select_ensemble(config, prepared, study, oof)
    fits: dict[int, tuple] = {}  # trial number → fit_trial's answer, shared with the fallback
    if models:
        kept = fit_bagged(config, prepared, study, oof, selection, models, fits)
        if kept is not None:
            return kept
        LOG.info("no bagged model serves one row within %sx the best trial alone: the members are refit",
                 config["ensemble_max_slowdown"])
        fits = {n: f for n, f in fits.items() if not isinstance(f[3], ensemble.Bagged)}  # refits stay
    if selection is None:
        return fit_best(config, prepared, best, oof)
    return (fit_ensemble(config, prepared, study, oof, selection, fits)
            or fit_best(config, prepared, best, oof, fits.get(best.number)))


def fit_bagged(config: dict[str, Any], prepared: Prepared, study, oof: dict[int, np.ndarray],
               selection: ensemble.Selection | None, models: dict[int, list[families.Fitted]],
               fits: dict[int, tuple]) -> Refit | None:
    """The model of the trials' fold models (``models``; a trial without them is refit) within the
    serving guard: the ensemble, narrowed as ``fit_ensemble`` does, else the best trial's folds alone,
    timed against the best trial as one model; None when even those are too slow, or when the best
    trial kept no fold models (from another process, or stopped part-way) and no ensemble was."""
    best = study.best_trial
    model = selection and fit_ensemble(config, prepared, study, oof, selection, fits, models)
    if model:
        return model
    if best.number not in models:  # nothing bagged is left to try: the refit members may be
        return None if selection else fit_best(config, prepared, best, oof, fits.get(best.number))
    model = fit_best(config, prepared, best, oof, fits.get(best.number), models)
    limit = config["ensemble_max_slowdown"]
    if limit == "off":
        return model
    reference = best_alone(best, ensemble.Bagged(models[best.number]))
    slowdown = serving_cost.slowdown(model.fitted.export(prepared.schema), reference.export(prepared.schema),
                                     prepared)
    LOG.info("the best trial's %d fold models serve one row in %.2fx the time of one (limit %.2fx)",
             len(model.fitted.members), slowdown, limit)
    if slowdown > limit:
        return None
    model.selection.update(serving_slowdown=round(slowdown, 3), max_slowdown=limit)
    return model


def best_alone(best, fitted: families.Fitted | ensemble.Bagged) -> families.Fitted:
    """The best trial as one model, what the serving guard times a model against: its refit, or, when
    its fold models were kept, the one whose rounds are nearest its folds' median (the rounds its
    refit would have: the same trees, so the same cost to serve, without fitting it)."""
    if not isinstance(fitted, ensemble.Bagged):
        return fitted
    rounds = best.user_attrs.get("rounds", fitted.models[0].best_rounds)
    return min(fitted.models, key=lambda m: abs(m.best_rounds - rounds))


# What the serving guard narrows an ensemble to, in turn: the best trial's family (one layout: its
# members fold into one or a few evaluations), then CatBoost trees of the best trial's depth (one
# evaluation when they carry no target statistics)
NARROWER = (("the best trial's family", ("family",)),
            ("the best trial's family and depth", ("family", "cb_depth")))


def fit_best(config: dict[str, Any], prepared: Prepared, best, oof: dict[int, np.ndarray],
             fitted_already: tuple | None = None,
             models: dict[int, list[families.Fitted]] | None = None) -> Refit:
    family, params, rounds, fitted = fitted_already or fit_trial(config, prepared, best, models)
    threshold = decision_threshold(config, prepared, oof.get(best.number))
    if isinstance(fitted, ensemble.Bagged):  # its fold models: one weighted model of K members
        LOG.info("best trial %d: %s cv %s=%.4f, its %d fold models bagged",
                 best.number, family, prepared.metric, best.value, len(fitted.models))
        weighted = fitted.as_weighted(best.number)
        return Refit("ensemble", {}, sum(m.best_rounds for m in weighted.members), weighted,
                     float(best.value), best.user_attrs.get("fold_scores"), best.number,
                     members=weighted.describe({best.number: params}), threshold=threshold,
                     selection={"members": "bagged", "best_trial": best.number})
    LOG.info("best trial %d: %s cv %s=%.4f, refit with %d rounds",
             best.number, family, prepared.metric, best.value, rounds)
    return Refit(family, params, rounds, fitted, float(best.value), best.user_attrs.get("fold_scores"),
                 best.number, threshold=threshold)


def fit_ensemble(config: dict[str, Any], prepared: Prepared, study, oof: dict[int, np.ndarray],
                 selection: ensemble.Selection, fits: dict[int, tuple],
                 models: dict[int, list[families.Fitted]] | None = None) -> Refit | None:
    """The selected trials fitted on every training row (or their fold models, ``models``), as one
    weighted model, within the serving guard: an ensemble whose warm single-row answer is more than
    ``ensemble_max_slowdown`` times the best trial alone's (``best_alone``) is chosen again among
    fewer trials (``NARROWER``) until it is fast enough; when none is (or no narrower ensemble beats
    the best trial out of fold), None: the best trial alone."""
    trials, best = {t.number: t for t in study.trials}, study.best_trial
    limit = config["ensemble_max_slowdown"]

    def fit(number: int) -> tuple:
        if number not in fits:
            fits[number] = fit_trial(config, prepared, trials[number], models)
        return fits[number]

    narrowings = iter(NARROWER)
    narrowed_to, slowdown, pool, best_arrays = None, None, set(oof), None
    while True:
        chosen = sorted(selection.weights)
        weighted = ensemble.Weighted.of([fit(n)[3] for n in chosen], [selection.weights[n] for n in chosen],
                                        chosen, prepared.task)
        if limit == "off":
            break
        if best_arrays is None:
            best_arrays = best_alone(best, fit(best.number)[3]).export(prepared.schema)
        slowdown = serving_cost.slowdown(weighted.export(prepared.schema), best_arrays, prepared)
        LOG.info("ensemble of %d serves one row in %.2fx the best trial's time (limit %.2fx)",
                 len(chosen), slowdown, limit)
        if slowdown <= limit:
            break
        for label, keys in narrowings:  # the next narrowing that leaves out a trial
            narrower = {n for n in pool if all(trials[n].params.get(k) == best.params.get(k) for k in keys)}
            if narrower != pool:
                pool, narrowed_to = narrower, label
                break
        else:
            LOG.info("no narrower ensemble to choose: the best trial alone")
            return None
        selection = select_ensemble(config, prepared, study, {n: oof[n] for n in pool})
        if selection is None:
            LOG.info("no ensemble of %s beats the best trial out of fold: the best trial alone", narrowed_to)
            return None
    members = weighted.describe({n: fit(n)[1] for n in chosen})
    oof_raw = sum(w * oof[n] for n, w in selection.weights.items())
    rounds = sum(m.best_rounds for m in weighted.members)
    cv = E.score(prepared.metric, prepared.y_train, ensemble.oof_output(oof_raw, prepared.task),
                 prepared.classes)  # the study's metric, as its trials were scored
    return Refit("ensemble", {}, rounds, weighted, float(cv), None, best.number,
                 members=members, threshold=decision_threshold(config, prepared, oof_raw),
                 selection={"members": "bagged" if models else "refit",
                            "metric": selection_metric(config, prepared),
                            "score": selection.score, "best_single": selection.best_single,
                            "best_trial": selection.best_trial, "history": selection.history,
                            "pool": ensemble.POOL, "size": ensemble.SIZE,
                            "serving_slowdown": None if slowdown is None else round(slowdown, 3),
                            "max_slowdown": limit, "narrowed_to": narrowed_to})


def evaluate(prepared: Prepared, model: Refit) -> Evaluation:
    """The native model's answers on the held-out rows, and their metrics."""
    output = model.fitted.predict(prepared.X_test, prepared.schema)
    return Evaluation(output, E.metrics(prepared.y_test, output, prepared.classes, model.threshold),
                      model.threshold)


@dataclass(frozen=True)
class Exactness:
    """How far the served form is from the native model on the held-out rows."""

    predictions: float  # probabilities, or values relative to max(1, |value|)
    explanations: float  # SHAP contributions and expected values, measured the same way
    explained_rows: int  # the held-out rows the explanations were checked on (the first ones)


def export_and_check(prepared: Prepared, model: Refit, evaluation: Evaluation) -> tuple[dict, Exactness]:
    """The served form, and its largest differences from the native answers on the held-out rows and
    from the native SHAP values on the first ``EXPLAINED_ROWS`` of them (``training.export`` refuses
    to go on over the bar)."""
    arrays = model.fitted.export(prepared.schema)
    X = D.to_matrix(prepared.X_test, prepared.schema)
    explained = prepared.X_test.iloc[:EXPLAINED_ROWS]
    exact = Exactness(
        predictions=check_exactness(arrays, X, evaluation.output),
        explanations=check_explanations(arrays, X[:len(explained)],
                                        model.fitted.shap(explained, prepared.schema)),
        explained_rows=len(explained),
    )
    LOG.info("served form matches the native model on %d held-out rows: max |Δ| = %.2e (predictions), "
             "%.2e (SHAP values, on %d rows)", len(prepared.X_test), exact.predictions, exact.explanations,
             exact.explained_rows)
    return arrays, exact


def build_manifest(config: dict[str, Any], prepared: Prepared, model: Refit, evaluation: Evaluation,
                   exactness: Exactness, lineage: dict[str, Any]) -> dict[str, Any]:
    """What a version says about itself, beyond what ``bundles.publish`` adds (version, files)."""
    import catboost
    import lightgbm

    dataset, X_test = prepared.dataset, prepared.X_test
    versions = {"catboost": catboost.__version__, "lightgbm": lightgbm.__version__}
    if model.members is None:
        framework = {"family": model.family, "library_version": versions[model.family],
                     "served_as": "serving.model.evaluator (numpy)",
                     "native_file": model.fitted.native_file()[0]}
    else:
        framework = {"family": "ensemble", "library_versions": versions,
                     "served_as": "serving.model.evaluator (numpy): the weighted sum of the members' raw "
                                  "scores, then the link",
                     "native_files": [m["native_file"] for m in model.members]}
    names = {"catboost": "CatBoost's ShapValues", "lightgbm": "LightGBM's pred_contrib"}
    families_ = sorted({m["family"] for m in model.members or [{"family": model.family}]})
    native = (names[model.family] if model.members is None
              else "the weighted sum of the members' " + " and ".join(names[f] for f in families_))
    return {
        "framework": framework,
        **({"ensemble": {"members": model.members, "selection": model.selection}} if model.members else {}),
        **({"decision_threshold": model.threshold} if model.threshold is not None else {}),
        **({"leakage": prepared.leaks} if prepared.leaks else {}),
        "feature_schema": prepared.schema,
        "classes": prepared.classes,
        "target": dataset.target,
        "dropped_columns": dataset.dropped,
        "id_column": D.id_column(dataset.dropped),
        "metrics": {"test": evaluation.metrics,
                    "cv": {"metric": prepared.metric, "score": model.cv_score, "folds": model.cv_folds}},
        "hyperparameters": {**model.params, "rounds": model.rounds},
        "exactness": {"max_abs_difference": exactness.predictions, "limit": MAX_ABS_DIFFERENCE,
                      "rows": len(X_test),
                      "measured_as": ("|served - native| / max(1, |native|)" if prepared.task == "regression"
                                      else "|served - native| of each class probability"),
                      "explanations": {
                          "max_abs_difference": exactness.explanations, "limit": MAX_ABS_DIFFERENCE,
                          "rows": exactness.explained_rows,
                          "measured_as": "each SHAP contribution and the expected value against "
                                         + native
                                         + (", relative to max(1, |native|)" if prepared.task == "regression"
                                            else "")}},
        "lineage": {
            "dataset": dataset.name, "source": dataset.source, "data_sha256": dataset.sha256(),
            "rows": len(dataset.X), "rows_train": len(prepared.X_train), "rows_test": len(X_test),
            "test_size": config["test_size"], "seed": config["seed"], "git_revision": _git_revision(),
            "best_trial": model.best_trial, **lineage,
        },
        "examples": [
            {"label": label, "instance": instance}
            for label, instance in zip(prepared.y_test.iloc[:EXAMPLES].tolist(),
                                       D.to_instances(X_test.iloc[:EXAMPLES], prepared.schema), strict=True)
        ],
    }


def profile(prepared: Prepared, evaluation: Evaluation, seed: int) -> dict[str, Any]:
    """The reference drift is measured against: the training rows, and the answers on the held-out ones."""
    matrix = D.to_matrix(prepared.X_train, prepared.schema)
    return drift.reference(matrix, drift.columns(prepared.schema), evaluation.output, prepared.task,
                           prepared.classes, seed=seed)


def publish_version(s3, bucket: str, prepared: Prepared, model: Refit, arrays: dict,
                    manifest_fields: dict[str, Any], reference: dict[str, Any]) -> dict[str, Any]:
    """A new immutable version in the bucket, with the native model and the drift reference beside
    the served one."""
    files = dict(model.fitted.native_files())
    files[drift.REFERENCE_FILE] = json.dumps(reference, allow_nan=False).encode()
    manifest = bundles.publish(s3, bucket, prepared.name, arrays, manifest_fields, files, progress=LOG.info)
    LOG.info("published %s v%d at s3://%s/%s", prepared.name, manifest["version"], bucket,
             bundle.version_prefix(prepared.name, manifest["version"]))
    return manifest


def gate(config: dict[str, Any], s3, bucket: str, prepared: Prepared, evaluation: Evaluation,
         version: int) -> promotion.Decision:
    """Promote the new version only if it beats the champion on the same held-out rows."""
    settings = config["promotion"]
    score = E.score(prepared.gate_metric, prepared.y_test, evaluation.output, prepared.classes,
                    evaluation.threshold)
    decision = promotion.decide(s3, bucket, prepared.name, prepared.gate_metric,
                                float(settings["min_improvement"]), score, prepared.X_test, prepared.y_test,
                                prepared.task)
    if decision.promote:
        promotion.promote(s3, bucket, prepared.name, version, decision.reason)
        tracking.mirror_champion(prepared.name, version)
    LOG.info("%s: %s", "promoted to champion" if decision.promote else "kept as candidate", decision.reason)
    return decision


def run(config: dict[str, Any], publish: bool = True, show_progress: bool = True,
        keep: dict[str, Any] | None = None) -> dict[str, Any]:
    """The whole job; its summary. ``keep``, when given, receives the job's objects (prepared, study,
    model, arrays) for a caller that measures them (the training benchmark)."""
    started = time.monotonic()
    bucket = config["bucket"] or os.environ.get("MODEL_BUCKET")
    if publish and not bucket:
        raise SystemExit("no model bucket: set MODEL_BUCKET or --set bucket=NAME")
    s3 = s3_client() if (publish or str(config["dataset"]).startswith("s3://")) else None
    prepared = prepare(config, s3)
    experiment_id = tracking.setup(config)
    with tracking.job_run(experiment_id, config, prepared) as run_id:
        def on_trial(_study, trial):
            tracking.log_trial(run_id, experiment_id, trial)

        models: dict[int, list[families.Fitted]] | None = {} if bagged(config, prepared) else None
        study, oof = tune_study(config, prepared, show_progress=show_progress, on_trial=on_trial,
                                models=models)
        model = refit(config, prepared, study, oof, models)
        evaluation = evaluate(prepared, model)
        tracking.log_evaluation(prepared, model, evaluation, study)
        arrays, exactness = export_and_check(prepared, model, evaluation)
        tracking.log_exactness(exactness.predictions, exactness.explanations)
        summary: dict[str, Any] = {
            "model_name": prepared.name, "family": model.family, "cv_score": model.cv_score,
            "metric": prepared.metric, "task": prepared.task, "mlflow_run_id": run_id,
            "study": study.study_name,
            "test_metrics": {k: v for k, v in evaluation.metrics.items() if k != "per_class"},
            "trials": len(study.trials),
        }
        if prepared.leaks:
            summary["leakage"] = [leak["message"] for leak in prepared.leaks]
        if publish:
            fields = build_manifest(config, prepared, model, evaluation, exactness,
                                    {"mlflow_run_id": run_id, "optuna_study": study.study_name})
            manifest = publish_version(s3, bucket, prepared, model, arrays, fields,
                                       profile(prepared, evaluation, config["seed"]))
            version = manifest["version"]
            bundle_uri = f"s3://{bucket}/{bundle.version_prefix(prepared.name, version)}"
            registered = tracking.register(prepared.name, run_id, bundle_uri, version,
                                           {"family": model.family,
                                            **({"members": ensemble.members_tag(model.members)}
                                               if model.members else {})})
            decision = gate(config, s3, bucket, prepared, evaluation, version)
            summary.update(version=version, bundle_uri=bundle_uri, registered_version=registered,
                           promoted=decision.promote, promotion_reason=decision.reason)
        summary["seconds"] = round(time.monotonic() - started, 1)
        if keep is not None:
            keep.update(prepared=prepared, study=study, model=model, arrays=arrays)
        tracking.log_summary(summary)
    return summary


def _git_revision() -> str | None:
    try:
        out = subprocess.run(  # noqa: S603,S607 - fixed command
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,  # nosec B607
            cwd=Path(__file__).parent,
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def print_json(document: Any) -> None:
    print(json.dumps(document, indent=2, default=str))

