"""The API handler, called with API Gateway events as `sam local generate-event` makes them."""

import base64
import json
import threading

import numpy as np
import pytest
from serving.api import app as app_module
from serving.model import bundle
from serving.store import bundles

from tests.models import case
from tests.unit.conftest import BUCKET
from tests.unit.fakes import Context, event, metrics_of
from tests.unit.serving.api.conftest import ORIGIN, fresh_container, publish


def test_before_anything_is_published_predict_is_503_and_health_says_why(api):
    reason = "no model named 'breast-cancer' has been published"
    status, body, _ = api(event("health"))
    assert (status, body) == (503, {"status": "no_model", "reason": reason, "default_model": "breast-cancer",
                                    "models": {}})
    for name in ("predict", "model"):
        assert api(event(name))[:2] == (503, {"error": reason})


def test_without_a_champion_predict_is_503_and_health_says_why(api, s3):
    publish(s3, promote=False)
    reason = f"no champion has been promoted for model 'breast-cancer' in {BUCKET}"
    status, body, _ = api(event("health"))
    assert (status, body["status"], body["reason"]) == (503, "no_model", reason)
    assert body["models"] == {"breast-cancer": {"status": "no_model", "reason": reason}}
    for name in ("predict", "model"):
        assert api(event(name))[:2] == (503, {"error": reason})


def test_health_names_the_model_being_served(api, s3):
    publish(s3)
    status, body, response = api(event("health"))
    served = {"status": "ok", "model": {"name": "breast-cancer", "version": 1}}
    assert (status, body) == (200, {**served, "default_model": "breast-cancer", "models": {"breast-cancer": served}})
    assert response["multiValueHeaders"]["Content-Type"] == ["application/json"]


def test_predict_answers_label_probabilities_and_version(api, s3):
    model = case("bc-lightgbm")
    publish(s3)
    status, body, response = api(event("predict", headers={"Origin": ORIGIN}))
    assert status == 200, body
    assert body["model"] == {"name": "breast-cancer", "version": 1}
    [prediction] = body["predictions"]
    assert list(prediction["probabilities"]) == model.classes
    assert sum(prediction["probabilities"].values()) == pytest.approx(1.0, abs=1e-12)
    assert prediction["label"] == max(prediction["probabilities"], key=prediction["probabilities"].get)
    assert response["multiValueHeaders"]["Access-Control-Allow-Origin"] == [ORIGIN]
    assert response["multiValueHeaders"]["Access-Control-Max-Age"] == ["600"]
    assert api.metrics["Predictions"] == [1.0]
    assert api.metrics["_units"]["Predictions"] == "Count"
    assert api.metrics["_units"]["PredictLatency"] == "Milliseconds"
    assert api.metrics["_dims"]["ModelVersion"] == "1"
    assert api.metrics["_dims"]["Model"] == "breast-cancer"


def test_the_latency_metric_is_the_evaluation_time_in_milliseconds(api, s3, monkeypatch):
    publish(s3)
    ticks = iter([10.0, 10.25])
    monkeypatch.setattr(app_module.time, "perf_counter", lambda: next(ticks))
    assert api(event("predict"))[0] == 200
    assert api.metrics["PredictLatency"] == [250.0]


def test_cors_is_granted_only_to_the_forms_origin(api, s3):
    publish(s3)
    _, _, response = api(event("predict", headers={"Origin": "https://evil.example"}))
    assert "Access-Control-Allow-Origin" not in response["multiValueHeaders"]


def test_without_an_allowed_origin_no_cors_headers_are_sent(api, s3, monkeypatch):
    monkeypatch.delenv("ALLOWED_ORIGIN")
    module = fresh_container()
    assert module.cors is None
    publish(s3)
    response = module.handler(event("predict", headers={"Origin": ORIGIN}), Context())
    assert not any(k.startswith("Access-Control") for k in response["multiValueHeaders"])


def test_predictions_equal_the_native_model_for_many_rows(api, s3):
    for name in ("bc-lightgbm", "bc-catboost"):
        model = case(name)
        publish(s3, name)
        status, body, _ = api(event("predict", {"instances": model.instances}))
        assert status == 200
        assert len(body["predictions"]) == len(model.instances)
        served = np.array([[p["probabilities"][c] for c in model.classes] for p in body["predictions"]])
        assert np.max(np.abs(served - model.native)) <= 1e-12
        assert api.metrics["Predictions"] == [float(len(model.instances))]


