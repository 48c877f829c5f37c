"""Ensemble selection over the study's trials, the budget that bounds the fits, repeated folds."""

import dataclasses
import time

import numpy as np
import optuna
import pandas as pd
import pytest
from serving.model import evaluator

from tests.unit.training.test_training import small_config
from training import config as C
from training import data as D
from training import ensemble, families, job, leakage, tune
from training import evaluate as E

Y = pd.Series(["a", "b"] * 50)
TRUTH = np.where(Y == "b", 1.0, -1.0)[:, None]  # log-odds that are right on every row


def test_selection_mixes_trials_whose_errors_differ():
    # two trials each right on a different half of the rows, a third worse everywhere
    half = np.arange(100) < 50
    left, right = np.where(half[:, None], TRUTH, -0.5 * TRUTH), np.where(half[:, None], -0.5 * TRUTH, TRUTH)
    oof = {0: left, 1: right, 2: -0.1 * TRUTH}
    values = {0: 0.80, 1: 0.79, 2: 0.3}
    selection = ensemble.select(oof, values, Y, "f1_macro", ["a", "b"], "binary")
    assert set(selection.counts) == {0, 1}
    assert selection.weights == {0: 0.5, 1: 0.5}
    assert selection.score == 1.0
    assert selection.best_trial == 0
    assert selection.best_single == 0.5  # right on one half, wrong on the other
    assert len(selection.history) == ensemble.SIZE


def test_selection_keeps_the_best_prefix_and_the_best_trial_alone_when_nothing_helps():
    oof = {0: TRUTH, 1: -TRUTH}
    selection = ensemble.select(oof, {0: 0.3, 1: 1.3}, Y, "log_loss", ["a", "b"], "binary")
    assert selection.counts == {0: 1}
    assert selection.score == selection.best_single


def test_selection_chooses_only_among_the_best_trials_of_the_pool():
    oof = {k: TRUTH * (1 + k) for k in range(5)}  # the larger the surer, the lower the log loss
    values = {k: 1.0 + k for k in range(5)}  # ... but the study ranked them the other way
    selection = ensemble.select(oof, values, Y, "log_loss", ["a", "b"], "binary", pool=2)
    assert set(selection.counts) <= {0, 1}
    with pytest.raises(ValueError, match="no completed trial"):
        ensemble.select({}, {0: 1.0}, Y, "log_loss", ["a", "b"], "binary")


def test_a_binary_f1_table_with_a_tuned_threshold_selects_on_log_loss():
    import types

    flipped = np.arange(100) < 10
    oof = {0: 0.01 * TRUTH,  # right on every row, barely: F1 1.0, log loss 0.688
           1: np.where(flipped[:, None], -3, 3) * TRUTH}  # wrong on 10 rows, sure of all: F1 0.9, 0.349
    study = types.SimpleNamespace(trials=[types.SimpleNamespace(number=0, value=1.0),
                                          types.SimpleNamespace(number=1, value=0.9)])
    prepared = types.SimpleNamespace(task="binary", metric="f1_macro", y_train=Y, classes=["a", "b"])
    config = {"ensemble": "auto", "decision_threshold": "auto"}
    assert job.selection_metric(config, prepared) == "log_loss"
    selection = job.select_ensemble(config, prepared, study, oof)
    assert selection is not None and selection.best_trial == 1  # the best by log loss, not by F1
    loss = E.score("log_loss", Y, ensemble.oof_output(oof[1], "binary"), ["a", "b"])
    assert selection.best_single == pytest.approx(loss) and selection.score < loss
    fixed = {**config, "decision_threshold": 0.5}  # labels at a fixed threshold: F1 itself
    assert job.selection_metric(fixed, prepared) == "f1_macro"
    assert job.select_ensemble(fixed, prepared, study, oof) is None  # nothing beats F1 1.0
    multiclass = types.SimpleNamespace(**{**vars(prepared), "task": "multiclass"})
    assert job.selection_metric(config, multiclass) == "f1_macro"


def test_regression_selection_averages_values():
    y = pd.Series(np.arange(10.0))
    oof = {0: (y.to_numpy() + 1)[:, None], 1: (y.to_numpy() - 1)[:, None]}
    selection = ensemble.select(oof, {0: 1.0, 1: 1.0}, y, "rmse", [], "regression")
    assert selection.weights == {0: 0.5, 1: 0.5}
    assert selection.score == 0.0


