"""The training job as AWS Batch runs it (infra/train_batch.py): the image built from
training/Dockerfile, two tune worker containers of an array job sharing one Optuna study on a real
PostgreSQL, then the train container refitting the study's best and publishing it to the test
cloud's bucket, where the API serves it. The containers' commands and environments come from
infra/training-batch.yaml.

Needs Docker (the ``docker`` fixture of tests/conftest.py)."""

import optuna
import pytest
import requests

from infra import postgres, train_batch

pytestmark = pytest.mark.integration


def test_the_job_definitions_are_read_from_the_template_with_their_parameters():
    definitions = train_batch.job_definitions({"ImageUri": "img", "ModelBucketName": "bucket",
                                               "OptunaStorageUrl": "postgresql://db"})
    assert definitions["tune"]["image"] == definitions["train"]["image"] == "img"
    assert train_batch.command_of(definitions["tune"]) == ["tune", "--set", "tuning.storage=postgresql://db"]
    assert train_batch.command_of(definitions["train"]) == [
        "train", "--set", "tuning.storage=postgresql://db", "--set", "mlflow.artifact_location=s3://bucket/mlflow"]
    assert definitions["train"]["environment"]["MODEL_BUCKET"] == "bucket"
    assert definitions["train"]["environment"]["MLFLOW_TRACKING_URI"].startswith("sqlite:")  # MLflow 3: no file store


def test_two_tune_workers_on_postgresql_then_train_publish_a_served_model(stack, docker):
    result = train_batch.run(stack, workers=2, trials=2, model="batch-shaped",
                             settings=["tuning.cv_folds=2", "tuning.max_rounds=60", "tuning.threads=1"])
    study = optuna.load_study(study_name=result["study"], storage=postgres.url())
    trials = study.get_trials(deepcopy=False)
    # each worker ran its two trials, in the one study on PostgreSQL; worker 0 first enqueued the defaults
    assert sorted(t.user_attrs["worker"] for t in trials) == [0, 0, 1, 1]
    assert all(w["study"] == result["study"] and 2 <= w["trials"] <= 4 for w in result["workers"])
    summary = result["train"]
    assert summary["study"] == result["study"] and summary["trials"] == 4
    assert summary["cv_score"] == study.best_value and summary["promoted"]
    assert result["served"] == {"name": "batch-shaped", "version": summary["version"]}
    listing = requests.get(f"{stack['api_url']}/models", timeout=30).json()
    assert "batch-shaped" in {m["name"] for m in listing["models"]}
    example = requests.get(f"{stack['api_url']}/models/batch-shaped", timeout=30).json()["examples"][0]
    answer = requests.post(f"{stack['api_url']}/models/batch-shaped/predict", timeout=30,
                           headers={"x-api-key": stack["api_key"]}, json={"instances": [example["instance"]]})
    assert answer.status_code == 200 and answer.json()["model"] == {"name": "batch-shaped",
                                                                   "version": summary["version"]}
