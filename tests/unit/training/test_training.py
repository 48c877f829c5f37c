"""The training job: configuration, data checks, reproducibility, the promotion gate."""

import pandas as pd
import pytest
from serving.store import bundles

from tests.unit.conftest import BUCKET, trained
from training import config as C
from training import data as D
from training import job, promotion


def test_config_overrides_and_unknown_keys():
    config = C.load(None, ["tuning.n_trials=3", "dataset=digits", "tuning.families=[lightgbm]"])
    assert (config["tuning"]["n_trials"], config["dataset"]) == (3, "digits")
    assert config["tuning"]["families"] == ["lightgbm"]
    with pytest.raises(C.ConfigError, match="tuning.n_trails: unknown setting"):
        C.load(None, ["tuning.n_trails=3"])
    with pytest.raises(C.ConfigError, match="metric"):
        C.load(None, ["tuning.metric=accuracy"])


def write(tmp_path, frame, name="data.csv"):
    path = tmp_path / name
    if name.endswith(".parquet"):
        frame.to_parquet(path)
    else:
        frame.to_csv(path, index=False)
    return str(path)


GOOD = pd.DataFrame({"a": range(40), "b": [i % 7 for i in range(40)], "y": ["p", "q"] * 20})


@pytest.mark.parametrize(
    ("frame", "target", "words"),
    [
        (GOOD, "label", "no target column 'label'"),
        (GOOD.assign(c=1), "y", "column 'c' is constant.*constant_columns=keep"),
        (GOOD.assign(c=None), "y", "column 'c' is empty"),
        (GOOD.assign(y=["p"] * 38 + ["q"] * 2), "y", "fewer than 7 rows"),
        (GOOD.assign(y="p"), "y", "single class"),
    ],
)
def test_bad_data_is_refused_before_training(tmp_path, frame, target, words):
    with pytest.raises(D.DataError, match=words):
        data = D.load(write(tmp_path, frame), target)
        D.validate(data, folds=5)


def test_a_file_that_does_not_parse_is_refused(tmp_path):
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"not parquet")
    with pytest.raises(D.DataError, match="could not be read"):
        D.load(str(path), "y")


def test_parquet_and_csv_give_the_same_data(tmp_path):
    a = D.load(write(tmp_path, GOOD), "y")
    b = D.load(write(tmp_path, GOOD, "data.parquet"), "y")
    assert a.sha256() == b.sha256()


def test_the_schema_records_types_ranges_categories_and_missing_values():
    schema = {f["name"]: f for f in D.infer_schema(D.load("penguins").X)}
    assert schema["island"] == {"name": "island", "type": "categorical", "nullable": False,
                                "categories": ["Biscoe", "Dream", "Torgersen"]}
    assert schema["sex"]["nullable"] is True
    assert schema["bill_length_mm"]["type"] == "numeric"
    assert schema["bill_length_mm"]["min"] == 32.1


def small_config(tmp_path, **extra):
    overrides = ["tuning.n_trials=3", "tuning.cv_folds=3", "tuning.max_rounds=60",
                 f"mlflow.tracking_uri=sqlite:///{tmp_path}/mlflow.db"]
    return C.load(None, overrides + [f"{k}={v}" for k, v in extra.items()])


def test_the_same_config_and_data_give_the_same_model(tmp_path):
    # the ensemble's serving guard times the ensemble on this machine: off, nothing measured decides
    first = job.run(small_config(tmp_path, ensemble_max_slowdown="off"), publish=False, show_progress=False)
    second = job.run(small_config(tmp_path, ensemble_max_slowdown="off"), publish=False, show_progress=False)
    for key in ("family", "cv_score", "test_metrics"):
        assert first[key] == second[key]


