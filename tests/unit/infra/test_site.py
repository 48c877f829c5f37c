"""The console as it is served: frontend/'s pages and Swagger UI from npm, a served config kept."""

import pytest

from infra import site


def test_the_console_is_its_pages_and_swagger_ui_and_keeps_a_served_config(tmp_path):
    dest = tmp_path / "console"
    dest.mkdir()
    (dest / "config.json").write_text('{"api_url": "x"}')
    (dest / "stale.html").write_text("gone")
    built = site.build(dest)
    names = {p.relative_to(built).as_posix() for p in site.files(built)}
    assert {"index.html", "models.html", "api.html", "common.js", "style.css", "config.json",
            "vendor/swagger-ui/swagger-ui-bundle.js", "vendor/swagger-ui/swagger-ui.css"} <= names
    assert "stale.html" not in names and not any(n.startswith("node_modules") for n in names)
    assert (built / "config.json").read_text() == '{"api_url": "x"}'
    for page in ("models.html", "api.html", "index.html"):  # every script and sheet a page names is there
        text = (built / page).read_text()
        for ref in __import__("re").findall(r'(?:src|href)="([^":#]+\.(?:js|css))"', text):
            assert (built / ref).exists(), (page, ref)


def test_without_the_npm_packages_it_says_what_to_run(tmp_path, monkeypatch):
    monkeypatch.setattr(site, "FRONTEND", tmp_path)
    with pytest.raises(SystemExit, match="run `make frontend`"):
        site.build(tmp_path / "console")
