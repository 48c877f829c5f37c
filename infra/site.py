"""The console's files as a browser gets them: frontend/'s pages, and Swagger UI from the npm
registry (frontend/package.json) for the API reference, never from a CDN.

`make demo` serves the folder on loopback, the browser tests serve it the same way, and
``infra.publish_frontend`` uploads it to an account's bucket. ``config.json`` (the API's URL and
the form's key) is written beside it by whoever serves it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FRONTEND = ROOT / "frontend"
PAGES = ("*.html", "*.js", "*.css")
# what the API reference loads, from the installed swagger-ui-dist
VENDOR = {"swagger-ui/swagger-ui-bundle.js": "swagger-ui-dist/swagger-ui-bundle.js",
          "swagger-ui/swagger-ui.css": "swagger-ui-dist/swagger-ui.css",
          "swagger-ui/LICENSE": "swagger-ui-dist/LICENSE"}


def build(dest: Path) -> Path:
    """The console in ``dest`` (emptied first, its config.json kept): pages, then vendor/."""
    modules = FRONTEND / "node_modules"
    missing = [source for source in VENDOR.values() if not (modules / source).exists()]
    if missing:
        raise SystemExit(f"{', '.join(missing)} missing under frontend/node_modules: run `make frontend`")
    config = dest / "config.json"
    kept = config.read_bytes() if config.exists() else None
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    for pattern in PAGES:
        for page in FRONTEND.glob(pattern):
            shutil.copy2(page, dest / page.name)
    for target, source in VENDOR.items():
        (dest / "vendor" / target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(modules / source, dest / "vendor" / target)
    if kept is not None:
        config.write_bytes(kept)
    return dest


def files(site: Path) -> list[Path]:
    """Every file of a built console, in a stable order (what an upload sends)."""
    return sorted(path for path in site.rglob("*") if path.is_file())
