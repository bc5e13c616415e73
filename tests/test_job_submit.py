"""`ray job submit --working-dir` against a real local head with a job server.

The head runs in its own session with its own temp dir and free ports; it is ended by its
own PIDs (never `ray stop`, which would kill every Ray process on the machine).
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from conftest import REPO
from wandb_offline import read_run

RAY = str(Path(sys.executable).parent / "ray")


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def processes_mentioning(text):
    out = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if any(text in c for c in (p.info["cmdline"] or [])):
                out.append(p)
        except psutil.Error:
            pass
    return out


@pytest.fixture
def ray_head(tmp_path):
    temp_dir = Path(os.environ["RAY_TMPDIR"]) / f"head{os.getpid()}"
    gcs, dash, client, agent_grpc, agent_http, metrics, rt_agent, nm, om = free_ports(9)
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    cmd = [RAY, "start", "--head", "--block", "--num-cpus=2", f"--temp-dir={temp_dir}",
           f"--port={gcs}", "--include-dashboard=true", "--dashboard-host=127.0.0.1",
           f"--dashboard-port={dash}", f"--ray-client-server-port={client}",
           f"--dashboard-agent-grpc-port={agent_grpc}", f"--dashboard-agent-listen-port={agent_http}",
           f"--metrics-export-port={metrics}", f"--runtime-env-agent-port={rt_agent}",
           f"--node-manager-port={nm}", f"--object-manager-port={om}", "--disable-usage-stats"]
    log = open(tmp_path / "head.log", "w")
    head = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    address = f"http://127.0.0.1:{dash}"
    deadline = time.time() + 120
    while time.time() < deadline:
        r = subprocess.run([RAY, "job", "list", "--address", address], env=env, capture_output=True)
        if r.returncode == 0:
            break
        assert head.poll() is None, (tmp_path / "head.log").read_text()
        time.sleep(1)
    else:
        pytest.fail("job server did not come up:\n" + (tmp_path / "head.log").read_text())
    yield address, env
    head.send_signal(signal.SIGTERM)  # --block: ray start stops the processes it started
    try:
        head.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(head.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    deadline = time.time() + 30
    while processes_mentioning(str(temp_dir)) and time.time() < deadline:
        time.sleep(0.5)
    left = processes_mentioning(str(temp_dir))
    for p in left:
        p.kill()
    assert not left, f"head processes outlived the test: {[p.pid for p in left]}"


def test_job_submit_runs_an_experiment(ray_head, tmp_path):
    address, env = ray_head
    runs, wandb_dir = tmp_path / "runs", tmp_path / "wandb"
    preset = tmp_path / "submitted.yaml"
    # A relative plug-in path: it resolves inside the uploaded working dir.
    preset.write_text("experiment: tests/fixture_experiment.py:EXPERIMENT\nitems: 5\n")
    runtime_env = {"env_vars": {"SCALERUN_RUNS_DIR": str(runs), "WANDB_DIR": str(wandb_dir),
                                "WANDB_MODE": "offline", "OMP_WAIT_POLICY": "PASSIVE"}}
    job_id = f"scalerun-test-{os.getpid()}"
    r = subprocess.run([RAY, "job", "submit", "--address", address, "--working-dir", str(REPO),
                        "--submission-id", job_id, "--no-wait",
                        "--runtime-env-json", json.dumps(runtime_env), "--",
                        sys.executable, "experiments/run.py", str(preset), "progress=lines"],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    status, deadline = "", time.time() + 300
    while time.time() < deadline and not any(s in status for s in ("succeeded", "failed", "stopped")):
        time.sleep(2)
        status = subprocess.run([RAY, "job", "status", "--address", address, job_id], env=env,
                                capture_output=True, text=True).stdout.lower()
    logs = subprocess.run([RAY, "job", "logs", "--address", address, job_id], env=env,
                          capture_output=True, text=True).stdout
    assert "succeeded" in status, status + logs
    assert "[ray] cluster at" in logs  # it joined the head instead of starting Ray
    run_dir = next(runs.glob("submitted/*"))
    rows = [json.loads(x) for x in (run_dir / "results.jsonl").read_text().splitlines()]
    assert sorted(row["unit"]["id"] for row in rows) == list(range(5))
    assert json.loads((run_dir / "summary.json").read_text())["scalars"]["n"] == 5
    wb = read_run(wandb_dir)
    assert wb["config"]["items"] == 5 and wb["summary"]["n"] == 5
