"""`make train`'s wrapper: a job that refuses its input ends the command with the job's own exit
status and its one-line reason, not a traceback of the wrapper."""

import subprocess

import pytest

from infra import demo


def test_a_refused_job_exits_with_its_status_and_no_traceback(monkeypatch, tmp_path):
    ran = []
    monkeypatch.setattr(demo.ui, "OPTUNA_STORE", tmp_path / "optuna" / "studies.db")
    monkeypatch.setattr(demo.subprocess, "run",
                        lambda command, **kwargs: ran.append(command) or subprocess.CompletedProcess(command, 2))
    outputs = {"endpoint": "http://127.0.0.1:1", "model_bucket": "b"}
    with pytest.raises(SystemExit) as exited:
        demo.train(outputs, ["--set", "dataset=x.csv"])
    assert exited.value.code == 2
    assert ran[0][1:4] == ["-m", "training", "train"] and ran[0][-2:] == ["--set", "dataset=x.csv"]


def test_a_job_that_succeeds_returns(monkeypatch, tmp_path):
    monkeypatch.setattr(demo.ui, "OPTUNA_STORE", tmp_path / "optuna" / "studies.db")
    monkeypatch.setattr(demo.subprocess, "run", lambda command, **kwargs: subprocess.CompletedProcess(command, 0))
    assert demo.train({"endpoint": "http://127.0.0.1:1", "model_bucket": "b"}, []) is None


class Issuer:
    added: list = []

    def start(self):
        return "pool"

    def add_user(self, pool, user, password):
        Issuer.added.append((pool, user, password))


def test_the_demo_user_keeps_its_password_across_runs(monkeypatch, tmp_path):
    monkeypatch.setattr(demo, "DEMO_FILE", tmp_path / "demo.json")
    monkeypatch.setattr(demo.local_issuer, "Instance", Issuer)
    Issuer.added.clear()
    user, first = demo.console_user()
    assert user == "demo" and len(first) >= 16 and first.endswith("-A1")
    assert demo.console_user()[1] != first  # nothing written yet: a new one each time
    (tmp_path / "demo.json").write_text(f'{{"console_password": "{first}"}}')
    assert demo.console_user() == ("demo", first)
    assert Issuer.added[-1] == ("pool", "demo", first)
