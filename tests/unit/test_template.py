"""template.yaml: valid for SAM and cfn-lint, and secure by default."""

from pathlib import Path

import pytest

from infra import templates

ROOT = Path(__file__).resolve().parents[2]
# cfn-lint, sam validate --lint and checkov run in `make lint`, before the tests.


@pytest.fixture(scope="module")
def template():
    return templates.read(ROOT / "template.yaml")


def test_the_model_bucket_is_private_versioned_encrypted_and_tls_only(template):
    resources = template["Resources"]
    bucket = resources["ModelBucket"]
    assert bucket["DeletionPolicy"] == "Retain"
    props = bucket["Properties"]
    assert props["VersioningConfiguration"]["Status"] == "Enabled"
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert all(props["PublicAccessBlockConfiguration"].values())
    [statement] = resources["ModelBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Deny"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_the_function_reads_only_the_models_and_drift_prefixes_and_writes_only_captured_rows(template):
    function = template["Resources"]["PredictFunction"]["Properties"]
    [policy] = function["Policies"]
    read, listing, write, reports = policy["Statement"]
    assert (write["Action"], write["Resource"]) == ("s3:PutObject", {"Sub": "${ModelBucket.Arn}/capture/*"})
    assert (reports["Action"], reports["Resource"]) == ("s3:GetObject", {"Sub": "${ModelBucket.Arn}/drift/*"})
    assert read["Action"] == "s3:GetObject"
    assert read["Resource"] == {"Sub": "${ModelBucket.Arn}/models/*"}
    assert listing["Action"] == "s3:ListBucket"
    assert listing["Resource"] == {"GetAtt": "ModelBucket.Arn"}
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["models/", "models/*"]}}
    assert function["Handler"] == "handlers.api.handler"
    assert template["Globals"]["Function"]["Runtime"] == "python3.12"


def test_every_function_keeps_arrays_of_a_few_mb_on_the_heap(template):
    # without it glibc maps every array over 128 KB afresh and unmaps it when freed: the
    # evaluator's per-chunk arrays then cost page faults on every request (3x on 1000 rows)
    tunables = template["Globals"]["Function"]["Environment"]["Variables"]["GLIBC_TUNABLES"]
    settings = dict(item.split("=") for item in tunables.split(":"))
    assert int(settings["glibc.malloc.mmap_threshold"]) >= 4 * 2**20
    assert int(settings["glibc.malloc.trim_threshold"]) >= 2 * int(settings["glibc.malloc.mmap_threshold"])
    for name, resource in template["Resources"].items():  # no function overrides it
        if resource["Type"] == "AWS::Serverless::Function":
            variables = resource["Properties"].get("Environment", {}).get("Variables", {})
            assert "GLIBC_TUNABLES" not in variables, name


def test_predict_needs_an_api_key_and_the_usage_plan_throttles(template):
    events = template["Resources"]["PredictFunction"]["Properties"]["Events"]
    for route in ("Predict", "NamedPredict", "Explain", "NamedExplain"):
        assert events[route]["Properties"]["Auth"] == {"ApiKeyRequired": True}, route
    assert "Auth" not in events["Health"]["Properties"]
    assert "Auth" not in events["Model"]["Properties"]
    auth = template["Resources"]["PredictApi"]["Properties"]["Auth"]
    assert auth["UsagePlan"]["CreateUsagePlan"] == "PER_API"
    assert auth["UsagePlan"]["Throttle"]["RateLimit"] == {"Ref": "ThrottleRateLimit"}


def test_the_batch_routes_need_a_signed_in_user_checked_by_the_authorizer(template):
    events = template["Resources"]["ConsoleFunction"]["Properties"]["Events"]
    assert {(e["Properties"]["Method"], e["Properties"]["Path"]) for e in events.values()} == {
        ("POST", "/models/{name}/batches"), ("GET", "/models/{name}/batches/{id}")}
    for event in events.values():
        assert event["Properties"]["Auth"] == {"Authorizer": "ConsoleUsers"}
    authorizer = template["Resources"]["PredictApi"]["Properties"]["Auth"]["Authorizers"]["ConsoleUsers"]
    assert authorizer["FunctionArn"] == {"GetAtt": "AuthorizerFunction.Arn"}
    assert authorizer["Identity"]["Header"] == "Authorization"
    assert "DefaultAuthorizer" not in template["Resources"]["PredictApi"]["Properties"]["Auth"]
    assert "Policies" not in template["Resources"]["AuthorizerFunction"]["Properties"]  # it reads nothing
    for name in ("ConsoleFunction", "AuthorizerFunction"):  # both check the same pool's tokens
        variables = template["Resources"][name]["Properties"]["Environment"]["Variables"]
        assert variables["AUTH_AUDIENCE"] == {"If": ["OwnUserPool", {"Ref": "ConsoleUserPoolClient"},
                                                     {"Ref": "AuthAudience"}]}


