"""/openapi.json: valid OpenAPI 3.1 that documents every answer, the gateway's own included."""

import pytest
from openapi_spec_validator import validate
from serving.api import openapi

from tests.models import case


def app_routes():
    """The routes as the API declares them (paths, summaries, which need the key): the document's source."""
    from serving.api.app import PredictionApi
    from serving.api.openapi import SIGNED_IN_ROUTES
    from serving.settings import Settings

    return [*PredictionApi(Settings.from_env({"MODEL_BUCKET": "b"}), lambda: None).routes, *SIGNED_IN_ROUTES]


ROUTES = app_routes()


def described(name="penguins-lightgbm", **extra):
    model = case(name)
    return {"name": "p", "version": 3, "task": "multiclass", "feature_schema": model.schema,
            "classes": model.classes, **extra}


@pytest.fixture
def document():
    return openapi.document(ROUTES, described(), max_rows=50, names=["bc", "penguins"], max_explain_rows=4)


def test_the_document_is_valid_openapi_31(document):
    validate(document)
    assert document["openapi"] == "3.1.0"
    assert document["info"] == {"title": "Predictions: p v3", "version": "3"}
    validate(openapi.document(ROUTES, None, 10))


def test_every_route_and_only_those_is_described(document):
    assert {(m, p) for p, ops in document["paths"].items() for m in ops} == {
        ("get", "/health"), ("get", "/model"), ("post", "/predict"), ("get", "/openapi.json"), ("get", "/models"),
        ("get", "/models/{name}"), ("post", "/models/{name}/predict"), ("post", "/explain"),
        ("post", "/models/{name}/explain"), ("get", "/models/{name}/versions"), ("get", "/models/{name}/drift"),
        ("post", "/models/{name}/batches"), ("get", "/models/{name}/batches/{id}")}
    assert document["paths"]["/health"]["get"]["summary"] == (
        "Whether the default model is served; every model loaded here")


def test_every_status_the_api_can_answer_is_documented(document):
    def statuses(path, method):
        return set(document["paths"][path][method]["responses"])

    assert statuses("/predict", "post") == {"200", "400", "403", "413", "415", "422", "429", "503"}
    assert statuses("/health", "get") == {"200", "403", "429", "503"}
    assert statuses("/model", "get") == {"200", "403", "429", "503"}
    assert statuses("/openapi.json", "get") == {"200", "403", "429"}
    assert statuses("/models", "get") == {"200", "403", "429", "503"}  # S3 down, no listing read before
    assert statuses("/models/{name}", "get") == {"200", "400", "403", "404", "429", "503"}
    assert statuses("/models/{name}/predict", "post") == {"200", "400", "403", "404", "413", "415", "422", "429",
                                                          "503"}
    assert statuses("/explain", "post") == statuses("/predict", "post")
    for route in ("/models/{name}/versions", "/models/{name}/drift"):  # open, and read from S3
        assert statuses(route, "get") == {"200", "400", "403", "404", "429", "503"}
        assert document["paths"][route]["get"]["responses"]["200"]["content"]["application/json"]["schema"] == {
            "$ref": f"#/components/schemas/{'Versions' if route.endswith('versions') else 'DriftReport'}"}
    assert statuses("/models/{name}/explain", "post") == statuses("/models/{name}/predict", "post")


def test_explanations_are_described_with_their_own_row_limit(document):
    schemas = document["components"]["schemas"]
    explain = document["paths"]["/explain"]["post"]
    assert explain["security"] == [{"ApiKey": []}]
    assert explain["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/ExplainRequest")
    assert schemas["ExplainRequest"]["oneOf"][0]["properties"]["instances"]["maxItems"] == 4
    assert schemas["AnyExplainRequest"]["oneOf"][1]["properties"]["features"]["maxItems"] == 4
    assert schemas["PredictRequest"]["oneOf"][0]["properties"]["instances"]["maxItems"] == 50
    item = schemas["ExplainResponse"]["properties"]["predictions"]["items"]
    assert item["required"] == ["label", "probabilities", "explanation"]
    assert schemas["ExplainResponse"]["required"] == ["model", "predictions", "explains"]


