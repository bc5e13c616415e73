"""What a speedrun record claim rests on: acceptance on full-length runs, positive intervals on
times, FSR that counts misses, and integrity checked before anything runs."""
import os
import sys
import threading

import pytest
import yaml

import orchestrator.sandbox as sandbox_module
from orchestrator.cli import main
from orchestrator.sandbox import SandboxConfig
from orchestrator.speedrun.fsr import fsr_over_runs
from orchestrator.speedrun.job import StopRules, run_job
from orchestrator.speedrun.launch import NodeJob
from orchestrator.speedrun.records import load_record
from orchestrator.speedrun.replay import seconds_to_target, summarize_replay
from orchestrator.speedrun.stats import summarize_positive


def run(record, mode, repeat, final, ttt=1000.0):
    return {"record": record, "mode": mode, "repeat": repeat, "status": "ok", "time_to_target_ms": ttt,
            "steps_to_target": 40, "final_val_loss": final}


class Rec:
    def __init__(self, name, target=2.3):
        self.name, self.target_val_loss = name, target


def test_acceptance_reads_only_full_length_runs():
    # Timed runs stop at the target, so their final loss is at most it by construction.
    timed = [run("a", "timed", i, 2.29) for i in range(5)]
    full = [run("a", "full", i, loss) for i, loss in enumerate((2.36, 2.34, 2.35))]
    (row,) = summarize_replay(timed + full, [Rec("a")])["records"]
    assert row["acceptance"]["n"] == 3 and row["acceptance"]["mean"] == pytest.approx(2.35)
    assert not row["acceptance"]["accepted"]
    assert row["time_to_target_s"]["n"] == 8  # times come from runs of both kinds
    (none,) = summarize_replay(timed, [Rec("a")])["records"]
    assert none["acceptance"] is None  # no full-length run: no test, not a pass


def test_time_intervals_are_positive_and_on_the_log_scale():
    t = summarize_positive([60.0, 78.0])
    assert 0 < t["ci_low"] < t["geomean"] < t["ci_high"]
    assert t["geomean"] == pytest.approx((60 * 78) ** 0.5)
    assert t["ci_high"] / t["geomean"] == pytest.approx(t["geomean"] / t["ci_low"])  # symmetric in log


def test_fsr_counts_a_miss_as_zero():
    always = fsr_over_runs([2.0] * 4, [1.0] * 4, [1.5] * 4)
    once = fsr_over_runs([2.0] * 4, [1.0] * 4, [1.5, None, None, None])
    assert always["fsr"] == 0.5 and once["fsr"] == pytest.approx(0.125) and once["misses"] == 3
    assert once["ci_low"] <= once["fsr"] <= once["ci_high"] <= 0.5
    noisy = fsr_over_runs([2.0, 2.2, 1.8], [1.0, 1.1, 0.9], [1.4, 1.6, 1.5], seed=1)
    assert noisy["ci_low"] < noisy["fsr"] < noisy["ci_high"]


def test_a_script_breaking_the_records_rules_never_runs(tmp_path):
    marker = tmp_path / "ran"
    record_script = "val_every = 5\nimport pathlib\npathlib.Path(%r).write_text('x')\n" % str(marker)
    (tmp_path / "rec.py").write_text(record_script)
    (tmp_path / "rec.yaml").write_text(yaml.safe_dump({
        "script": "rec.py", "target_val_loss": 2.0, "launch": {"launcher": "python"},
        "integrity": {"pinned_settings": {"val_every": "5"}}}))
    record = load_record(tmp_path / "rec.yaml")
    cheat = tmp_path / "cheat.py"
    cheat.write_text(record_script.replace("val_every = 5", "val_every = 1"))  # validates more often
    result = NodeJob(record, str(tmp_path / "run.log"), StopRules(target=2.0), {}, script=str(cheat))(
        threading.Event(), lambda point: None)
    assert (result["reason"], result["status"], result["time_to_target_ms"]) == ("integrity", "failed", None)
    assert result["integrity"] == ["pinned setting val_every = 1, expected 5"]
    assert "integrity: pinned setting val_every" in (tmp_path / "run.log").read_text()
    assert not marker.exists()  # nothing ran


def test_no_working_sandbox_refuses_every_run_with_exit_2(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(sandbox_module, "probe", lambda: {"bwrap": "not found: bwrap", "userns": "fails: EPERM",
                                                          "off": "ok (no confinement)"})
    monkeypatch.setenv("SCALERUN_RUNS_DIR", str(tmp_path / "runs"))
    assert main(["run", "speedrun"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "sandbox.mode" in err and "apt-get install -y bubblewrap" in err
    assert not (tmp_path / "runs").exists()  # nothing written


def test_an_unconfined_run_says_so_in_its_row(tmp_path):
    (tmp_path / "rec.py").write_text("print('step:0/1 val_loss:1.0 train_time:0ms step_avg:0ms')\n")
    (tmp_path / "rec.yaml").write_text(yaml.safe_dump({"script": "rec.py", "target_val_loss": 2.0,
                                                       "launch": {"launcher": "python"}}))
    job = NodeJob(load_record(tmp_path / "rec.yaml"), str(tmp_path / "run.log"), StopRules(target=2.0), {},
                  sandbox=SandboxConfig(mode="off"))
    result = job(threading.Event(), lambda point: None)
    assert (result["reason"], result["sandbox"]) == ("target_reached", "off")


def test_the_harness_cpu_clock_times_a_busy_job(tmp_path):
    busy = ("import time\nt = time.process_time()\nwhile time.process_time() - t < 0.6:\n    pass\n"
            "print('step:10/10 val_loss:1.0 train_time:5ms step_avg:0.5ms', flush=True)\n")
    result = run_job([sys.executable, "-c", busy], dict(os.environ), tmp_path / "log", StopRules(target=2.0))
    assert result["reason"] == "target_reached" and result["cpu_s_to_target"] >= 0.6
    both = {**run("a", "timed", 0, 1.0, ttt=5.0), "cpu_s_to_target": result["cpu_s_to_target"]}
    assert seconds_to_target(both, "wall") == 0.005 and seconds_to_target(both, "cpu") >= 0.6
    (row,) = summarize_replay([both], [Rec("a")], clock="cpu")["records"]
    assert row["time_to_target_s"]["mean"] == result["cpu_s_to_target"]


def test_a_run_under_a_relative_runs_folder_finds_its_checked_script(tmp_path, monkeypatch):
    # `scalerun run speedrun` logs under the relative `runs/`; the run starts inside its work
    # folder, so the checked script's path must not be relative to the harness's folder.
    (tmp_path / "rec.py").write_text("print('step:0/1 val_loss:1.0 train_time:0ms step_avg:0ms')\n")
    (tmp_path / "rec.yaml").write_text(yaml.safe_dump({"script": "rec.py", "target_val_loss": 2.0,
                                                       "launch": {"launcher": "python"}}))
    monkeypatch.chdir(tmp_path)
    job = NodeJob(load_record(tmp_path / "rec.yaml"), "runs/x/logs/run.log", StopRules(target=2.0), {},
                  sandbox=SandboxConfig(mode="off"))
    result = job(threading.Event(), lambda point: None)
    assert result["reason"] == "target_reached", open("runs/x/logs/run.log").read()[-500:]