def test_an_account_gets_its_own_user_pool_that_nobody_signs_up_to(template):
    assert template["Conditions"]["OwnUserPool"] == {"Equals": [{"Ref": "AuthIssuer"}, ""]}
    pool = template["Resources"]["ConsoleUserPool"]
    assert pool["Condition"] == "OwnUserPool"
    assert pool["Properties"]["AdminCreateUserConfig"] == {"AllowAdminCreateUserOnly": True}
    client = template["Resources"]["ConsoleUserPoolClient"]["Properties"]
    assert client["GenerateSecret"] is False and client["PreventUserExistenceErrors"] == "ENABLED"


def test_uploads_come_from_the_forms_origin_only(template):
    [rule] = template["Resources"]["DataBucket"]["Properties"]["CorsConfiguration"]["CorsRules"]
    assert rule["AllowedOrigins"] == [{"Ref": "AllowedOrigin"}] and rule["AllowedMethods"] == ["POST"]


def test_cors_allows_one_origin(template):
    cors = template["Resources"]["PredictApi"]["Properties"]["Cors"]
    assert cors["AllowOrigin"] == {"Sub": "'${AllowedOrigin}'"}
    assert "*" not in template["Parameters"]["AllowedOrigin"]["Default"]


def test_the_gateways_own_errors_carry_the_forms_cors_headers(template):
    # API Gateway answers 403 (no key) and 429 (throttled) itself; without these
    # headers a browser hides those answers from the form. LocalStack 4.9 ignores
    # gateway responses in an OpenAPI body, so this is checked on the template.
    responses = template["Resources"]["PredictApi"]["Properties"]["GatewayResponses"]
    for kind in ("DEFAULT_4XX", "DEFAULT_5XX"):
        headers = responses[kind]["ResponseParameters"]["Headers"]
        assert headers["Access-Control-Allow-Origin"] == {"Sub": "'${AllowedOrigin}'"}
        assert headers["X-Content-Type-Options"] == "'nosniff'"  # as the function's own answers


def test_drift_runs_on_a_schedule_and_may_touch_only_its_prefixes(template):
    resources = template["Resources"]
    function = resources["DriftFunction"]["Properties"]
    assert function["Handler"] == "handlers.drift.handler"
    assert function["Events"]["Schedule"]["Properties"]["Schedule"] == {"Ref": "DriftSchedule"}
    statements = {s["Sid"]: s for s in function["Policies"][0]["Statement"]}
    assert statements["WriteReportsOnly"] == {"Sid": "WriteReportsOnly", "Effect": "Allow", "Action": "s3:PutObject",
                                              "Resource": {"Sub": "${ModelBucket.Arn}/drift/*"}}
    assert statements["ReadModelsAndCapture"]["Resource"] == [{"Sub": "${ModelBucket.Arn}/models/*"},
                                                              {"Sub": "${ModelBucket.Arn}/capture/*"}]
    predict = {s["Sid"]: s for s in resources["PredictFunction"]["Properties"]["Policies"][0]["Statement"]}
    assert predict["WriteCaptureOnly"]["Resource"] == {"Sub": "${ModelBucket.Arn}/capture/*"}
    assert predict["WriteCaptureOnly"]["Action"] == "s3:PutObject"
    alarm = resources["DriftAlarm"]["Properties"]
    assert (alarm["MetricName"], alarm["Threshold"], alarm["ComparisonOperator"]) == (
        "DriftedFeatures", 0, "GreaterThanThreshold")
    env = function["Environment"]["Variables"]
    assert env["DRIFT_PSI"] == {"Ref": "DriftPsiThreshold"} and env["DRIFT_P_VALUE"] == {"Ref": "DriftPValue"}