def test_the_name_in_a_path_is_one_of_the_published_models(document):
    for path, method in (("/models/{name}", "get"), ("/models/{name}/predict", "post")):
        [parameter] = document["paths"][path][method]["parameters"]
        assert (parameter["name"], parameter["in"], parameter["required"]) == ("name", "path", True)
        assert parameter["schema"] == {"type": "string", "enum": ["bc", "penguins"]}
    [unknown] = openapi.document(ROUTES, None, 5)["paths"]["/models/{name}"]["get"]["parameters"]
    assert unknown["schema"] == {"type": "string", "pattern": "^[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?$"}


def test_a_named_models_request_and_answer_are_described_for_any_model(document):
    body = document["paths"]["/models/{name}/predict"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/AnyPredictRequest"}
    request = document["components"]["schemas"]["AnyPredictRequest"]
    assert [sorted(form["properties"]) for form in request["oneOf"]] == [["instances"], ["features"]]
    assert request["oneOf"][0]["properties"]["instances"]["maxItems"] == 50
    answer = document["components"]["schemas"]["AnyPredictResponse"]["properties"]["predictions"]["items"]
    assert [item["required"] for item in answer["oneOf"]] == [["label", "probabilities"], ["prediction"]]
    assert "security" not in document["paths"]["/models/{name}"]["get"]
    assert document["paths"]["/models/{name}/predict"]["post"]["security"] == [{"ApiKey": []}]


def test_the_gateways_own_answers_have_their_own_schema(document):
    predict = document["paths"]["/predict"]["post"]
    ref = "#/components/schemas/"
    schema = lambda status: predict["responses"][status]["content"]["application/json"]["schema"]["$ref"]  # noqa: E731
    assert schema("403") == schema("429") == ref + "GatewayError"
    assert schema("422") == schema("400") == schema("503") == ref + "Error"
    assert schema("200") == ref + "PredictResponse"
    gateway = document["components"]["schemas"]["GatewayError"]
    assert gateway["required"] == ["message"]
    assert document["components"]["schemas"]["Error"]["required"] == ["error"]
    health = document["paths"]["/health"]["get"]["responses"]
    assert health["503"]["content"]["application/json"]["schema"]["$ref"] == ref + "Health"
    assert predict["security"] == [{"ApiKey": []}]
    assert "security" not in document["paths"]["/health"]["get"]
    assert document["components"]["securitySchemes"]["ApiKey"] == {"type": "apiKey", "in": "header",
                                                                    "name": "x-api-key"}


def test_the_request_is_the_models_features(document):
    model = case("penguins-lightgbm")
    instance = document["components"]["schemas"]["Instance"]
    assert instance["required"] == [f["name"] for f in model.schema]
    assert instance["additionalProperties"] is False
    island = instance["properties"]["island"]
    assert island == {"type": "string", "enum": ["Biscoe", "Dream", "Torgersen"]}
    assert instance["properties"]["sex"] == {"anyOf": [{"type": "string", "enum": ["female", "male"]},
                                                       {"type": "null"}]}
    length = instance["properties"]["bill_length_mm"]
    assert length == {"anyOf": [{"type": "number", "description": "seen in training: 32.1 to 59.6"},
                                {"type": "null"}]}
    request = document["components"]["schemas"]["PredictRequest"]["oneOf"]
    assert request[0]["properties"]["instances"]["maxItems"] == 50
    assert request[0]["properties"]["instances"]["minItems"] == 1
    assert request[1]["properties"]["features"]["items"]["minItems"] == 7
    assert request[1]["properties"]["features"]["items"]["maxItems"] == 7
    positional = request[1]["properties"]["features"]["items"]
    assert positional["items"] is False
    assert positional["prefixItems"] == [instance["properties"][f["name"]] for f in model.schema]
    assert request[1]["description"].startswith("values in schema order: island, bill_length_mm")
    body = document["paths"]["/predict"]["post"]["requestBody"]
    assert body["required"] is True


def test_booleans_and_numbers_without_a_range():
    features = [{"name": "b", "type": "boolean"}, {"name": "n", "type": "numeric", "min": None}]
    instance = openapi.document(ROUTES, described(feature_schema=features), 5)["components"]["schemas"]["Instance"]
    assert instance["properties"] == {"b": {"type": "boolean"}, "n": {"type": "number"}}


def test_the_answer_is_described_per_task(document):
    classes = case("penguins-lightgbm").classes
    item = document["components"]["schemas"]["PredictResponse"]["properties"]["predictions"]["items"]
    assert item["required"] == ["label", "probabilities"]
    assert item["properties"]["label"] == {"type": "string", "enum": classes}
    assert set(item["properties"]["probabilities"]["properties"]) == set(classes)
    regression = openapi.document(ROUTES, described(task="regression", classes=[]), 5)
    item = regression["components"]["schemas"]["PredictResponse"]["properties"]["predictions"]["items"]
    assert item == {"type": "object", "required": ["prediction"], "additionalProperties": False,
                    "properties": {"prediction": {"type": "number"}}}
    unknown = openapi.document(ROUTES, None, 5)
    item = unknown["components"]["schemas"]["PredictResponse"]["properties"]["predictions"]["items"]
    assert item["properties"]["label"] == {"type": "string"}


SNAPSHOTS = __import__("pathlib").Path(__file__).with_name("snapshots")


@pytest.mark.parametrize(("name", "model"), [
    ("openapi-penguins.json", lambda: described(ignored_columns=["rownames", "species"], id_column="rownames")),
    ("openapi-regression.json", lambda: described("bc-catboost", task="regression", classes=[])),
    ("openapi-no-model.json", lambda: None),
])
def test_the_document_is_exactly_the_reviewed_one(name, model):
    # The document is the API's contract: a change to it is reviewed as a change of this file
    # (regenerate with UPDATE_SNAPSHOTS=1 and read the diff).
    import json
    import os

    # the routes made here, in the test (not at import), so that `make mutation` maps this test to them
    document = openapi.document(app_routes(), model(), max_rows=50, names=["bc", "penguins"] if model() else None,
                                max_explain_rows=4)
    path = SNAPSHOTS / name
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        path.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")
    assert document == json.loads(path.read_text())


def test_a_date_is_an_iso_8601_string_naming_the_parts_the_model_reads():
    [start] = [f for f in case("rides-catboost").schema if f["name"] == "start"]
    nullable = dict(start, name="end", nullable=True)
    document = openapi.document(ROUTES, described(task="regression", classes=[], feature_schema=[start, nullable]),
                                5)
    validate(document)
    schema = {"type": "string", "format": "date-time",
              "description": "ISO 8601 date or timestamp; the model reads year, month, day, weekday, dayofyear, "
                             "days_since_epoch, hour, minute, second"}
    instance = document["components"]["schemas"]["Instance"]
    assert instance["properties"] == {"start": schema, "end": {"anyOf": [schema, {"type": "null"}]}}
    positional = document["components"]["schemas"]["PredictRequest"]["oneOf"][1]["properties"]["features"]
    assert positional["items"]["prefixItems"] == [schema, {"anyOf": [schema, {"type": "null"}]}]


def test_without_a_limit_explanations_are_described_with_the_apis_default_limit():
    from serving.settings import Settings

    schemas = openapi.document(ROUTES, described(), 50)["components"]["schemas"]
    limit = Settings(model_bucket="b").max_explain_rows
    assert schemas["ExplainRequest"]["oneOf"][0]["properties"]["instances"]["maxItems"] == limit == 10
    assert schemas["AnyExplainRequest"]["oneOf"][0]["properties"]["instances"]["maxItems"] == limit


def test_the_columns_a_model_ignores_are_declared_so_that_a_row_of_the_training_table_conforms():
    document = openapi.document(ROUTES, described(ignored_columns=["rownames", "species"]), 5)
    validate(document)
    instance = document["components"]["schemas"]["Instance"]
    assert instance["properties"]["rownames"] == instance["properties"]["species"] == {
        "description": openapi.IGNORED}
    assert "rownames" not in instance["required"] and instance["additionalProperties"] is False
