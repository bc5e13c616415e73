"""Speedrun trainer: early-stop rules, crashing/hanging/NaN scripts, no orphan processes, and
records run under torchrun (1 process, and 2 gloo processes) by the Ray trainer actor."""
import math
import os
import re
import subprocess
import sys
import textwrap
import time

import psutil
import pytest
import yaml

from orchestrator.speedrun.job import StopRules, run_job, stop_reason
from orchestrator.speedrun.logparse import LogParser
from orchestrator.speedrun.records import load_record


# A fake training script: prints val losses from VALS every tick, then does END.
FAKE = textwrap.dedent("""\
    import os, subprocess, sys, time
    VALS = {vals}
    for i, v in enumerate(VALS):
        print(f"step:{{i * 10}}/{{len(VALS) * 10}} val_loss:{{v}} train_time:{{i * 1000}}ms step_avg:100.00ms", flush=True)
        time.sleep({tick})
    {end}
    """)

SPAWN_CHILD = """child = subprocess.Popen([sys.executable, "-c", {code!r}], start_new_session={setsid})
print(f"child_pid:{{child.pid}}", flush=True)
time.sleep(1.5)  # let the runner's tree scan see the child
"""
IGNORE_TERM = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"


def fake_script(tmp_path, vals, end="", tick=0.05, name="train.py"):
    path = tmp_path / name
    path.write_text(FAKE.format(vals=vals, tick=tick, end=end))
    return path


def pids_in_log(log_path, key):
    return [int(m) for m in re.findall(rf"{key}:(\d+)", open(log_path).read())]


def assert_gone(pids):
    for pid in pids:
        try:
            p = psutil.Process(pid)
            assert p.status() == psutil.STATUS_ZOMBIE, f"process {pid} survived: {p.cmdline()}"
        except psutil.NoSuchProcess:
            pass


def run(tmp_path, vals, end="", tick=0.05, **rules):
    script = fake_script(tmp_path, vals, end, tick)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return run_job([sys.executable, str(script)], env, tmp_path / "log.txt",
                   StopRules(**{"target": 2.0, **rules}), grace_s=1.0)


# ---- stop rules on a parser, no processes ----

def parsed(*lines, target=2.0):
    p = LogParser(target)
    for line in lines:
        p.feed(line)
    return p


def test_stop_rules():
    rules = StopRules(target=2.0, beat_time_ms=5000, timeout_s=60)
    assert stop_reason(rules, parsed("step:10/100 val_loss:3.0 train_time:1000ms step_avg:1ms"), 1.0) is None
    assert stop_reason(rules, parsed("step:10/100 val_loss:1.9 train_time:1000ms step_avg:1ms"), 1.0) == "target_reached"
    assert stop_reason(StopRules(target=2.0, stop_at_target=False),
                       parsed("step:10/100 val_loss:1.9 train_time:1000ms step_avg:1ms"), 1.0) is None
    assert stop_reason(rules, parsed("step:10/100 val_loss:nan train_time:1000ms step_avg:1ms"), 1.0) == "nan"
    assert stop_reason(rules, parsed("step:11/100 train_loss:inf train_time:1000ms step_avg:1ms"), 1.0) == "nan"
    assert stop_reason(rules, parsed("step:0/100 val_loss:3.0 train_time:0ms step_avg:1ms",
                                     "step:10/100 val_loss:4.1 train_time:1000ms step_avg:1ms"), 1.0) == "diverged"
    assert stop_reason(rules, parsed("step:0/100 val_loss:3.0 train_time:0ms step_avg:1ms",
                                     "step:10/100 val_loss:3.9 train_time:1000ms step_avg:1ms"), 1.0) is None
    assert stop_reason(rules, parsed("step:50/100 train_time:5000ms step_avg:1ms"), 1.0) == "cannot_beat"
    assert stop_reason(rules, parsed("step:49/100 train_time:4999ms step_avg:1ms"), 1.0) is None
    assert stop_reason(rules, parsed(), 60.0) == "timeout"


# ---- real processes, no Ray ----

def test_target_reached_stops_early(tmp_path):
    r = run(tmp_path, [4.0, 3.0, 1.9, 1.5, 1.2], tick=0.3)
    assert (r["reason"], r["status"]) == ("target_reached", "ok")
    assert r["steps_to_target"] == 20 and r["time_to_target_ms"] == 2000.0
    assert [p["step"] for p in r["steps"]][:3] == [0, 10, 20]
    assert r["wall_s"] < 2.5  # stopped at the third point, not after all five
    assert "val_loss:1.9" in open(r["log_path"]).read()


def test_missed_target_and_crash(tmp_path):
    r = run(tmp_path, [4.0, 3.0])
    assert (r["reason"], r["status"], r["returncode"]) == ("missed_target", "failed", 0)
    assert r["final_val_loss"] == 3.0
    r = run(tmp_path, [4.0, 3.0], end="raise RuntimeError('boom')")
    assert (r["reason"], r["status"]) == ("crashed", "failed") and r["returncode"] == 1
    assert "RuntimeError: boom" in open(r["log_path"]).read()