def test_a_worse_challenger_is_not_promoted_and_a_better_one_is(s3):
    good, bad = trained(rounds=60), trained(rounds=1)
    manifest = bundles.publish(s3, BUCKET, "bc", good.arrays, good.manifest_fields())
    bundles.set_champion(s3, BUCKET, "bc", manifest["version"], "first")
    from training import evaluate

    def decide(challenger, margin=0.0):
        score = evaluate.score("log_loss", challenger.y_test, challenger.native, challenger.classes)
        return promotion.decide(s3, BUCKET, "bc", "log_loss", margin, score,
                                challenger.X_test, challenger.y_test, "binary")

    worse = decide(bad)
    assert worse.promote is False
    assert worse.champion_version == 1
    assert "does not beat" in worse.reason
    # the same model is not better than itself, and a margin makes the bar higher
    assert decide(good).promote is False
    assert bundles.read_champion(s3, BUCKET, "bc")["version"] == 1


def test_a_better_challenger_is_promoted_and_rollback_restores_the_old_champion(s3):
    weak, strong = trained(rounds=1), trained(rounds=60)
    first = bundles.publish(s3, BUCKET, "bc", weak.arrays, weak.manifest_fields())
    bundles.set_champion(s3, BUCKET, "bc", first["version"], "first")
    second = bundles.publish(s3, BUCKET, "bc", strong.arrays, strong.manifest_fields())
    from training import evaluate

    score = evaluate.score("log_loss", strong.y_test, strong.native, strong.classes)
    decision = promotion.decide(s3, BUCKET, "bc", "log_loss", 0.01, score, strong.X_test, strong.y_test, "binary")
    assert decision.promote is True
    assert decision.champion_score > decision.challenger_score + 0.01
    promotion.promote(s3, BUCKET, "bc", second["version"], decision.reason)
    assert bundles.read_champion(s3, BUCKET, "bc")["version"] == 2
    promotion.rollback(s3, BUCKET, "bc")
    assert bundles.read_champion(s3, BUCKET, "bc")["version"] == 1


def test_a_champion_with_other_features_is_not_replaced_automatically(s3):
    champion = trained("breast_cancer")
    manifest = bundles.publish(s3, BUCKET, "bc", champion.arrays, champion.manifest_fields())
    bundles.set_champion(s3, BUCKET, "bc", manifest["version"], "first")
    other = trained("digits")
    decision = promotion.decide(s3, BUCKET, "bc", "f1_macro", 0.0, 0.99, other.X_test, other.y_test, "multiclass")
    assert decision.promote is False
    assert "promote by hand" in decision.reason


def test_constant_columns_can_be_kept_on_request(tmp_path):
    data = D.load(write(tmp_path, GOOD.assign(c=1)), "y")
    D.validate(data, folds=5, constant_columns="keep")  # no error
    with pytest.raises(D.DataError):
        D.validate(data, folds=5)


def test_published_bundles_are_registered_and_the_alias_follows_the_champion(s3, tmp_path):
    from mlflow.tracking import MlflowClient

    from training import tracking

    config = small_config(tmp_path, bucket=BUCKET, model_name="bc")
    first = job.run(config, publish=True, show_progress=False)
    assert first["promoted"] is True and first["version"] == 1
    second = job.run(config, publish=True, show_progress=False)
    assert second["version"] == 2
    assert second["promoted"] is False  # the same model does not beat itself
    assert "does not beat" in second["promotion_reason"]
    client = MlflowClient()
    versions = {v.tags["bundle_version"]: v for v in client.search_model_versions("name='bc'")}
    assert set(versions) == {"1", "2"}
    assert versions["2"].tags["bundle_uri"] == f"s3://{BUCKET}/models/bc/versions/000002/"
    assert client.get_model_version_by_alias("bc", "champion").tags["bundle_version"] == "1"
    promotion.promote(s3, BUCKET, "bc", 2, "by hand")
    tracking.mirror_champion("bc", 2)
    assert client.get_model_version_by_alias("bc", "champion").tags["bundle_version"] == "2"
    promotion.rollback(s3, BUCKET, "bc")
    tracking.mirror_champion("bc", 1)
    assert bundles.read_champion(s3, BUCKET, "bc")["version"] == 1
    assert client.get_model_version_by_alias("bc", "champion").tags["bundle_version"] == "1"
