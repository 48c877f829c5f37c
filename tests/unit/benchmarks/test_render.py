"""The results page is rendered from the result files: a load run's figures come from its file."""

import json

from benchmarks import render


def test_a_load_run_is_rendered_from_its_file_with_its_statuses_and_latencies(tmp_path):
    document = {
        "kind": "load",
        "run": {"date": "2030-01-02", "finished": "2030-01-02T03:04:05+00:00", "commit": "abc1234",
                "settings": {"clients": 64, "minutes": 10.0, "promote_every_s": 30.0, "models": ["a", "b"]}},
        "machine": {"cores": 2, "memory_gib": 23.5},
        "statuses": {"200": 12345, "429": 7},
        "latency": {"all": {"requests": 12352, "requests_per_s": 20.6, "p50_ms": 810.0, "p99_ms": 2900.0,
                            "max_ms": 4100.5}},
        "promotions": 19,
        "environments": {"max": 63, "median": 60},
    }
    (tmp_path / "2030-01-02-abc1234-load.json").write_text(json.dumps(document))
    page = render.render(tmp_path)
    assert "## The API under load: `make load`" in page
    assert "64 clients for 10 minutes on a, b" in page and "(19 in all)" in page
    assert "200: 12,345, 429: 7" in page
    assert "| all | 12,352 | 20.6 | 810 | 2,900 | 4,100.5 |" in page
    assert "at most 63, median 60" in page


def test_without_a_load_file_the_page_has_no_load_section(tmp_path):
    assert "make load" not in render.render(tmp_path)


def test_the_training_page_says_how_the_runs_shared_the_machine():
    from benchmarks import render

    assert render.cores({"threads": 1}) == "1 core"
    assert render.cores({"threads": 2}) == "2 cores"
    assert render.side_by_side({"parallel": 2, "runs_minutes": 71.4}) == (
        " (2 runs side by side, each pinned to its own cores, all runs in 71.4 min)")
    assert render.side_by_side({"parallel": 1}) == " (one run at a time)"
    assert render.side_by_side({}) == " (one run at a time)"  # files from before runs went side by side