def test_nan_and_diverging(tmp_path):
    r = run(tmp_path, [4.0, "nan", 3.0], tick=0.3)
    assert (r["reason"], r["status"]) == ("nan", "failed") and r["wall_s"] < 1.5
    assert math.isnan(r["final_val_loss"])
    r = run(tmp_path, [4.0, 2.5, 5.0, 1.0], tick=0.3)
    assert r["reason"] == "diverged" and r["final_val_loss"] == 5.0 and r["steps_to_target"] is None


def test_cannot_beat(tmp_path):
    r = run(tmp_path, [4.0, 3.0, 2.5, 2.1, 1.0], tick=0.2, beat_time_ms=3000)
    assert (r["reason"], r["status"]) == ("cannot_beat", "failed")
    assert r["final_train_time_ms"] == 3000.0


@pytest.mark.parametrize("setsid", [False, True])
def test_hanging_script_times_out_without_orphans(tmp_path, setsid):
    # The script starts a child that ignores SIGTERM (and, with setsid, leaves the process group).
    end = SPAWN_CHILD.format(code=IGNORE_TERM, setsid=setsid) + "time.sleep(600)"
    r = run(tmp_path, [4.0], end=end, timeout_s=3.0)
    assert (r["reason"], r["status"]) == ("timeout", "failed")
    assert 3.0 <= r["wall_s"] < 12.0
    children = pids_in_log(r["log_path"], "child_pid")
    assert len(children) == 1
    assert_gone(children)


def test_crash_leaving_a_detached_child_leaves_no_orphan(tmp_path):
    # The child leaves the process group and outlives its parent: only the remembered tree finds it.
    end = SPAWN_CHILD.format(code=IGNORE_TERM, setsid=True) + "raise SystemExit(3)"
    r = run(tmp_path, [4.0], end=end, timeout_s=30.0)
    assert (r["reason"], r["returncode"]) == ("crashed", 3)
    assert r["wall_s"] < 12.0
    assert_gone(pids_in_log(r["log_path"], "child_pid"))


def test_stop_event(tmp_path):
    import threading
    stop = threading.Event()
    threading.Timer(1.0, stop.set).start()
    script = fake_script(tmp_path, [4.0], end="time.sleep(600)")
    t0 = time.monotonic()
    r = run_job([sys.executable, str(script)], dict(os.environ), tmp_path / "log.txt", StopRules(target=2.0),
                stop_event=stop, grace_s=1.0)
    assert r["reason"] == "stopped" and time.monotonic() - t0 < 5


# ---- Ray trainer actor under torchrun ----

DIST = textwrap.dedent("""\
    import os, time
    import torch, torch.distributed as dist
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    print(f"rank_pid:{os.getpid()}", flush=True)
    x = torch.ones(1) * (rank + 1)
    dist.all_reduce(x)
    assert x.item() == world * (world + 1) / 2
    for step, v in enumerate([3.0, 2.5, 1.9, 1.5]):
        dist.barrier()
        if rank == 0:
            print(f"step:{step}/4 val_loss:{v / world * 2:.4f} train_time:{step * 100}ms step_avg:100.00ms", flush=True)
        time.sleep(float(os.environ.get("TICK", "0.1")))
    dist.destroy_process_group()
    """)


@pytest.fixture(scope="module")
def ray_session():
    import ray
    # Ray's temp dir comes from RAY_TMPDIR, a private short folder set in conftest.py
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def write_record(tmp_path, script_text, nproc, target=2.0):
    (tmp_path / "dist.py").write_text(script_text)
    spec = {"script": "dist.py", "target_val_loss": target, "launch": {"nproc_per_node": nproc}}
    (tmp_path / "dist.yaml").write_text(yaml.safe_dump(spec))
    return load_record(tmp_path / "dist.yaml")


def test_computing_actors_and_the_jobs_they_start_run_at_niceness_0(ray_session):
    """Ray starts its workers at niceness 15, behind its daemons and the driver; a model replica,
    a trainer and the training processes it starts must not be (a timed region would slow down)."""
    from actors.placement import ModelPlacement, replica_options
    from actors.trainer import TrainerActor

    class NicenessProbe:  # defined here: Ray's workers cannot import a test module
        def niceness(self) -> int:
            return os.nice(0)

    def child_niceness(stop, on_point) -> dict:  # a trainer job: the niceness of a process it starts
        out = subprocess.run([sys.executable, "-c", "import os; print(os.nice(0))"], capture_output=True, text=True)
        return {"niceness": int(out.stdout)}

    plain = ray_session.remote(NicenessProbe).options(num_cpus=0).remote()
    assert ray_session.get(plain.niceness.remote()) == 15, "Ray's own default changed: revisit computing_runtime_env"
    replica = ray_session.remote(NicenessProbe).options(**replica_options(ModelPlacement(num_cpus=0), 0)).remote()
    assert ray_session.get(replica.niceness.remote()) == 0
    trainer = TrainerActor.options(num_cpus=0).remote()
    assert ray_session.get(trainer.run.remote(child_niceness))["niceness"] == 0


