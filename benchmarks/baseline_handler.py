"""The baseline: a handler in the style of AWS's SAM ML templates (apigw-xgboost).

Native CatBoost, the model fetched from S3 with boto3 and loaded at module
scope, JSON in and out. It is what the benchmark compares the project's handler to.
"""

import base64
import json
import os

import boto3
from catboost import CatBoostClassifier

s3 = boto3.client("s3")
# /tmp is where a Lambda function may write, as the SAM ML templates do
s3.download_file(os.environ["MODEL_BUCKET"], os.environ["BASELINE_MODEL_KEY"], "/tmp/model.cbm")  # noqa: S108  # nosec B108
model = CatBoostClassifier()
model.load_model("/tmp/model.cbm")  # noqa: S108  # nosec B108
features = model.feature_names_
classes = [str(c) for c in model.classes_]


def handler(event, context):
    body = event["body"]
    if event.get("isBase64Encoded"):
        body = base64.b64decode(body)
    instances = json.loads(body)["instances"]
    rows = [[row[name] for name in features] for row in instances]
    proba = model.predict_proba(rows)
    predictions = [
        {"label": classes[int(p.argmax())], "probabilities": dict(zip(classes, map(float, p), strict=False))}
        for p in proba
    ]
    return {"statusCode": 200, "body": json.dumps({"predictions": predictions})}