def test_the_positional_form_gives_the_same_answer(api, s3):
    publish(s3)
    _, named, _ = api(event("predict"))
    status, positional, _ = api(event("predict-positional"))
    assert status == 200
    assert positional == named


def test_a_plain_text_body_is_read_like_a_base64_one(api, s3):
    publish(s3)
    row = json.loads(base64.b64decode(event("predict")["body"]))
    _, encoded, _ = api(event("predict", row))
    status, plain, _ = api(event("predict", row, base64_encoded=False))
    assert status == 200 and plain == encoded


def test_invalid_values_get_422_with_the_field(api, s3):
    publish(s3)
    status, body, _ = api(event("predict-invalid"))
    assert status == 422
    assert body["errors"] == [{"row": 0, "field": "mean radius", "message": "must be a number, got str"}]
    assert api.metrics["RequestErrors"] == [1.0]
    assert api.metrics["_units"]["RequestErrors"] == "Count"


@pytest.mark.parametrize(
    ("body", "headers", "status", "words"),
    [
        ('{"instances": [', None, 400, "the body is not valid JSON"),
        ('{"instances": [{"mean radius": NaN}]}', None, 400, "not valid JSON"),
        ('{"instances": [{"mean radius": Infinity}]}', None, 400, "not valid JSON"),
        ('{"instances": [{"mean radius": 1e400}]}', None, 400, "not valid JSON"),
        ('{"instances": []}', None, 400, "non-empty"),
        ("", None, 400, "not valid JSON"),
        (None, {"Content-Type": "text/plain"}, 415, "send the request as Content-Type: application/json"),
        (None, {"Content-Type": "application/x-www-form-urlencoded"}, 415,
         "send the request as Content-Type: application/json"),
        (None, {"Content-Type": "application/jsonp"}, 415, "application/json"),
        (None, {"Content-Type": ""}, 415, "application/json"),
    ],
)
def test_bad_requests_get_a_clear_4xx(api, s3, body, headers, status, words):
    publish(s3)
    code, answer, _ = api(event("predict", body=body, headers=headers))
    assert code == status
    assert words in answer["error"]
    if status == 415:
        assert answer == {"error": "send the request as Content-Type: application/json"}


def test_a_request_without_a_body_says_so(api, s3):
    publish(s3)
    e = event("predict")
    e["body"], e["isBase64Encoded"] = None, False
    status, body, _ = api(e)
    assert (status, body) == (400, {"error": "the body is not valid JSON: Input is a zero-length, empty document: "
                                             "line 1 column 1 (char 0)"})


def test_a_content_type_with_parameters_and_any_case_is_json(api, s3):
    publish(s3)
    for value in ("application/json; charset=utf-8", "Application/JSON", " application/json "):
        assert api(event("predict", headers={"Content-Type": value}))[0] == 200


def test_a_body_that_is_not_utf8_is_a_400_not_a_500(api, s3):
    publish(s3)
    status, body, _ = api(event("predict", raw_body=b'{"instances": [{"mean radius": "\xff\xfe"}]}'))
    assert status == 400
    assert "not valid JSON" in body["error"] and "UTF-8" in body["error"]
    e = event("predict")
    e["body"], e["isBase64Encoded"] = '{"instances": ["\ud800"]}', False  # a lone surrogate
    status, body, _ = api(e)
    assert status == 400 and "UTF-8" in body["error"]


def test_a_body_that_is_not_base64_is_a_400(api, s3):
    publish(s3)
    e = event("predict")
    e["body"] = "not base64!"
    status, body, _ = api(e)
    assert (status, body) == (400, {"error": "the body is not valid base64"})
    e = event("predict")  # valid JSON once the stray characters were dropped: still refused
    e["body"] = e["body"][:10] + "!*" + e["body"][10:]
    assert api(e)[:2] == (400, {"error": "the body is not valid base64"})


def test_a_body_over_the_size_limit_is_413_before_it_is_parsed(api, s3):
    publish(s3)
    status, body, _ = api(event("predict", body=" " * 299_993 + '{"x": 1}'))  # 300,001 bytes
    assert (status, body) == (413, {"error": "the body is over 300000 bytes"})
    status, _, _ = api(event("predict", body=" " * 299_998 + "{}"))
    assert status == 400  # just under the limit: parsed, then refused for its content


def test_too_many_rows_is_413(api, s3):
    publish(s3)
    row = json.loads(base64.b64decode(event("predict")["body"]))["instances"][0]
    status, body, _ = api(event("predict", {"instances": [row] * 201}))
    assert status == 413
    assert body == {"error": "201 rows in one request; the limit is 200"}
    assert api(event("predict", {"instances": [row] * 200}))[0] == 200


