"""What the browser tests share: the console built and served as `make demo` serves it, at the
origin the API allows; Chromium; and axe-core, the accessibility checker, injected into a page."""

import json
import os
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import FORM_PORT, ROOT

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
# Flags for a machine without a display or internet access.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def site(stack, trained, trained_penguins, tmp_path_factory):
    """The console (infra/site.py) served as `make demo` serves it, at the origin the API allows."""
    from infra import site as console

    root = console.build(tmp_path_factory.mktemp("site") / "console")
    server = ThreadingHTTPServer(("127.0.0.1", FORM_PORT), partial(QuietHandler, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root
    server.shutdown()
    server.server_close()


def configure(site: Path, stack, with_key=True):
    config = {"api_url": stack["api_url"], "auth": stack["auth"]}
    if with_key:
        config["api_key"] = stack["api_key"]
    (site / "config.json").write_text(json.dumps(config))


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), f"Chromium is missing at {CHROMIUM}: run `make browser`"
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


AXE = ROOT / "frontend" / "node_modules" / "axe-core" / "axe.min.js"
SERIOUS = {"serious", "critical"}


def axe(page) -> list[dict]:
    """axe-core's serious and critical violations on the page as it is now (WCAG 2 A and AA rules)."""
    assert AXE.exists(), f"axe-core is missing at {AXE}: run `make frontend`"
    page.add_script_tag(path=str(AXE))
    found = page.evaluate("""async () => (await axe.run(document, {runOnly: {type: "tag",
        values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}})).violations""")
    return [{"id": v["id"], "impact": v["impact"], "help": v["help"],
             "nodes": [n["target"] for n in v["nodes"]][:5]} for v in found if v["impact"] in SERIOUS]
