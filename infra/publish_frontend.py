"""Publish the console in an account: its pages and Swagger UI (infra/site.py) plus its
config.json (the API's URL and key) to the private bucket that CloudFront serves
(infra/frontend.yaml).

    python -m infra.publish_frontend API_STACK FRONTEND_STACK

The API key in config.json identifies and throttles the form's callers through
the usage plan; it is not a secret (anyone can read a web page's config). The
batch routes, which write to the data bucket and start paid work, take a signed-in
user's token instead (docs/console.md).
"""

from __future__ import annotations

import json
import mimetypes
import sys
import tempfile
from pathlib import Path

from infra import site


def main() -> int:
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    import boto3

    cfn = boto3.client("cloudformation")
    outputs = {}
    for name in sys.argv[1:]:
        stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
        outputs.update({o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])})
    key = boto3.client("apigateway").get_api_key(apiKey=outputs["ApiKeyId"], includeValue=True)
    region = boto3.session.Session().region_name
    config = {"api_url": outputs["ApiUrl"].rstrip("/"), "api_key": key["value"],
              # the console's sign-in: Cognito's API in the stack's region, the console's app client
              "auth": {"endpoint": f"https://cognito-idp.{region}.amazonaws.com/", "region": region,
                       "client_id": outputs["ConsoleClientId"]}}
    s3 = boto3.client("s3")
    bucket = outputs["FrontendBucketName"]
    with tempfile.TemporaryDirectory() as folder:
        built = site.build(Path(folder) / "site")
        for path in site.files(built):
            key = path.relative_to(built).as_posix()
            content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            s3.put_object(Bucket=bucket, Key=key, Body=path.read_bytes(), ContentType=content_type,
                          CacheControl="max-age=300")
            print(f"uploaded {key}")
    s3.put_object(Bucket=bucket, Key="config.json", Body=json.dumps(config).encode(),
                  ContentType="application/json", CacheControl="no-store")
    print(f"uploaded config.json; the form is at {outputs['FormUrl']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
