import json

import pytest

from fmlab.run.record import environment, write_json_atomic


def test_atomic_write_replaces_and_a_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "results.json"
    write_json_atomic(path, {"status": "complete", "metrics": {"test/acc": 0.5}})
    assert json.loads(path.read_text())["metrics"]["test/acc"] == 0.5
    circular: dict = {}
    circular["self"] = circular
    with pytest.raises(ValueError):
        write_json_atomic(path, {"status": "complete", "broken": circular})
    assert json.loads(path.read_text())["metrics"]["test/acc"] == 0.5  # untouched
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]  # no temporary left


def test_environment_names_versions_commit_and_hardware():
    env = environment()
    assert env["packages"]["fmlab"] and env["packages"]["lightning"]
    assert env["git"]["commit"] is None or len(env["git"]["commit"]) == 40
    assert env["hardware"]["cpu_count"] >= 1
