"""The local cloud's sign-in: a user pool on moto's Cognito, which issues the same tokens as Cognito.

    python -m infra.local_issuer start    # moto's server on 127.0.0.1:4569, a pool and its app client
    python -m infra.local_issuer stop
    python -m infra.local_issuer status

LocalStack's community edition has no Cognito. moto's does what the console needs:
USER_PASSWORD_AUTH sign-in, ID tokens signed with RS256 whose ``iss`` is the pool's
Cognito URL, and the pool's keys at ``/<pool>/.well-known/jwks.json``. The stack is
deployed with that issuer, the client id as audience and the local JWKS URL
(template.yaml: AuthIssuer, AuthAudience, AuthJwksUrl); in an account the template
makes a real user pool instead. moto keeps its pools in memory: a restarted issuer
has a new pool, and `make demo` deploys again with it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from infra import local_cloud
from infra.console import logger

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
REGION = "us-east-1"
POOL_NAME = "tabular-serverless-console"
log = logger("local-issuer")


@dataclass(frozen=True)
class Pool:
    endpoint: str  # moto's server: Cognito's API (sign-in) and the pool's keys
    pool_id: str
    client_id: str

    @property
    def issuer(self) -> str:
        """What moto writes in ``iss``: the pool's Cognito URL, as in an account."""
        return f"https://cognito-idp.{REGION}.amazonaws.com/{self.pool_id}"

    @property
    def jwks_url(self) -> str:
        return f"{self.endpoint}/{self.pool_id}/.well-known/jwks.json"

    def parameters(self) -> dict[str, str]:
        """template.yaml's parameters for this issuer."""
        return {"AuthIssuer": self.issuer, "AuthAudience": self.client_id, "AuthJwksUrl": self.jwks_url}

    def config(self) -> dict[str, str]:
        """What the console's page needs to sign in (config.json's ``auth``)."""
        return {"endpoint": self.endpoint, "region": REGION, "client_id": self.client_id}


class Instance:
    def __init__(self, port: int | None = None, state_dir: Path | None = None) -> None:
        self.port = port or int(os.environ.get("LOCAL_ISSUER_PORT", "4569"))
        self.dir = Path(state_dir or ROOT / ".local" / "issuer")
        self.pidfile, self.poolfile, self.logfile = (self.dir / "moto.pid", self.dir / "pool.json",
                                                     self.dir / "moto.log")

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.port}"

    def client(self):
        import boto3

        from infra import deploy  # moto takes any credentials: the local cloud's

        return boto3.client("cognito-idp", endpoint_url=self.endpoint, region_name=REGION,
                            aws_access_key_id=deploy.LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=deploy.LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"])

    def is_up(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=1) as response:  # noqa: S310  # nosec B310
                return response.status == 200
        except OSError:
            return False

    def start(self, timeout: float = 30) -> Pool:
        """moto's server (if it is not running) and the console's pool in it (if it is not there)."""
        if not self.is_up():
            self.dir.mkdir(parents=True, exist_ok=True)
            self.poolfile.unlink(missing_ok=True)  # a new server has no pools
            log(f"starting moto's Cognito on {self.endpoint} (log: {self.logfile})")
            with open(self.logfile, "ab") as out:
                process = subprocess.Popen(  # noqa: S603
                    [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(self.port)],
                    stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
            self.pidfile.write_text(str(process.pid))
            started = time.monotonic()
            while not self.is_up():
                if process.poll() is not None or time.monotonic() - started > timeout:
                    raise SystemExit(f"moto's server did not start on {self.endpoint}; see {self.logfile}")
                time.sleep(0.2)
        pool = self.pool()
        if pool is None:
            pool = self._create_pool()
            self.poolfile.write_text(json.dumps(asdict(pool)))
        return pool

    def pool(self) -> Pool | None:
        """The console's pool, when this server has it."""
        try:
            pool = Pool(**json.loads(self.poolfile.read_text()))
            self.client().describe_user_pool_client(UserPoolId=pool.pool_id, ClientId=pool.client_id)
            return pool
        except (OSError, ValueError, TypeError):
            return None
        except Exception:  # noqa: BLE001  # botocore's: the server does not know the pool
            return None

    def _create_pool(self) -> Pool:
        cognito = self.client()
        pool_id = cognito.create_user_pool(
            PoolName=POOL_NAME, AdminCreateUserConfig={"AllowAdminCreateUserOnly": True},
        )["UserPool"]["Id"]
        client_id = cognito.create_user_pool_client(
            UserPoolId=pool_id, ClientName="console", GenerateSecret=False,
            ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
        )["UserPoolClient"]["ClientId"]
        log(f"user pool {pool_id}, app client {client_id}")
        return Pool(self.endpoint, pool_id, client_id)

    def add_user(self, pool: Pool, username: str, password: str) -> None:
        """A user who signs in with this password (made anew if it exists)."""
        cognito = self.client()
        with contextlib.suppress(cognito.exceptions.UsernameExistsException):
            cognito.admin_create_user(UserPoolId=pool.pool_id, Username=username, MessageAction="SUPPRESS")
        cognito.admin_set_user_password(UserPoolId=pool.pool_id, Username=username, Password=password,
                                        Permanent=True)

    def sign_in(self, pool: Pool, username: str, password: str) -> dict[str, str]:
        """Cognito's USER_PASSWORD_AUTH, as the console's page does it: IdToken, AccessToken..."""
        return self.client().initiate_auth(
            ClientId=pool.client_id, AuthFlow="USER_PASSWORD_AUTH",
            AuthParameters={"USERNAME": username, "PASSWORD": password})["AuthenticationResult"]

    def stop(self) -> None:
        try:
            pid = int(self.pidfile.read_text())
        except (OSError, ValueError):
            pid = None
        if pid:
            local_cloud._kill_tree(pid)
            log(f"stopped moto's Cognito on {self.endpoint}")
        self.pidfile.unlink(missing_ok=True)
        self.poolfile.unlink(missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["start", "stop", "status"])
    args = parser.parse_args()
    issuer = Instance()
    if args.command == "start":
        print(json.dumps(asdict(issuer.start())))
    elif args.command == "stop":
        issuer.stop()
    else:
        print(json.dumps({"endpoint": issuer.endpoint, "up": issuer.is_up(),
                          "pool": asdict(issuer.pool()) if issuer.pool() else None}))


if __name__ == "__main__":
    main()