@pytest.mark.slow
def test_actor_two_process_gloo_run(tmp_path, ray_session):
    from orchestrator.speedrun.launch import RecordRun, record_placement_group
    record = write_record(tmp_path, DIST, nproc=2)
    pg = record_placement_group(record)
    ray_session.get(pg.ready(), timeout=30)
    assert pg.bundle_specs == [{"CPU": 2.0}]
    r = RecordRun(record, pg, tmp_path / "logs", rules=StopRules(target=2.0, stop_at_target=False, timeout_s=120)).wait()
    ray_session.util.remove_placement_group(pg)
    # world 2: losses printed as v (3.0, 2.5, 1.9, 1.5); first at or below 2.0 is step 2
    assert (r["reason"], r["status"], r["returncode"]) == ("target_reached", "ok", 0), open(r["log_path"]).read()
    assert r["steps_to_target"] == 2 and r["time_to_target_ms"] == 200.0
    assert [p["val_loss"] for p in r["steps"]] == [3.0, 2.5, 1.9, 1.5]
    ranks = pids_in_log(r["log_path"], "rank_pid")
    assert len(ranks) == 2
    assert_gone(ranks)


@pytest.mark.slow
def test_actor_stop_kills_torchrun_tree(tmp_path, ray_session):
    from orchestrator.speedrun.launch import RecordRun, record_placement_group
    record = write_record(tmp_path, DIST.replace('dist.destroy_process_group()', 'time.sleep(600)'), nproc=1,
                          target=0.5)
    pg = record_placement_group(record)
    ray_session.get(pg.ready(), timeout=30)
    job = RecordRun(record, pg, tmp_path / "logs", rules=StopRules(target=0.5, timeout_s=120), env={"TICK": "0.2"})
    deadline = time.monotonic() + 60
    while len(job.progress()) < 4 and time.monotonic() < deadline:  # live points reach the driver
        time.sleep(0.2)
    assert [p["val_loss"] for p in job.progress()] == pytest.approx([6.0, 5.0, 3.8, 3.0])
    job.stop()
    r = job.wait()
    ray_session.util.remove_placement_group(pg)
    assert (r["reason"], r["status"]) == ("stopped", "failed")
    assert r["wall_s"] < 60
    ranks = pids_in_log(r["log_path"], "rank_pid")
    assert len(ranks) == 1
    assert_gone(ranks)


@pytest.mark.slow
def test_replay_interleaves_retries_and_summarizes(tmp_path, ray_session):
    from orchestrator.speedrun.replay import replay, summarize_replay
    folder = tmp_path / "ladder"
    folder.mkdir()
    for stem, order, end in (("a_slow", 1, ""), ("b_fast", 2, ""), ("c_broken", 3, "raise SystemExit(2)")):
        vals = [4.0, 3.0, 1.5] if stem == "a_slow" else [4.0, 1.5]
        if end:
            vals = [4.0]
        # a_slow runs long enough (3 x 0.5 s) for the live progress poll to see its points
        fake_script(folder, vals, end=end, tick=0.5 if stem == "a_slow" else 0.05, name=f"{stem}.py")
        (folder / f"{stem}.yaml").write_text(yaml.safe_dump(
            {"order": order, "script": f"{stem}.py", "target_val_loss": 2.0, "launch": {"launcher": "python"}}))
    from orchestrator.speedrun.records import load_records
    from orchestrator.speedrun.stats import interleaved_order
    records = load_records(folder)
    runs = [(name, rep, rep, "timed") for name, rep in interleaved_order([r.name for r in records], 2)]
    progress = []
    results = [result for _, result in replay(runs, {r.name: r for r in records}, tmp_path / "logs", retries=1,
                                              timeout_s=60, on_progress=lambda key, pts: progress.append(key),
                                              poll_s=0.2)]
    names = [r["record"].split("/")[1] for r in results]
    # interleaved rounds (a b c, c b a); the broken record is retried once right away, and only
    # its last attempt is reported
    assert names == ["a_slow", "b_fast", "c_broken", "c_broken", "b_fast", "a_slow"]
    assert [r["attempt"] for r in results if "c_broken" in r["record"]] == [1, 1]
    assert [r["seed"] for r in results] == [0, 0, 0, 1, 1, 1]
    assert progress, "no live validation points were reported"
    summary = summarize_replay(results, records)
    rows = {row["record"].split("/")[1]: row for row in summary["records"]}
    assert rows["a_slow"]["steps_to_target"]["mean"] == 20 and rows["b_fast"]["steps_to_target"]["mean"] == 10
    assert rows["a_slow"]["time_to_target_s"]["mean"] == 2.0 and rows["b_fast"]["time_to_target_s"]["mean"] == 1.0
    assert (rows["c_broken"]["runs"], rows["c_broken"]["ok"]) == (2, 0)
    assert summary["speedups"][0]["ratio"] == pytest.approx(2.0)
    assert summary["speedups"][1]["ratio"] is None
