"""A real Ray cluster on this machine for tests: a head with a job server, plus worker nodes.

Every node runs in its own session with free ports under one private temp dir, and is ended
by its own PIDs (never the Ray CLI's stop command, which would kill every Ray process on the machine).
"""
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil

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


def _node_ports():
    agent_grpc, agent_http, metrics, rt_agent, nm, om = free_ports(6)
    return [f"--dashboard-agent-grpc-port={agent_grpc}", f"--dashboard-agent-listen-port={agent_http}",
            f"--metrics-export-port={metrics}", f"--runtime-env-agent-port={rt_agent}",
            f"--node-manager-port={nm}", f"--object-manager-port={om}", "--disable-usage-stats", "--block"]


def _stop(procs, temp_dir):
    for proc in reversed(procs):
        proc.send_signal(signal.SIGTERM)  # --block: ray start stops the processes it started
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.time() + 30
    while processes_mentioning(str(temp_dir)) and time.time() < deadline:
        time.sleep(0.5)
    left = processes_mentioning(str(temp_dir))  # worker nodes' dirs start with it too
    for p in left:
        p.kill()
    assert not left, f"cluster processes outlived the test: {[p.pid for p in left]}"


@contextlib.contextmanager
def local_cluster(log_dir: Path, workers: int = 0, cpus_per_node: int = 2):
    """Yields (dashboard address, env); ends every node and checks none of its processes is left."""
    temp_dir = Path(os.environ["RAY_TMPDIR"]) / f"c{os.getpid()}-{int(time.time() * 1000) % 100000}"
    gcs, dash, client = free_ports(3)
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    procs = []
    log = open(log_dir / "cluster.log", "w")
    try:
        procs.append(subprocess.Popen(
            [RAY, "start", "--head", f"--num-cpus={cpus_per_node}", f"--temp-dir={temp_dir}", f"--port={gcs}",
             "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}",
             f"--ray-client-server-port={client}", *_node_ports()],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        address = f"http://127.0.0.1:{dash}"
        deadline = time.time() + 120
        while subprocess.run([RAY, "job", "list", "--address", address], env=env, capture_output=True).returncode:
            assert procs[0].poll() is None and time.time() < deadline, (log_dir / "cluster.log").read_text()
            time.sleep(1)
        for i in range(workers):
            procs.append(subprocess.Popen(
                [RAY, "start", f"--address=127.0.0.1:{gcs}", f"--num-cpus={cpus_per_node}",
                 f"--temp-dir={temp_dir}-w{i}",  # a node's own runtime_env files, as on real machines
                 f"--resources={json.dumps({f'worker{i}': 1})}", *_node_ports()],
                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        if workers:
            status = ""
            while status.count("node_") < workers + 1:  # wait until every node has joined
                assert time.time() < deadline + 60, status + (log_dir / "cluster.log").read_text()
                time.sleep(1)
                status = subprocess.run([RAY, "status", f"--address=127.0.0.1:{gcs}"], env=env,
                                        capture_output=True, text=True).stdout
        yield address, env
    finally:
        _stop(procs, temp_dir)


def submit_and_wait(address, env, entrypoint, runtime_env, working_dir, timeout=600):
    """Submits a job, waits for it to end; returns (status text, logs)."""
    job_id = f"scalerun-test-{os.getpid()}-{int(time.time())}"
    r = subprocess.run([RAY, "job", "submit", "--address", address, "--working-dir", str(working_dir),
                        "--submission-id", job_id, "--no-wait", "--runtime-env-json", json.dumps(runtime_env),
                        "--", *entrypoint], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    status, deadline = "", time.time() + timeout
    while time.time() < deadline and not any(s in status for s in ("succeeded", "failed", "stopped")):
        time.sleep(2)
        status = subprocess.run([RAY, "job", "status", "--address", address, job_id], env=env,
                                capture_output=True, text=True).stdout.lower()
    logs = subprocess.run([RAY, "job", "logs", "--address", address, job_id], env=env,
                          capture_output=True, text=True).stdout
    return status, logs