def test_the_job_publishes_an_ensemble_and_off_means_the_best_trial(tmp_path, s3):
    config = small_config(tmp_path, **{"tuning.n_trials": 10, "bucket": "models", "model_name": "bc",
                                       "ensemble_max_slowdown": "off"})  # the guard has tests of its own
    summary = job.run(config, publish=True, show_progress=False)
    assert summary["family"] == "ensemble"
    from serving.store import bundles

    manifest = bundles.read_manifest(s3, "models", "bc", summary["version"])
    members = manifest["ensemble"]["members"]
    assert len(members) >= 2 and sum(m["weight"] for m in members) == pytest.approx(1.0)
    assert manifest["framework"]["native_files"] == [m["native_file"] for m in members]
    assert manifest["exactness"]["max_abs_difference"] <= 1e-12
    # binary, scored by F1 with its threshold tuned: the selection weighs the trials by log loss, the
    # cv score stays the study's F1 (of the ensemble's out-of-fold answers)
    selection = manifest["ensemble"]["selection"]
    assert selection["metric"] == "log_loss" and selection["score"] == min(selection["history"])
    assert selection["score"] < selection["best_single"] and 0.5 < manifest["metrics"]["cv"]["score"] <= 1
    # a small classification table: each member is its trial's 3 fold models, a third of its weight each
    assert manifest["ensemble"]["selection"]["members"] == "bagged"
    measured_as = manifest["exactness"]["explanations"]["measured_as"]
    for family, native in (("catboost", "ShapValues"), ("lightgbm", "pred_contrib")):
        assert (native in measured_as) == any(m["family"] == family for m in members)
    trials = {m["trial"] for m in members}
    assert len(trials) >= 2 and len(members) == 3 * len(trials)
    for trial in trials:
        folds = [m for m in members if m["trial"] == trial]
        assert [m["fold"] for m in folds] == [0, 1, 2]
        assert len({round(m["weight"], 12) for m in folds}) == 1
    kept: dict = {}
    off = job.run(small_config(tmp_path, **{"tuning.n_trials": 6, "ensemble": "off"}), publish=False,
                  show_progress=False, keep=kept)
    assert off["family"] == "ensemble"  # the best trial alone, bagged: its fold models
    assert {m["trial"] for m in kept["model"].members} == {kept["model"].best_trial}
    assert [m["fold"] for m in kept["model"].members] == [0, 1, 2]
    refit = job.run(small_config(tmp_path, **{"tuning.n_trials": 6, "ensemble": "off",
                                              "ensemble_members": "refit"}), publish=False, show_progress=False)
    assert refit["family"] in ("catboost", "lightgbm")
    with pytest.raises(C.ConfigError, match="ensemble 'always': use auto or off"):
        small_config(tmp_path, ensemble="always")
    with pytest.raises(C.ConfigError, match="ensemble_members 'folds': use auto, refit or bagged"):
        small_config(tmp_path, ensemble_members="folds")


