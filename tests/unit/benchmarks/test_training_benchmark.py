"""`make bench-train`'s verdicts: the per-set comparisons, the serving targets and the summary."""

import pytest

from benchmarks import training_benchmark as T

SERVING = {"bundle_bytes": 1000, "warm_p50_ms": 0.1, "cold_ms": 2.0}


def run(seed, ours, flaml, autogluon, defaults=0.80, members=1, warm=0.1, cold=2.0):
    scores = lambda value: {"f1_macro": value, "seconds": 60.0}  # noqa: E731
    return {"seed": seed, "about": "", "task": "binary", "metric": "f1_macro", "rows_train": 100,
            "rows_test": 30, "features": 3, "dropped_columns": [],
            "ours": {**scores(ours), "trials": 10, "family": "ensemble", "members": members},
            **{d: scores(defaults) for d in T.DEFAULTS},
            "flaml": {**scores(flaml), "trials": 5, "best_estimator": "lgbm"},
            "autogluon": {**scores(autogluon), "best_model": "WeightedEnsemble_L2"},
            "serving": {"ours": {**SERVING, "warm_p50_ms": warm, "cold_ms": cold}, "best_trial": SERVING,
                        "members": members}}


def test_a_loss_within_one_standard_error_is_a_tie_and_a_clear_loss_is_not():
    close = T.aggregate([run(1, 0.90, 0.91, 0.95), run(2, 0.92, 0.90, 0.96), run(3, 0.91, 0.93, 0.97)])
    found = {t["versus"]: t for t in T.targets({"close": close}) if "versus" in t}
    assert found["flaml"]["holds"] and found["flaml"]["tie_within_one_standard_error"]
    assert not found["autogluon"]["holds"]  # behind on every seed
    assert found["best_default"]["holds"] and "tie_within_one_standard_error" not in found["best_default"]


def test_normalised_scores_run_from_the_sets_worst_contender_to_its_best():
    entry = T.aggregate([run(1, 0.90, 0.85, 0.95), run(2, 0.90, 0.85, 0.95)])
    contenders = entry["contenders"]
    assert contenders["autogluon"]["normalised"] == 1.0
    assert contenders["random_forest"]["normalised"] == 0.0
    assert contenders["ours"]["normalised"] == pytest.approx((0.90 - 0.80) / (0.95 - 0.80), abs=1e-4)


def test_an_ensembles_serving_cost_is_a_target_and_a_single_models_is_not():
    slow = T.aggregate([run(1, 0.9, 0.9, 0.9, members=3, warm=0.25, cold=60.0), run(2, 0.9, 0.9, 0.9)])
    found = [t for t in T.targets({"slow": slow}) if t.get("kind") == "serving"]
    assert [t["holds"] for t in found] == [True, False]  # means: warm 0.175 ms <= 2 x 0.1; cold +29 ms
    single = T.aggregate([run(1, 0.9, 0.9, 0.9), run(2, 0.9, 0.9, 0.9)])
    assert not [t for t in T.targets({"single": single}) if t.get("kind") == "serving"]


def test_the_summary_counts_the_sets_where_ours_holds():
    datasets = {"a": T.aggregate([run(1, 0.95, 0.90, 0.99), run(2, 0.96, 0.90, 0.99)]),
                "b": T.aggregate([run(1, 0.70, 0.90, 0.99), run(2, 0.71, 0.90, 0.99)])}
    found = T.targets(datasets)
    summary = T.summarise(datasets, found, autogluon=True)
    assert (summary["sets"], summary["ge_flaml"], summary["ge_autogluon"], summary["ge_best_default"]) == (
        2, 1, 0, 1)
    assert set(summary["mean_normalised"]) == {"ours", "flaml", "autogluon"}
    assert found[-1]["target"].startswith("mean normalised score") and found[-1]["holds"] is False
    assert T.summarise(datasets, [], autogluon=False)["ge_autogluon"] is None


def _where(name, tmp, seed):  # a run that says which process and cores ran it
    import os

    return {"name": name, "seed": seed, "pid": os.getpid(), "cores": sorted(os.sched_getaffinity(0))}


def test_runs_go_side_by_side_each_worker_on_its_own_cores_and_come_back_in_seed_order(tmp_path, monkeypatch):
    monkeypatch.setattr(T, "PARALLEL", 2)
    monkeypatch.setattr(T, "THREADS", 1)
    monkeypatch.setattr(T, "CORES", [0, 1])
    found = T.run_all(["a", "b"], [7, 8, 9], tmp_path, run=_where)
    assert list(found) == ["a", "b"]
    assert [[r["seed"] for r in runs] for runs in found.values()] == [[7, 8, 9], [7, 8, 9]]
    assert all(r["name"] == name for name, runs in found.items() for r in runs)
    by_worker = {}
    for runs in found.values():
        for r in runs:
            by_worker.setdefault(r["pid"], set()).add(tuple(r["cores"]))
    assert all(len(cores) == 1 for cores in by_worker.values())  # pinned for life
    assert sorted(c for cores in by_worker.values() for c in cores) == [(0,), (1,)][:len(by_worker)]


def test_digits_carries_an_accuracy_floor():
    runs = [run(seed, 0.9, 0.9, 0.9) for seed in (1, 2)]
    for r, accuracy in zip(runs, (0.985, 0.97), strict=True):
        r["ours"]["accuracy"] = accuracy
    found = T.targets({"digits": T.aggregate(runs)})
    floor = next(t for t in found if t["target"] == "digits: ours' held-out accuracy")
    assert floor["ours"] == 0.9775 and floor["bar"] == ">= 0.98" and not floor["holds"]
    assert not any("accuracy" in t["target"] for t in T.targets({"titanic": T.aggregate(runs)}))


def test_ours_must_finish_in_about_the_budget():
    runs = [run(seed, 0.9, 0.9, 0.9) for seed in (1, 2)]
    found = [t for t in T.targets({"quick": T.aggregate(runs)}) if t.get("kind") == "budget"]
    assert [(t["ours"], t["holds"]) for t in found] == [(round(60.0 / T.BUDGET, 3), 60.0 / T.BUDGET <= T.OVERRUN)]
    for r, seconds in zip(runs, (70.0, 80.0), strict=True):
        r["ours"]["seconds"] = seconds
    slow = next(t for t in T.targets({"slow": T.aggregate(runs)}) if t.get("kind") == "budget")
    assert slow["ours"] == round(75.0 / T.BUDGET, 3) and slow["holds"] is (75.0 / T.BUDGET <= 1.15)


def test_a_run_of_some_sets_is_kept_apart_from_the_whole_runs_the_docs_render():
    from benchmarks import results as R

    assert T.result_kind(list(reversed(T.DATASETS))) == "training"
    assert T.result_kind(["breast_cancer", "cars"]) == "training-sets"
    assert T.result_kind(["hmda"]) == "training-sets"  # a set outside the nine
    assert R.SUFFIX["training-sets"] != R.SUFFIX["training"]
