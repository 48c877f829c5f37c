"""The API under load, as Locust drives it (run by benchmarks/load/run.py, which says how).

Each simulated client picks one of the served models and asks it, in turn, for predictions of a
few of its example rows (three times in four) or their explanations. Every status is counted;
429 (the gateway's throttling) is an answer the client expects, anything but 200 and 429 a
failure. The counts are written to LOAD_STATUSES_FILE when the run ends.
"""

import json
import os
import random

from locust import HttpUser, between, events, task

STATUSES: dict[str, int] = {}
MODELS: list[dict] = json.loads(os.environ["LOAD_MODELS"])  # [{"name", "instances"}]
KEY = os.environ["LOAD_API_KEY"]


class ApiClient(HttpUser):
    wait_time = between(0.0, 0.1)

    def on_start(self) -> None:
        self.model = random.choice(MODELS)  # noqa: S311  # nosec B311 - load, not security

    def ask(self, route: str) -> None:
        rows = self.model["instances"][: random.randint(1, 3)]  # noqa: S311  # nosec B311
        name = self.model["name"]
        with self.client.post(f"/models/{name}/{route}", json={"instances": rows},
                              headers={"x-api-key": KEY}, name=f"/models/[name]/{route}",
                              catch_response=True) as response:
            STATUSES[str(response.status_code)] = STATUSES.get(str(response.status_code), 0) + 1
            if response.status_code in (200, 429):
                response.success()
            else:
                response.failure(f"{response.status_code}: {response.text[:200]}")

    @task(3)
    def predict(self) -> None:
        self.ask("predict")

    @task(1)
    def explain(self) -> None:
        self.ask("explain")


@events.quitting.add_listener
def _write_statuses(environment, **_) -> None:
    with open(os.environ["LOAD_STATUSES_FILE"], "w") as out:
        json.dump(STATUSES, out)
