"""`ray job submit --working-dir` against a real local head with a job server."""
import json
import sys

import pytest

from conftest import REPO
from localcluster import local_cluster, submit_and_wait
from wandb_offline import read_run


@pytest.fixture
def ray_head(tmp_path):
    with local_cluster(tmp_path) as head:
        yield head


def test_job_submit_runs_an_experiment(ray_head, tmp_path):
    address, env = ray_head
    runs, wandb_dir = tmp_path / "runs", tmp_path / "wandb"
    preset = tmp_path / "submitted.yaml"
    # A relative plug-in path: it resolves inside the uploaded working dir.
    preset.write_text("experiment: tests/fixture_experiment.py:EXPERIMENT\nitems: 5\n")
    runtime_env = {"env_vars": {"SCALERUN_RUNS_DIR": str(runs), "WANDB_DIR": str(wandb_dir),
                                "WANDB_MODE": "offline", "OMP_WAIT_POLICY": "PASSIVE"}}
    status, logs = submit_and_wait(address, env, [sys.executable, "experiments/run.py", str(preset),
                                                  "progress=lines"], runtime_env, REPO)
    assert "succeeded" in status, status + logs
    assert "[ray] cluster at" in logs  # it joined the head instead of starting Ray
    run_dir = next(runs.glob("submitted/*"))
    rows = [json.loads(x) for x in (run_dir / "results.jsonl").read_text().splitlines()]
    assert sorted(row["unit"]["id"] for row in rows) == list(range(5))
    assert json.loads((run_dir / "summary.json").read_text())["scalars"]["n"] == 5
    wb = read_run(wandb_dir)
    assert wb["config"]["items"] == 5 and wb["summary"]["n"] == 5