def test_unknown_routes_are_404_json(api):
    status, body, _ = api(event("health", path="/nope"))
    assert status == 404
    assert body == {"error": "no route GET /nope"}


def test_logs_carry_api_gateways_request_id_as_the_correlation_id(api, s3):
    publish(s3)
    e = event("predict")
    e["requestContext"]["requestId"] = "c0ffee-1"
    assert api(e)[0] == 200
    assert api.module.logger.get_correlation_id() == "c0ffee-1"
    del e["requestContext"]
    assert api(e)[0] == 200  # a test event without one is still answered
    assert api.module.logger.get_correlation_id() is None


def test_malformed_events_still_get_an_answer(api, s3):
    publish(s3)
    # what API Gateway never sends, but a test console might: an answer, never an exception
    cases = [({"headers": ["not", "an", "object"]}, 200), ({"requestContext": "x"}, 200),
             ({"httpMethod": ["GET"]}, 500)]
    for change, expected in cases:
        status, body, response = api(event("health") | change)
        assert status == expected, change
        assert response["multiValueHeaders"]["Content-Type"] == ["application/json"]
    assert body == {"error": "internal error", "request_id": "req-1"}


@pytest.mark.parametrize("malformed", [["not", "an", "event"], "text", None])
def test_an_event_that_is_not_an_object_gets_an_answer(api, s3, malformed):
    status, body, response = api(malformed)  # what a test console might send: never an exception
    assert status == 500 and body["error"] == "internal error"
    assert response["multiValueHeaders"]["Content-Type"] == ["application/json"]


def test_a_by_name_route_without_its_name_is_refused_for_the_name(api, s3):
    publish(s3)
    e = event("predict", {"instances": case("bc-lightgbm").instances[:1]}, path="/models/breast-cancer/predict")
    del e["pathParameters"]  # API Gateway always sends it; a hand-made event may not
    status, body, _ = api(e)
    assert status == 400 and body["error"].startswith("model name '' is not valid")


def test_a_route_is_its_method_and_path_together(api, s3):
    publish(s3)
    wrong_method = event("health", path="/predict")  # GET where only POST is served
    assert api(wrong_method)[:2] == (404, {"error": "no route GET /predict"})
    no_resource = event("health")
    del no_resource["resource"]
    assert api(no_resource)[:2] == (404, {"error": "no route GET /health"})


def test_headers_are_read_whatever_their_case(api, s3):
    publish(s3)
    e = event("predict")
    e["headers"] = {k.upper(): v for k, v in e["headers"].items()} | {"ORIGIN": ORIGIN}
    status, _, response = api(e)
    assert status == 200
    assert response["multiValueHeaders"]["Access-Control-Allow-Origin"] == [ORIGIN]
    e["headers"] = {}
    assert api(e)[:2] == (415, {"error": "send the request as Content-Type: application/json"})


def test_error_answers_carry_cors_headers_for_the_form(api, s3):
    # the form shows why a request was refused: the browser lets it read a 4xx only with CORS headers
    publish(s3)
    status, _, response = api(event("predict", body="{", headers={"Origin": ORIGIN}))
    assert status == 400
    assert response["multiValueHeaders"]["Access-Control-Allow-Origin"] == [ORIGIN]
    assert response["multiValueHeaders"]["Access-Control-Allow-Headers"] == [
        "Authorization,Content-Type,X-Amz-Date,X-Amz-Security-Token,X-Api-Key"]
    assert response["multiValueHeaders"]["Content-Type"] == ["application/json"]
    assert response["isBase64Encoded"] is False


def test_an_unexpected_error_is_a_500_with_the_request_id_and_is_counted(api, s3, monkeypatch, caplog):
    publish(s3)

    def explode(name):
        raise RuntimeError("boom")

    monkeypatch.setattr(api.module.registry, "champion", explode)
    status, body, _ = api(event("model"))
    assert (status, body) == (500, {"error": "internal error", "request_id": "req-1"})
    assert api.metrics["Errors"] == [1.0]
    assert api.metrics["_units"]["Errors"] == "Count"
    [logged] = [r for r in caplog.records if r.levelname == "ERROR"]
    assert logged.getMessage() == "unexpected error"
    assert logged.exc_info[1].args == ("boom",)