def test_auto_bags_classification_tables_under_the_row_bound_only(tmp_path):
    config = small_config(tmp_path)
    prepared = job.prepare(config)
    assert job.bagged(config, prepared)  # breast cancer: 455 training rows
    big = dataclasses.replace(
        prepared, X_train=pd.concat([prepared.X_train] * (job.BAG_ROWS // len(prepared.X_train) + 1)))
    assert not job.bagged(config, big)
    regression = job.prepare(small_config(tmp_path, dataset="diabetes"))
    assert not job.bagged(config, regression)
    assert job.bagged(small_config(tmp_path, ensemble_members="bagged"), regression)
    assert not job.bagged(small_config(tmp_path, ensemble_members="refit"), prepared)


def test_the_study_keeps_the_first_repeats_fold_models_of_the_trials_it_keeps(tmp_path, monkeypatch):
    monkeypatch.setattr(tune, "POOL", 3)
    config = small_config(tmp_path, **{"tuning.n_trials": 6, "tuning.cv_repeats": 2})
    prepared = job.prepare(config)
    study = tune.create_study(config, "bagged", prepared.metric)
    models: dict = {}
    oof = tune.optimize(study, config, prepared.X_train, prepared.y_train, prepared.schema, prepared.classes,
                        prepared.task, prepared.metric, show_progress=False, models=models)
    assert set(models) == set(oof) and len(oof) == 3  # evicted together with the trial's scores
    folds = tune.splits(config, prepared.X_train, prepared.y_train, prepared.task)[:3]  # the first repeat's
    for number, kept in models.items():
        assert len(kept) == 3
        for model, (_, valid_idx) in zip(kept, folds, strict=True):
            # each fold model predicted the rows its fold left out: the first repeat's half of the oof
            raw = model.raw(prepared.X_train.iloc[valid_idx], prepared.schema)
            assert np.all(np.isfinite(raw)) and raw.shape[0] == len(valid_idx)


def test_a_bagged_trial_is_its_fold_models_at_an_equal_share_of_its_weight(tmp_path):
    config = small_config(tmp_path)
    prepared = job.prepare(config)
    X, y, schema = prepared.X_train, prepared.y_train, prepared.schema
    fit = lambda rows, family="lightgbm": families.fit(  # noqa: E731
        family, {}, X.iloc[rows], y.iloc[rows], schema, task="binary", seed=0, threads=1, rounds=20)
    folds = [fit(slice(0, 200)), fit(slice(100, 300)), fit(slice(200, 400))]
    refit = fit(slice(None), "catboost")
    bag = ensemble.Bagged(folds)
    mean = sum(m.raw(prepared.X_test, schema) for m in folds) / 3
    alone = bag.as_weighted(7)
    assert alone.trials == [7, 7, 7] and alone.weights == pytest.approx([1 / 3] * 3)
    assert np.allclose(alone.raw(prepared.X_test, schema), mean, rtol=0, atol=1e-15)
    weighted = ensemble.Weighted.of([bag, refit], [0.6, 0.4], [7, 2], "binary")
    assert weighted.trials == [7, 7, 7, 2] and weighted.folds == [0, 1, 2, None]
    assert weighted.weights == pytest.approx([0.2, 0.2, 0.2, 0.4])
    expected = 0.6 * mean + 0.4 * refit.raw(prepared.X_test, schema)
    assert np.allclose(weighted.raw(prepared.X_test, schema), expected, rtol=0, atol=1e-12)
    described = weighted.describe({7: {"num_leaves": 7}, 2: {"depth": 4}})
    assert [m.get("fold") for m in described] == [0, 1, 2, None]
    assert [m["rounds"] for m in described] == [20, 20, 20, 20]
    assert described[0]["params"] == {"num_leaves": 7} and described[3]["params"] == {"depth": 4}
    assert ensemble.members_tag(described) == "lightgbm#7:0.60 (3 folds), catboost#2:0.40"
    # a lone bagged trial is served as one model: the mean of its fold models, exactly
    served = evaluator.from_arrays(bag.export(schema)).predict(D.to_matrix(prepared.X_test, schema))
    assert np.max(np.abs(served - alone.predict(prepared.X_test, schema))) <= 1e-12


def test_a_fit_past_its_deadline_stops_and_says_so():
    data = D.load("breast_cancer")
    schema = D.infer_schema(data.X)
    for family in ("catboost", "lightgbm"):
        started = time.monotonic()
        with pytest.raises(families.OutOfTime, match=f"{family} stopped at its deadline"):
            families.fit(family, {}, data.X, data.y, schema, task="binary", seed=0, threads=1, rounds=100_000,
                         deadline=time.monotonic() + 0.5)
        assert time.monotonic() - started < 3


def test_the_budget_bounds_the_whole_study_fits_included(tmp_path):
    config = small_config(tmp_path, **{"tuning.n_trials": 1000, "tuning.timeout_seconds": 3,
                                       "tuning.max_rounds": 100_000, "tuning.early_stopping_rounds": 100_000})
    prepared = job.prepare(config)
    study = tune.create_study(config, "budget", prepared.metric)
    started = time.monotonic()
    tune.optimize(study, config, prepared.X_train, prepared.y_train, prepared.schema, prepared.classes,
                  prepared.task, prepared.metric, show_progress=False)
    assert time.monotonic() - started < 6  # without the deadline, one fit of 100,000 rounds takes minutes
    assert study.trials[0].state == optuna.trial.TrialState.PRUNED


def test_the_study_leaves_the_refit_and_the_checks_their_time(tmp_path, monkeypatch):
    budget, slow = 6.0, 0.4
    # few rounds: the sleep, not the machine's load, sets each fit's time (the suite builds Docker
    # images beside this test on a fresh machine): trials of about 1.2 s, 2 of them finished
    config = small_config(tmp_path, **{"tuning.n_trials": 1000, "tuning.timeout_seconds": budget,
                                       "tuning.cv_repeats": 1, "tuning.max_rounds": 5})
    prepared = job.prepare(config)
    real_fit = families.fit
    for family in ("catboost", "lightgbm"):  # their first fit loads the library: not a fit's time
        real_fit(family, {}, prepared.X_train, prepared.y_train, prepared.schema, task=prepared.task, seed=0,
                 threads=1, rounds=2)

    def fit(*args, **kwargs):  # every fold's fit takes at least `slow` seconds
        time.sleep(slow)
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(families, "fit", fit)
    study = tune.create_study(config, "reserve", prepared.metric)
    started = time.monotonic()
    tune.optimize(study, config, prepared.X_train, prepared.y_train, prepared.schema, prepared.classes,
                  prepared.task, prepared.metric, show_progress=False)
    elapsed = time.monotonic() - started
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) >= 2 and all(t.user_attrs["fit_seconds"] >= slow for t in done)
    best = sorted(done, key=lambda t: -t.value)[:tune.RESERVED_TRIALS]  # f1_macro: higher is better
    reserve = sum(t.user_attrs["fit_seconds"] for t in best) * 3 / 2 * (1 + tune.CHECKS)
    assert reserve > 5 * slow
    # it stopped at the budget less the reserve (a fit in progress stops at once; the last trial to
    # finish can move the reserve past the time it finished by its own share), and not much sooner
    share = max(t.user_attrs["fit_seconds"] for t in done) * 3 / 2 * (1 + tune.CHECKS)
    assert budget - reserve - 1.0 < elapsed < budget - reserve + share + 1.0


def test_the_reserve_counts_the_best_trials_fits_on_every_row(tmp_path):
    config = small_config(tmp_path, **{"tuning.cv_folds": 5})
    prepared = job.prepare(config)
    objective = tune.Objective(config, prepared.X_train, prepared.y_train, prepared.schema, prepared.classes,
                               prepared.task, "rmse", end=100.0)
    assert objective.reserve == 0 and objective.deadline == 100.0
    for number in range(7):  # trial k scored k (lower is better) and its folds fitted in k + 1 seconds
        objective._keep_best(number, float(number), number + 1.0)
    assert objective.reserve == pytest.approx((1 + 2 + 3 + 4 + 5) * 5 / 4 * (1 + tune.CHECKS))
    assert objective.deadline == pytest.approx(100.0 - objective.reserve)
    higher = tune.Objective(config, prepared.X_train, prepared.y_train, prepared.schema, prepared.classes,
                            prepared.task, "f1_macro", end=100.0)
    worker = tune.Objective(config, prepared.X_train, prepared.y_train, prepared.schema, prepared.classes,
                            prepared.task, "rmse", end=100.0, worker=True)
    for number in range(7):
        higher._keep_best(number, float(number), number + 1.0)
        worker._keep_best(number, float(number), number + 1.0)
    assert higher.reserve == pytest.approx((3 + 4 + 5 + 6 + 7) * 5 / 4 * (1 + tune.CHECKS))  # the highest
    assert worker.reserve == 0 and worker.deadline == 100.0  # the job that refits keeps the reserve
    assert tune.Objective(config, prepared.X_train, prepared.y_train, prepared.schema, prepared.classes,
                          prepared.task, "rmse").deadline is None


@pytest.mark.parametrize(("setting", "budget", "fold_seconds", "trials", "worker", "repeats"), [
    ("auto", 60, 0.5, 1000, False, 3),  # 60 // (6 trials * 3 folds * 0.5 s) = 6: all three
    ("auto", 60, 1.5, 1000, False, 2),  # 60 // 27 = 2
    ("auto", 60, 5.0, 1000, False, 1),  # 0: one, never none
    ("auto", 60, 1.5, 3, False, 3),  # a study of 3 trials: 60 // (3 * 3 * 1.5) = 4
    ("auto", 60, 5.0, 1000, True, 3),  # a shared study's worker scores as the others do
    (3, 60, 5.0, 1000, False, 3),  # a number is kept
    ("auto", None, 5.0, 1000, False, 3),  # without a budget there is nothing to fit
])
def test_a_slow_first_fit_repeats_the_folds_fewer_times(tmp_path, setting, budget, fold_seconds, trials, worker,
                                                        repeats, monkeypatch):
    config = small_config(tmp_path, **{"tuning.cv_repeats": setting, "tuning.n_trials": trials})
    prepared = job.prepare(config)  # 455 training rows: 3 repeats of 3 folds
    objective = tune.Objective(config, prepared.X_train, prepared.y_train, prepared.schema, prepared.classes,
                               prepared.task, prepared.metric, worker=worker)
    objective.end = None if budget is None else objective.started + budget
    first = objective.folds
    assert len(first) == 9
    if not objective.sized:  # what the first fit of the first trial calls
        objective.fit_repeats(fold_seconds)
    assert objective.folds == first[:3 * repeats]
    assert objective.sized is worker


def test_the_first_trial_stops_at_the_folds_kept(tmp_path, monkeypatch):
    config = small_config(tmp_path, **{"tuning.n_trials": 10**9, "tuning.timeout_seconds": 1000})
    prepared = job.prepare(config)
    monkeypatch.setattr(tune, "MIN_TRIALS", 10**9)  # no trial is fast enough: one repeat
    study = tune.create_study(config, "repeats", prepared.metric)
    oof = tune.optimize(study, config, prepared.X_train, prepared.y_train, prepared.schema, prepared.classes,
                        prepared.task, prepared.metric, show_progress=False,
                        on_trial=lambda study, trial: trial.number == 1 and study.stop())
    assert [len(t.user_attrs["fold_scores"]) for t in study.trials] == [3, 3]
    assert all(np.isfinite(raw).all() for raw in oof.values())  # every row held out once


@pytest.mark.parametrize(("rows", "setting", "repeats"), [(400, "auto", 3), (4000, "auto", 2),
                                                          (9000, "auto", 1), (400, 1, 1), (9000, 4, 4)])
def test_small_tables_repeat_their_folds(tmp_path, rows, setting, repeats):
    config = small_config(tmp_path, **{"tuning.cv_repeats": setting})
    assert tune.repeats_for(config, rows) == repeats
    X = pd.DataFrame({"x": np.arange(rows)})
    y = pd.Series(["a", "b"] * (rows // 2))
    folds = tune.splits(config, X, y, "binary")
    assert len(folds) == 3 * repeats
    for r in range(repeats):  # each repeat holds out every row once
        held = np.sort(np.concatenate([valid for _, valid in folds[3 * r:3 * r + 3]]))
        assert np.array_equal(held, np.arange(rows))


def test_the_threshold_is_tuned_for_f1_out_of_fold_and_applies_to_labels_only():
    rng = np.random.default_rng(0)
    y = pd.Series(np.where(rng.random(2000) < 0.1, "rare", "common"))
    # scores that rank the rare class high but never make it the likelier one
    p1 = np.clip(np.where(y == "rare", 0.35, 0.1) + rng.normal(0, 0.08, len(y)), 0.01, 0.99)
    proba = np.column_stack([1 - p1, p1])
    threshold = E.best_threshold(y, proba, ["common", "rare"])
    assert 0.15 < threshold < 0.35
    tuned = E.score("f1_macro", y, proba, ["common", "rare"], threshold)
    assert tuned > E.score("f1_macro", y, proba, ["common", "rare"]) + 0.2
    assert E.score("roc_auc", y, proba, ["common", "rare"], threshold) == E.score("roc_auc", y, proba,
                                                                                  ["common", "rare"])


def test_the_job_keeps_the_threshold_in_the_bundle_and_scores_with_it(tmp_path, s3):
    fixed = job.run(small_config(tmp_path, **{"decision_threshold": 0.9, "bucket": "models", "model_name": "bc"}),
                    publish=True, show_progress=False)
    from serving.store import bundles

    manifest = bundles.read_manifest(s3, "models", "bc", fixed["version"])
    assert manifest["decision_threshold"] == 0.9
    prepared = job.prepare(small_config(tmp_path))
    champion = bundles.load(s3, "models", "bc", fixed["version"])
    output = champion_output(champion, prepared)
    assert manifest["metrics"]["test"]["f1_macro"] == pytest.approx(
        E.score("f1_macro", prepared.y_test, output, prepared.classes, 0.9), abs=1e-12)
    regression = job.run(small_config(tmp_path, dataset="diabetes", decision_threshold=0.9), publish=False,
                         show_progress=False)
    assert regression["task"] == "regression"  # a threshold is a binary model's: ignored elsewhere


def champion_output(champion, prepared):
    from serving.model.predictor import served_predictions

    return served_predictions(champion.arrays, D.to_matrix(prepared.X_test, champion.feature_schema))


def test_a_column_that_encodes_the_target_is_named_and_honest_ones_are_not():
    rng = np.random.default_rng(1)
    n = 3000
    grade = rng.choice(list("ABCDEFG"), n)
    X = pd.DataFrame({"sub_grade": [f"{g}{rng.integers(1, 6)}" for g in grade],  # encodes the grade
                      "income": rng.lognormal(10, 1, n),
                      "term": rng.choice(["36", "60"], n)})
    found = leakage.suspects(X, pd.Series(grade), "multiclass")
    assert [s["column"] for s in found] == ["sub_grade"]
    assert found[0]["score"] == 1.0 and "drop_columns=[sub_grade]" in found[0]["message"]
    value = X["income"] * 2 + 1
    found = leakage.suspects(X.assign(after=value.round(-2)), value, "regression")
    assert [s["column"] for s in found] == ["income", "after"]
    assert leakage.suspects(X, pd.Series(rng.choice(["a", "b"], n)), "binary") == []


def test_a_budget_too_short_for_one_trial_scores_it_on_its_finished_folds(tmp_path, monkeypatch):
    config = small_config(tmp_path, **{"tuning.n_trials": 5, "tuning.timeout_seconds": 1000})
    prepared = job.prepare(config)
    fits = []
    real_fit = families.fit

    def fit(*args, **kwargs):  # the third fit of the study is the one the budget ends in
        fits.append(1)
        if len(fits) == 3:
            raise families.OutOfTime("stopped")
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(families, "fit", fit)
    study = tune.create_study(config, "short", prepared.metric)
    oof = tune.optimize(study, config, prepared.X_train, prepared.y_train, prepared.schema, prepared.classes,
                        prepared.task, prepared.metric, show_progress=False)
    first = study.trials[0]
    assert first.state == optuna.trial.TrialState.COMPLETE and len(first.user_attrs["fold_scores"]) == 2
    assert first.user_attrs["partial"].startswith("2 of ")
    assert first.number not in oof  # no out-of-fold scores for rows it never held out
    monkeypatch.setattr(families, "fit", real_fit)
    model = job.refit(config, prepared, study, oof)
    assert first.number not in [m["trial"] for m in model.members or []]  # no out-of-fold scores to weigh


def test_a_budget_that_ends_between_the_only_trials_folds_scores_it_on_them(tmp_path, monkeypatch):
    config = small_config(tmp_path, **{"tuning.n_trials": 5, "tuning.timeout_seconds": 1000})
    prepared = job.prepare(config)
    real_fit = families.fit
    fits = []

    def fit(*args, **kwargs):  # the budget ends right after the second fit, before the third starts
        fits.append(1)
        fitted = real_fit(*args, **kwargs)
        if len(fits) == 2:
            monkeypatch.setattr(tune.Objective, "deadline", property(lambda self: 0.0))
        return fitted

    monkeypatch.setattr(families, "fit", fit)
    study = tune.create_study(config, "between", prepared.metric)
    tune.optimize(study, config, prepared.X_train, prepared.y_train, prepared.schema, prepared.classes,
                  prepared.task, prepared.metric, show_progress=False)
    first = study.trials[0]
    assert first.state == optuna.trial.TrialState.COMPLETE and first.user_attrs["partial"].startswith("2 of ")
    # and the study stopped: nothing of the budget is left (the enqueued second trial never ran)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.WAITING]


def test_the_explanations_are_checked_on_the_first_held_out_rows_and_the_manifest_says_so(tmp_path,
                                                                                          monkeypatch):
    config = small_config(tmp_path, ensemble="off")
    prepared = job.prepare(config)
    study = tune.create_study(config, "explained", prepared.metric)
    oof = tune.optimize(study, config, prepared.X_train, prepared.y_train, prepared.schema, prepared.classes,
                        prepared.task, prepared.metric, show_progress=False)
    model = job.refit(config, prepared, study, oof)
    evaluation = job.evaluate(prepared, model)
    monkeypatch.setattr(job, "EXPLAINED_ROWS", 5)
    explained, real = [], model.fitted.shap
    monkeypatch.setattr(model.fitted, "shap", lambda X, schema: explained.append(X.index.tolist()) or real(X, schema))
    _, exactness = job.export_and_check(prepared, model, evaluation)
    assert explained == [prepared.X_test.index[:5].tolist()] and exactness.explained_rows == 5
    manifest = job.build_manifest(config, prepared, model, evaluation, exactness, {})
    assert manifest["exactness"]["rows"] == len(prepared.X_test) == 114
    assert manifest["exactness"]["explanations"]["rows"] == 5


def test_a_budget_that_ends_before_any_fold_says_what_to_change(tmp_path, monkeypatch):
    config = small_config(tmp_path, **{"tuning.n_trials": 2, "tuning.timeout_seconds": 1000})
    prepared = job.prepare(config)

    def fit(*args, **kwargs):
        raise families.OutOfTime("stopped")

    monkeypatch.setattr(families, "fit", fit)
    study = tune.create_study(config, "none", prepared.metric)
    tune.optimize(study, config, prepared.X_train, prepared.y_train, prepared.schema, prepared.classes,
                  prepared.task, prepared.metric, show_progress=False)
    with pytest.raises(D.DataError, match=r"budget \(1000 s\) ended before a trial finished one fold"):
        job.refit(config, prepared, study, {})


def _study_for_the_guard(tmp_path, models: dict | None = None, **extra):
    config = small_config(tmp_path, **{"tuning.n_trials": 10, **extra})
    prepared = job.prepare(config)
    study = tune.create_study(config, "guard", prepared.metric)
    oof = tune.optimize(study, config, prepared.X_train, prepared.y_train, prepared.schema, prepared.classes,
                        prepared.task, prepared.metric, show_progress=False, models=models)
    return config, prepared, study, oof


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_a_bagged_best_trial_too_slow_to_serve_gives_way_to_its_refit(tmp_path, monkeypatch):
    models: dict = {}
    config, prepared, study, oof = _study_for_the_guard(tmp_path, models, ensemble="off")
    best = study.best_trial
    one_fold = job.best_alone(best, ensemble.Bagged(models[best.number])).export(prepared.schema)
    calls = []
    monkeypatch.setattr(job.serving_cost, "slowdown", lambda model, reference, p: calls.append(
        (model, reference)) or measured)
    measured = 2.0  # at the limit is within it: the fold models are kept
    kept = job.refit(config, prepared, study, oof, models)
    assert kept.selection == {"members": "bagged", "best_trial": best.number, "serving_slowdown": 2.0,
                              "max_slowdown": 2.0}
    assert [m["fold"] for m in kept.members] == [0, 1, 2]
    # timed against one of the best trial's fold models: what the best trial costs to serve alone
    assert len(calls) == 1 and _same(calls[0][1], one_fold)
    assert _same(calls[0][0], kept.fitted.export(prepared.schema))
    calls.clear()
    measured = 2.01
    refit = job.refit(config, prepared, study, oof, models)
    assert refit.family == best.params["family"] and refit.members is None and refit.selection is None
    assert refit.best_trial == best.number and len(calls) == 1
    config["ensemble_max_slowdown"] = "off"
    assert job.refit(config, prepared, study, oof, models).members == kept.members


def test_bagging_that_no_narrowing_makes_fast_enough_gives_way_to_refit_members(tmp_path, monkeypatch):
    models: dict = {}
    config, prepared, study, oof = _study_for_the_guard(tmp_path, models)
    assert job.select_ensemble(config, prepared, study, oof) is not None
    best = study.best_trial
    one_fold = job.best_alone(best, ensemble.Bagged(models[best.number])).export(prepared.schema)
    calls, refits = [], []

    def slowdown(model, reference, prepared_):
        calls.append(reference)
        return 9.0 if _same(reference, one_fold) else 1.0  # every bagged model is too slow

    monkeypatch.setattr(job.serving_cost, "slowdown", slowdown)
    real = job.fit_trial
    monkeypatch.setattr(job, "fit_trial", lambda c, p, trial, models=None: (
        models is None and refits.append(trial.number)) or real(c, p, trial, models))
    model = job.refit(config, prepared, study, oof, models)
    bagged_calls = [r for r in calls if _same(r, one_fold)]
    assert len(bagged_calls) >= 2  # the ensemble, narrowed, then the best trial's folds alone
    assert len(calls) > len(bagged_calls)  # then the refit members, timed against the best trial refit
    assert model.selection is not None and model.selection["members"] == "refit"
    assert all(m.get("fold") is None for m in model.members) and model.selection["serving_slowdown"] == 1.0
    assert len(refits) == len(set(refits)) and best.number in refits


def test_a_best_trial_without_fold_models_still_lets_the_refit_members_be_tried(tmp_path, monkeypatch):
    models: dict = {}
    config, prepared, study, oof = _study_for_the_guard(tmp_path, models)
    assert job.select_ensemble(config, prepared, study, oof) is not None
    del models[study.best_trial.number]  # as from another process, or a trial stopped part-way
    bagging = []
    real = job.fit_bagged

    def fit_bagged(*args, **kwargs):
        bagging.append(True)
        try:
            return real(*args, **kwargs)
        finally:
            bagging.pop()

    monkeypatch.setattr(job, "fit_bagged", fit_bagged)
    monkeypatch.setattr(job.serving_cost, "slowdown", lambda *a: 9.0 if bagging else 1.0)
    model = job.refit(config, prepared, study, oof, models)
    assert model.selection["members"] == "refit" and model.selection["serving_slowdown"] == 1.0
    assert len(model.members) >= 2 and all(m.get("fold") is None for m in model.members)


def test_the_best_trials_reference_is_its_fold_model_of_the_median_rounds():
    models = [families.Fitted("lightgbm", None, rounds, "binary") for rounds in (10, 40, 24)]
    best = type("Trial", (), {"user_attrs": {"rounds": 25}})()
    assert job.best_alone(best, ensemble.Bagged(models)) is models[2]
    assert job.best_alone(best, models[0]) is models[0]  # a refit is its own reference


def test_an_ensemble_too_slow_to_serve_is_chosen_again_among_fewer_trials(tmp_path, monkeypatch):
    config, prepared, study, oof = _study_for_the_guard(tmp_path)
    assert job.select_ensemble(config, prepared, study, oof) is not None  # the study has an ensemble
    measured = iter([9.0, 3.0, 1.5])  # too slow, too slow, fast enough
    calls = []

    def slowdown(model, reference, prepared_):
        calls.append((model, reference))
        return next(measured)

    monkeypatch.setattr(job.serving_cost, "slowdown", slowdown)
    model = job.refit(config, prepared, study, oof)
    best = study.best_trial
    trials = {t.number: t for t in study.trials}
    guard = model.selection
    if model.family == "ensemble":  # the narrowest pool still had an ensemble that beats the best trial
        assert guard["serving_slowdown"] == 1.5 and guard["max_slowdown"] == 2.0
        assert guard["narrowed_to"] in ("the best trial's family", "the best trial's family and depth")
        for member in model.members:
            assert trials[member["trial"]].params["family"] == best.params["family"]
    else:
        assert model.best_trial == best.number and model.members is None
    assert len(calls) >= 2  # measured again after narrowing
    assert all(set(reference) == set(calls[0][1]) for _, reference in calls)  # always against the best trial


def test_an_ensemble_that_stays_too_slow_gives_way_to_the_best_trial(tmp_path, monkeypatch):
    config, prepared, study, oof = _study_for_the_guard(tmp_path)
    monkeypatch.setattr(job.serving_cost, "slowdown", lambda *a: 2.01)
    model = job.refit(config, prepared, study, oof)
    assert model.family in ("catboost", "lightgbm") and model.members is None
    assert model.best_trial == study.best_trial.number


def test_an_ensemble_within_the_limit_is_kept_and_off_measures_nothing(tmp_path, monkeypatch):
    config, prepared, study, oof = _study_for_the_guard(tmp_path)
    monkeypatch.setattr(job.serving_cost, "slowdown", lambda *a: 2.0)  # at the limit is within it
    kept = job.refit(config, prepared, study, oof)
    assert kept.family == "ensemble" and kept.selection["narrowed_to"] is None
    assert kept.selection["serving_slowdown"] == 2.0

    def never(*args):
        raise AssertionError("off measures nothing")

    monkeypatch.setattr(job.serving_cost, "slowdown", never)
    config["ensemble_max_slowdown"] = "off"
    off = job.refit(config, prepared, study, oof)
    assert off.family == "ensemble" and off.selection["serving_slowdown"] is None
    assert [m["trial"] for m in off.members] == [m["trial"] for m in kept.members]


@pytest.mark.parametrize("setting", ["fast", 0.99, True, "[2]"])
def test_the_serving_guard_takes_off_or_a_number_from_one(tmp_path, setting):
    with pytest.raises(C.ConfigError, match="ensemble_max_slowdown .*: use off or a number from 1"):
        small_config(tmp_path, ensemble_max_slowdown=setting)
    assert small_config(tmp_path, ensemble_max_slowdown="off")["ensemble_max_slowdown"] == "off"
    assert small_config(tmp_path, ensemble_max_slowdown="false")["ensemble_max_slowdown"] == "off"
    assert small_config(tmp_path, ensemble_max_slowdown=3)["ensemble_max_slowdown"] == 3


def test_the_fallback_to_the_best_trial_does_not_fit_it_twice(tmp_path, monkeypatch):
    config, prepared, study, oof = _study_for_the_guard(tmp_path)
    monkeypatch.setattr(job.serving_cost, "slowdown", lambda *a: 9.0)
    fitted = []
    real = job.fit_trial
    monkeypatch.setattr(job, "fit_trial", lambda c, p, trial, models=None: fitted.append(trial.number) or real(c, p, trial, models))
    model = job.refit(config, prepared, study, oof)
    assert model.members is None and model.best_trial == study.best_trial.number
    assert len(fitted) == len(set(fitted))  # each trial fitted once, the best one included
