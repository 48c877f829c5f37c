"""Write the API Gateway events in events/ from `sam local generate-event`.

    make install && .venv/bin/python events/generate.py

Each event is the SAM CLI's own aws-proxy event (base64 body included), with
the route, method and body of one call to this API. The unit tests feed these
files to the handler; `make invoke FUNCTION=PredictFunction EVENT=events/predict.json` runs
them through `sam local invoke` on Docker (infra/sam_local.py). The batch and drift events
(batch-plan.json, drift-schedule.json) are written by hand.
"""

import base64
import json
import subprocess
from pathlib import Path

HERE = Path(__file__).parent
SAM = str(HERE.parent / ".local" / "tools" / "sam" / "bin" / "sam")  # `make install` puts it there

# one held-out breast cancer row (sklearn's data set, row 0 of the test split of seed 42)
ROW = {
    "mean radius": 12.47, "mean texture": 18.6, "mean perimeter": 81.09, "mean area": 481.9,
    "mean smoothness": 0.09965, "mean compactness": 0.1058, "mean concavity": 0.08005,
    "mean concave points": 0.03821, "mean symmetry": 0.1925, "mean fractal dimension": 0.06373,
    "radius error": 0.3961, "texture error": 1.044, "perimeter error": 2.497, "area error": 30.29,
    "smoothness error": 0.006953, "compactness error": 0.01911, "concavity error": 0.02701,
    "concave points error": 0.01037, "symmetry error": 0.01782, "fractal dimension error": 0.003586,
    "worst radius": 14.97, "worst texture": 24.64, "worst perimeter": 96.05, "worst area": 677.9,
    "worst smoothness": 0.1426, "worst compactness": 0.2378, "worst concavity": 0.2671,
    "worst concave points": 0.1015, "worst symmetry": 0.3014, "worst fractal dimension": 0.0875,
}

EVENTS = {
    "health": ("GET", "/health", None),
    "model": ("GET", "/model", None),
    "predict": ("POST", "/predict", {"instances": [ROW]}),
    "predict-positional": ("POST", "/predict", {"features": [list(ROW.values())]}),
    "predict-invalid": ("POST", "/predict", {"instances": [{**ROW, "mean radius": "large"}]}),
}


def generate(method: str, path: str, body) -> dict:
    raw = subprocess.run(  # noqa: S603
        [SAM, "local", "generate-event", "apigateway", "aws-proxy", "--method", method,
         "--path", path.lstrip("/"), "--resource", path, "--stage", "v1"],
        check=True, capture_output=True, text=True,
    ).stdout
    event = json.loads(raw)
    event["requestContext"]["resourcePath"] = path
    event["requestContext"]["path"] = f"/v1{path}"
    event["requestContext"]["httpMethod"] = method
    event["pathParameters"] = None
    event["queryStringParameters"] = None
    event["multiValueQueryStringParameters"] = None
    if body is None:
        event["body"], event["isBase64Encoded"] = None, False
    else:
        event["body"] = base64.b64encode(json.dumps(body).encode()).decode()
        event["isBase64Encoded"] = True
        event["headers"]["Content-Type"] = "application/json"
        event["multiValueHeaders"]["Content-Type"] = ["application/json"]
    return event


if __name__ == "__main__":
    for name, (method, path, body) in EVENTS.items():
        (HERE / f"{name}.json").write_text(json.dumps(generate(method, path, body), indent=2) + "\n")
        print(f"events/{name}.json")