def test_a_dropped_file_starts_the_batch_state_machine_whose_workers_write_only_their_parts(template):
    resources = template["Resources"]
    data = resources["DataBucket"]["Properties"]
    assert data["NotificationConfiguration"] == {"EventBridgeConfiguration": {"EventBridgeEnabled": True}}
    work_rule = data["LifecycleConfiguration"]["Rules"][0]
    assert (work_rule["Prefix"], work_rule["ExpirationInDays"]) == ("batch/work/", 2)
    machine = resources["BatchScoringStateMachine"]["Properties"]
    pattern = machine["Events"]["FileDropped"]["Properties"]["Pattern"]
    assert pattern["detail"]["object"]["key"] == [{"prefix": "batch/input/"}]
    assert (pattern["source"], pattern["detail-type"]) == (["aws.s3"], ["Object Created"])
    states = machine["Definition"]["States"]
    for name in ("CountRows", "ScoreParts"):
        assert states[name]["ItemProcessor"]["ProcessorConfig"]["Mode"] == "DISTRIBUTED"
        assert states[name]["MaxConcurrencyPath"] == "$.concurrency"
        assert states[name]["Catch"][0]["Next"] == "Abort"
    scorer = states["ScoreParts"]["ItemProcessor"]["States"]["ScorePart"]
    assert scorer["Parameters"]["Payload"]["attempt.$"] == "$$.State.RetryCount"
    assert scorer["Retry"][0]["MaxAttempts"] >= 1
    assert states["Failed"] == {"Type": "Fail", "Error": "BatchScoringFailed", "CausePath": "$.cause"}
    worker = {s["Sid"]: s for s in resources["BatchWorkerFunction"]["Properties"]["Policies"][0]["Statement"]}
    assert [s["Action"] for s in worker.values()] == ["s3:GetObject"] * 2 + ["s3:PutObject"]
    assert worker["WritePartsOnly"]["Resource"]["Sub"].endswith("/batch/work/*")
    control = {s["Sid"]: s for s in resources["BatchControlFunction"]["Properties"]["Policies"][0]["Statement"]}
    assert control["WriteOutputs"]["Resource"]["Sub"].endswith("/batch/output/*")
    assert control["ReadInputs"]["Action"] == "s3:GetObject"
    env = resources["BatchControlFunction"]["Properties"]["Environment"]["Variables"]
    assert env["BATCH_CONCURRENCY"] == {"Ref": "BatchConcurrency"}
    alarm = resources["BatchFailuresAlarm"]["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/States", "ExecutionsFailed")


def test_the_aws_endpoint_is_set_only_for_sam_local(template):
    """In an account and on LocalStack no AWS_ENDPOINT_URL is set (LocalStack sets its own); `make
    invoke` and `make start-api` pass LocalEndpoint to point the containers at the local cloud."""
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["AWS_ENDPOINT_URL"] == {"If": ["LocalEndpointSet", {"Ref": "LocalEndpoint"}, {"Ref": "AWS::NoValue"}]}
    assert template["Parameters"]["LocalEndpoint"]["Default"] == ""
    assert template["Conditions"]["LocalEndpointSet"] == {"Not": [{"Equals": [{"Ref": "LocalEndpoint"}, ""]}]}
    for name, resource in template["Resources"].items():
        own = resource.get("Properties", {}).get("Environment", {}).get("Variables", {})
        assert "AWS_ENDPOINT_URL" not in own, name


# actions AWS gives no resource-level permissions for (Step Functions' log delivery): "*" is their only resource
RESOURCE_WIDE = {"logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery",
                 "logs:DeleteLogDelivery", "logs:ListLogDeliveries", "logs:PutResourcePolicy",
                 "logs:DescribeResourcePolicies", "logs:DescribeLogGroups"}


def test_every_role_grants_named_actions_on_named_resources_only(template):
    granted = 0
    for name, resource in template["Resources"].items():
        if resource["Type"] not in ("AWS::Serverless::Function", "AWS::Serverless::StateMachine"):  # (a pool's are passwords)
            continue
        for policy in resource.get("Properties", {}).get("Policies", []):
            assert isinstance(policy, dict), f"{name}: a managed policy ({policy}) is broader"
            if "LambdaInvokePolicy" in policy:  # SAM's template: lambda:InvokeFunction on that one function
                assert set(policy) == {"LambdaInvokePolicy"} and "Ref" in policy["LambdaInvokePolicy"]["FunctionName"]
                continue
            for statement in policy["Statement"]:
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                resources = statement["Resource"] if isinstance(statement["Resource"], list) else [
                    statement["Resource"]]
                assert statement["Effect"] == "Allow" and "NotAction" not in statement
                for action in actions:
                    assert "*" not in action, f"{name}: {action} is a wildcard"
                if "*" in resources:
                    assert set(actions) <= RESOURCE_WIDE, f"{name}: {actions} on every resource"
                granted += len(actions)
    assert granted >= 20