def test_model_describes_schema_classes_metrics_and_examples(api, s3):
    model = case("bc-lightgbm")
    publish(s3)
    status, body, _ = api(event("model"))
    assert status == 200
    assert body["feature_schema"] == model.schema
    assert body["classes"] == model.classes
    assert body["task"] == "binary"
    assert body["examples"][0]["instance"] == model.instances[0]
    assert (body["name"], body["version"]) == ("breast-cancer", 1)
    assert body["metrics"] == {"test": {"f1_macro": 0.9}}


def test_a_new_champion_is_swapped_in_after_the_refresh(api, s3):
    publish(s3)
    assert api(event("predict"))[1]["model"]["version"] == 1
    publish(s3, "bc-lightgbm-short")
    status, body, _ = api(event("predict"))
    assert status == 200
    assert body["model"]["version"] == 2


def test_a_broken_champion_is_refused_and_the_last_good_model_keeps_serving(api, s3):
    publish(s3)
    assert api(event("predict"))[0] == 200
    broken = publish(s3, "bc-lightgbm-short", promote=False)
    key = bundle.version_prefix("breast-cancer", broken["version"]) + "model.npz"
    s3.put_object(Bucket=BUCKET, Key=key, Body=b"corrupted")
    bundles.set_champion(s3, BUCKET, "breast-cancer", broken["version"], "bad push")
    status, body, _ = api(event("predict"))
    assert status == 200
    assert body["model"]["version"] == 1
    assert api.metrics["ModelLoadFailures"] == [1.0]
    assert api.metrics["_units"]["ModelLoadFailures"] == "Count"
    status, health, _ = api(event("health"))
    assert status == 200
    assert health["model"]["version"] == 1
    assert "does not match its sha256" in health["last_load_failure"]["reason"]


def test_in_a_lambda_function_the_default_model_is_loaded_during_init(api, s3, monkeypatch):
    publish(s3)
    assert api.module.registry.loaded() == {}  # outside Lambda nothing is read at import
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "PredictFunction")
    module = fresh_container()
    assert not module._preload.is_alive()  # the init phase waited for it
    served = module.registry.loaded()["breast-cancer"].predictor
    assert (served.name, served.version) == ("breast-cancer", 1)
    requests = []
    module.registry.s3.get_object = lambda **kwargs: requests.append(kwargs)  # no S3 read from here on
    module.registry.refresh_seconds = module.registry.loaded()["breast-cancer"].refresh_seconds = 60
    response = module.handler(event("predict"), Context())
    assert (response["statusCode"], requests) == (200, [])
    assert json.loads(response["body"])["model"] == {"name": "breast-cancer", "version": 1}


def test_a_default_model_refused_during_init_is_counted_and_the_first_request_says_why(api, s3, monkeypatch,
                                                                                      capsys):
    broken = publish(s3)
    key = bundle.version_prefix("breast-cancer", broken["version"]) + "model.npz"
    s3.put_object(Bucket=BUCKET, Key=key, Body=b"corrupted")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "PredictFunction")
    module = fresh_container()
    assert "does not match its sha256" in module.registry.loaded()["breast-cancer"].last_failure.reason
    module.registry.loaded()["breast-cancer"].refresh_seconds = 60  # the refused version is not read again
    capsys.readouterr()
    response = module.handler(event("predict"), Context())
    assert response["statusCode"] == 503
    assert "does not match its sha256" in json.loads(response["body"])["error"]
    assert metrics_of(capsys.readouterr().out)["ModelLoadFailures"] == [1.0]  # flushed with the first answer


def test_a_default_model_not_yet_published_at_init_is_served_once_published(api, s3, monkeypatch):
    uncaught = []  # what the init thread raised and did not handle (threading prints it to stderr)
    monkeypatch.setattr(threading, "excepthook", uncaught.append)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "PredictFunction")
    module = fresh_container()  # (CHAMPION_REFRESH_SECONDS=0: every request checks again)
    assert (module.registry.loaded(), uncaught) == ({}, [])
    assert module.handler(event("predict"), Context())["statusCode"] == 503
    publish(s3)
    assert module.handler(event("predict"), Context())["statusCode"] == 200


def test_a_bundle_whose_model_and_schema_disagree_is_refused(api, s3):
    model = case("bc-lightgbm")
    publish(s3)
    assert api(event("predict"))[0] == 200
    wrong = dict(model.manifest_fields(), feature_schema=model.schema[:-1])
    manifest = bundles.publish(s3, BUCKET, "breast-cancer", model.arrays, wrong)
    bundles.set_champion(s3, BUCKET, "breast-cancer", manifest["version"], "mismatched")
    status, health, _ = api(event("health"))
    assert status == 200 and health["model"]["version"] == 1
    assert "reads 30 features but its schema gives 29" in health["last_load_failure"]["reason"]


