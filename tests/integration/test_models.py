"""Many models behind one API, through API Gateway on LocalStack: listed, served by name, independent."""

import json
import time

import numpy as np
import pytest
import requests
from serving.model import bundle
from serving.store import bundles

from tests.conftest import client
from tests.native import native_predictions, republish
from training import data as D

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def api(stack, trained, trained_penguins):
    return stack["api_url"], {"x-api-key": stack["api_key"], "content-type": "application/json"}


def test_both_models_are_listed_with_their_champion(api, trained, trained_penguins):
    url, _ = api
    listing = requests.get(f"{url}/models", timeout=30).json()
    assert listing["default_model"] == "breast-cancer"
    listed = {m["name"]: m for m in listing["models"]}
    assert {"breast-cancer", "penguins"} <= set(listed)  # and any model another test module published
    assert (listed["penguins"]["version"], listed["penguins"]["task"]) == (trained_penguins["version"], "multiclass")
    assert listed["penguins"]["classes"] == ["Adelie", "Chinstrap", "Gentoo"]
    assert listed["breast-cancer"]["metrics"]["f1_macro"] == trained["test_metrics"]["f1_macro"]


def test_a_models_versions_and_promotions_are_open(api, stack, trained_penguins):
    url, _ = api
    answer = requests.get(f"{url}/models/penguins/versions", timeout=30)  # no key
    assert answer.status_code == 200
    shown = answer.json()
    assert shown["versions"][0]["version"] >= trained_penguins["version"]
    newest_promotion = shown["promotions"][0]
    pointer = bundles.read_champion(client("s3", stack["endpoint"]), stack["model_bucket"], "penguins")
    assert (newest_promotion["version"], newest_promotion["promoted_at"]) == (pointer["version"],
                                                                              pointer["promoted_at"])
    assert shown["versions"][-1]["rows"] == 344 and len(shown["versions"][-1]["data_sha256"]) == 64
    assert requests.get(f"{url}/models/nobody/versions", timeout=30).status_code == 404


@pytest.mark.parametrize("name", ["breast-cancer", "penguins"])
def test_each_model_answers_by_name_as_its_native_model_does(api, stack, name):
    url, headers = api
    s3 = client("s3", stack["endpoint"])
    champion = bundles.load_champion(s3, stack["model_bucket"], name)
    data = D.load(name.replace("-", "_"))
    rows = data.X.iloc[:60]
    instances = D.to_instances(rows, champion.feature_schema)
    described = requests.get(f"{url}/models/{name}", timeout=30).json()
    assert described["feature_schema"] == champion.feature_schema
    response = requests.post(f"{url}/models/{name}/predict", headers=headers, timeout=30,
                             data=json.dumps({"instances": instances}))
    assert response.status_code == 200, response.text
    served = np.array([[p["probabilities"][c] for c in champion.classes] for p in response.json()["predictions"]])
    native = native_predictions(champion, s3, stack["model_bucket"], rows)
    assert np.max(np.abs(served - native)) <= 1e-9


def test_invalid_and_unknown_names_are_refused(api):
    url, headers = api
    body = json.dumps({"instances": [{}]})
    for name, status in (("Not..Valid", 400), ("ghost", 404)):
        assert requests.get(f"{url}/models/{name}", timeout=30).status_code == status
        response = requests.post(f"{url}/models/{name}/predict", headers=headers, data=body, timeout=30)
        assert response.status_code == status
        assert "error" in response.json()
    assert requests.post(f"{url}/models/penguins/predict", data=body, timeout=30,
                         headers={"content-type": "application/json"}).status_code == 403  # still needs the key


def test_a_promotion_of_one_model_and_a_broken_bundle_of_another_stay_apart(api, stack, trained, trained_penguins):
    url, headers = api
    s3 = client("s3", stack["endpoint"])
    bucket = stack["model_bucket"]
    penguins = bundles.load_champion(s3, bucket, "penguins")
    rows = {"instances": D.to_instances(D.load("penguins").X.iloc[:3], penguins.feature_schema)}
    bc_rows = {"instances": D.to_instances(D.load("breast_cancer").X.iloc[:3],
                                           bundles.load_champion(s3, bucket, "breast-cancer").feature_schema)}
    # breast cancer: a second version, promoted by hand
    promoted = republish(s3, bucket, "breast-cancer")
    bundles.set_champion(s3, bucket, "breast-cancer", promoted, "integration test")
    # penguins: a broken version made champion
    broken = republish(s3, bucket, "penguins")
    s3.put_object(Bucket=bucket, Key=bundle.version_prefix("penguins", broken) + "model.npz", Body=b"x")
    bundles.set_champion(s3, bucket, "penguins", broken, "a bad push")
    # The stack re-checks pointers every 2 s, in every warm container (there may be several):
    # ask until a container has seen both changes.
    failure = None
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and failure is None:
        time.sleep(1)
        bc = requests.post(f"{url}/predict", headers=headers, data=json.dumps(bc_rows), timeout=30).json()
        answer = requests.post(f"{url}/models/penguins/predict", headers=headers, data=json.dumps(rows), timeout=30)
        assert answer.status_code == 200
        assert answer.json()["model"]["version"] == trained_penguins["version"]  # the last good penguins model
        health = requests.get(f"{url}/health", timeout=30).json()
        if bc["model"]["version"] == promoted and "last_load_failure" in health["models"].get("penguins", {}):
            failure = health["models"]["penguins"]["last_load_failure"]
    assert failure is not None, "no container saw both the promotion and the broken bundle"
    assert failure["version"] == broken and "does not match its sha256" in failure["reason"]
    # put things back for the tests that follow, and wait until the API serves them again
    bundles.set_champion(s3, bucket, "penguins", trained_penguins["version"], "restore")
    bundles.set_champion(s3, bucket, "breast-cancer", trained["version"], "restore")
    deadline, in_a_row = time.monotonic() + 60, 0
    while time.monotonic() < deadline and in_a_row < 6:  # six answers in a row: every warm container
        answer = requests.post(f"{url}/predict", headers=headers, data=json.dumps(bc_rows), timeout=30).json()
        in_a_row = in_a_row + 1 if answer["model"]["version"] == trained["version"] else 0
        time.sleep(0.5)
    assert in_a_row == 6
