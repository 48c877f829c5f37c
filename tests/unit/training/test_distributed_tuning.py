"""Two workers tune one study through shared storage; no trial is lost or duplicated."""

import json
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from training import tune

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("kind", ["journal", "sqlite"])
def test_two_workers_share_one_study(tmp_path, kind):
    storage = (f"journal://{tmp_path}/study.journal" if kind == "journal"
               else f"sqlite:///{tmp_path}/study.db")
    args = [sys.executable, "-m", "training", "tune", "--set", "tuning.n_trials=3",
            "--set", "tuning.cv_folds=3", "--set", "tuning.max_rounds=40",
            "--set", "tuning.threads=1", "--set", f"tuning.storage={storage}",
            "--set", "tuning.study_name=shared"]
    import os

    # as AWS Batch array jobs: worker 0 adds the libraries' defaults, once
    workers = [subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "TUNING_WORKER_INDEX": str(i)}) for i in range(2)]
    outputs = [w.communicate(timeout=600) for w in workers]
    for worker, (out, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err[-2000:]
        assert json.loads(out)["study"] == "shared"
    study = optuna.load_study(study_name="shared", storage=tune.storage_for(storage))
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == 6
    assert sorted(t.number for t in trials) == list(range(6))
    finished = {optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED}
    assert all(t.state in finished for t in trials)
    # the trials' parameters were not all sampled by one worker: both added to the study
    assert len({json.dumps(t.params, sort_keys=True) for t in trials}) == 6
    assert sorted(t.user_attrs["worker"] for t in trials) == [0, 0, 0, 1, 1, 1]  # each says who ran it
    defaults = [t for t in trials if t.params.get("cb_depth") == 6 and t.params.get("cb_learning_rate") == 0.08]
    assert len(defaults) == 1


def test_a_final_job_refits_the_best_trial_of_the_shared_study(tmp_path):
    storage = f"journal://{tmp_path}/study.journal"
    common = ["--set", "tuning.cv_folds=3", "--set", "tuning.max_rounds=40",
              "--set", f"tuning.storage={storage}", "--set", "tuning.study_name=shared"]
    subprocess.run([sys.executable, "-m", "training", "tune", "--set", "tuning.n_trials=3", *common],
                   cwd=ROOT, check=True, capture_output=True)
    result = subprocess.run(
        [sys.executable, "-m", "training", "train", "--no-publish", "--set", "tuning.n_trials=0",
         "--set", f"mlflow.tracking_uri=sqlite:///{tmp_path}/mlflow.db", *common],
        cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout)
    study = optuna.load_study(study_name="shared", storage=tune.storage_for(storage))
    assert summary["trials"] == 3
    assert summary["cv_score"] == study.best_value