def test_the_openapi_document_describes_the_served_routes(api, s3):
    publish(s3)
    status, document, _ = api(event("health", path="/openapi.json"))
    assert status == 200
    routes = {(r.method.lower(), r.path) for r in api.module.routes}
    console = {("post", "/models/{name}/batches"), ("get", "/models/{name}/batches/{id}")}  # another function's
    assert {(m, p) for p, ops in document["paths"].items() for m in ops} == routes | console
    assert all(document["paths"][p][m]["security"] == [{"SignedIn": []}] for m, p in console)
    assert document["info"]["title"] == "Predictions: breast-cancer v1"
    assert document["components"]["schemas"]["PredictRequest"]["oneOf"][0]["properties"]["instances"][
        "maxItems"] == 200
    resolved = {(r.method, r.path): r.function for r in api.module.routes}
    assert resolved[("POST", "/predict")] == api.module.predict


def test_the_openapi_document_is_served_without_a_model(api):
    status, document, _ = api(event("health", path="/openapi.json"))
    assert status == 200
    assert document["info"]["title"] == "Predictions"
    assert document["components"]["schemas"]["Instance"]["required"] == []




@pytest.mark.parametrize(("name", "overrides"), [
    ("health", {}), ("model", {}), ("predict", {}), ("predict-invalid", {}),
    ("predict", {"body": "{not json"}), ("predict", {"headers": {"Content-Type": "text/plain"}}),
])
def test_every_answer_tells_browsers_not_to_sniff_it_and_names_no_server(api, s3, name, overrides):
    publish(s3)
    _, _, response = api(event(name, **overrides))
    headers = {k.lower(): v for k, v in response["multiValueHeaders"].items()}
    assert headers["x-content-type-options"] == ["nosniff"]
    assert "server" not in headers and "x-powered-by" not in headers
    _, _, missing = api({**event("health"), "resource": "/nowhere", "path": "/nowhere"})
    assert missing["statusCode"] == 404 and missing["multiValueHeaders"]["X-Content-Type-Options"] == ["nosniff"]


# ---- S3 failing


def test_with_s3_down_a_warm_container_answers_from_its_model_and_counts_the_failed_checks(api, s3):
    publish(s3)
    assert api(event("predict"))[0] == 200
    s3.down = True
    for _ in range(3):  # (the fixture's refresh interval is 0: every request checks)
        status, body, _ = api(event("predict"))
        assert (status, body["model"]["version"]) == (200, 1)
        assert api.metrics["ChampionCheckFailures"] == [1.0] and "ModelLoadFailures" not in api.metrics
    status, health, _ = api(event("health"))
    assert (status, health["status"]) == (200, "ok")
    assert health["failed_checks"] == 4 and "Connection refused" in health["last_load_failure"]["reason"]
    s3.down = False
    publish(s3, "bc-lightgbm-short")
    assert api(event("predict"))[1]["model"]["version"] == 2


def test_with_s3_down_a_cold_container_answers_503_naming_the_cause_and_recovers_with_s3(api, s3):
    publish(s3)
    publish(s3, "penguins-lightgbm", model_name="penguins")
    s3.down = True
    for request in (event("predict"), event("model"), event("health"),
                    event("predict", path="/models/penguins/predict"), event("model", path="/models/penguins")):
        status, body, _ = api(request)
        assert status == 503, request["path"]
        reason = body.get("error") or body.get("reason")
        assert "the model store did not answer" in reason and "Connection refused" in reason
    status, body, _ = api(event("model", path="/models"))
    assert status == 503 and "the model store did not answer the listing" in body["error"]
    s3.down = False
    assert api(event("predict"))[0] == 200
    assert api(event("predict", path="/models/penguins/predict",
                     body={"instances": [case("penguins-lightgbm").instances[0]]}))[0] == 200
    assert api(event("model", path="/models"))[0] == 200


def test_with_s3_down_the_listing_read_before_is_answered(api, s3):
    publish(s3)
    status, first, _ = api(event("model", path="/models"))
    assert status == 200 and [m["name"] for m in first["models"]] == ["breast-cancer"]
    s3.down = True
    assert api(event("model", path="/models"))[:2] == (200, first)
