"""Sandbox units: config and its errors, the allow-list, what a confined process is (uid, caps,
environment, mounts), the watchdog path without a cgroup, reading logs and result files that a job
controls, the harness clock against printed train times, and `scalerun sandbox`."""
import json
import math
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import orchestrator.sandbox as sandbox_module
from orchestrator.config import ConfigError
from orchestrator.sandbox import (LogFlood, Sandbox, SandboxConfig, UntrustedOutput, bounded_lines, clean_env,
                                  exit_signal, read_output, reason_from_output, resolve_mode)
from orchestrator.sandbox.cli import cli, sandbox_config
from orchestrator.speedrun.job import HarnessClock, StopRules, run_job
from orchestrator.speedrun.logparse import LogParser
from orchestrator.speedrun.records import Record, launch_env


# ---- config ----

def test_dotlist_config_and_its_errors():
    cfg = sandbox_config(["mode=userns", "cpu_seconds=5", "ro_paths=[/data,/models]", "network=true"])
    assert (cfg.mode, cfg.cpu_seconds, cfg.ro_paths, cfg.network) == ("userns", 5, ["/data", "/models"], True)
    with pytest.raises(ConfigError, match="sandbox.nope"):
        sandbox_config(["nope=1"])
    with pytest.raises(ConfigError, match="sandbox.wall_seconds"):
        sandbox_config(["wall_seconds=soon"])
    for bad, key in ((SandboxConfig(mode="docker"), "sandbox.mode"),
                     (SandboxConfig(open_files=-1), "sandbox.open_files"),
                     (SandboxConfig(ro_paths=["data"]), "sandbox.ro_paths")):
        with pytest.raises(ConfigError, match=key):
            Sandbox(bad)


def test_no_working_sandbox_refuses_with_the_install_line(monkeypatch):
    monkeypatch.setattr(sandbox_module, "probe", lambda: {"bwrap": "not found: bwrap", "userns": "fails: EPERM",
                                                          "off": "ok (no confinement)"})
    with pytest.raises(ConfigError) as e:
        resolve_mode("auto")
    message = str(e.value)
    assert "\n" not in message and "apt-get install -y bubblewrap" in message and "sandbox.mode" in message
    assert resolve_mode("off") == "off"  # asked for by name, it still runs


def test_probe_finds_both_modes_here():
    assert sandbox_module.probe()["bwrap"] == "ok", "scripts/setup.sh installs bubblewrap"
    assert sandbox_module.probe()["userns"] == "ok"
    assert resolve_mode("auto") == "bwrap"


def test_allow_list_mounts(tmp_path):
    work, data = tmp_path / "work", tmp_path / "data"
    work.mkdir(), data.mkdir()
    mounts = sandbox_module._mounts(SandboxConfig(), work, [str(data)], tmp_path)
    by_dest = {dst: (kind, src) for kind, src, dst in mounts}
    assert "/" not in by_dest and "/root" not in by_dest and "/etc" not in by_dest and "/home" not in by_dest
    assert by_dest[str(work)] == ("rw", str(work))
    for path in ("/usr", sys.base_prefix, sys.prefix, str(data), "/etc/ld.so.cache"):
        assert any(kind == "ro" and (dst == path or path.startswith(dst + "/")) for dst, (kind, _) in by_dest.items())
    assert by_dest["/tmp"][0] == "tmpfs" and by_dest["/etc/passwd"] == ("ro", str(tmp_path / "passwd"))
    depths = [len(Path(dst).parts) for _, _, dst in mounts]
    assert depths == sorted(depths)  # /tmp's tmpfs before a work folder under /tmp


def test_launch_env_for_a_sandboxed_run_starts_from_nothing(monkeypatch, tmp_path):
    monkeypatch.setenv("WANDB_API_KEY", "secret")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "secret")
    record = Record(name="r", script=tmp_path / "train.py")
    record.launch.env = {"DATA": "${ROOT}/val.bin"}
    env = launch_env(record, {"ROOT": "/data", "SEED": "1"}, workdir=tmp_path)
    assert "secret" not in env.values()
    assert env["HOME"] == str(tmp_path) and env["DATA"] == "/data/val.bin" and env["SEED"] == "1"
    assert set(env) == {*clean_env(tmp_path), "OMP_NUM_THREADS", "OMP_WAIT_POLICY", "PYTHONUNBUFFERED", "ROOT",
                        "SEED", "DATA"}
    assert launch_env(record)["WANDB_API_KEY"] == "secret"  # unsandboxed callers keep today's behaviour


# ---- a confined process ----

IDENTITY = """
import os, socket
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
print(os.getuid(), os.getgid(), os.getgroups(), status["CapEff"].strip(), status["NoNewPrivs"].strip(),
      socket.gethostname())
print(sorted(os.environ))
print(sorted(os.listdir("/")))
for path in ("/x", "/tmp/x"):
    try:
        open(path, "w").close()
        print(path, "written")
    except OSError as e:
        print(path, e.strerror)
"""


@pytest.mark.parametrize("mode", ["bwrap", "userns"])
def test_what_a_confined_process_is(tmp_path, mode):
    work = tmp_path / "work"
    work.mkdir()
    job = Sandbox(SandboxConfig(mode=mode)).start([sys.executable, "-c", IDENTITY], {**clean_env(work), "ONLY": "1"},
                                                  work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = job.proc.communicate(timeout=60)[0].decode().splitlines()
    job.close()
    assert job.proc.returncode == 0, out
    assert out[0] == "65534 65534 [] 0000000000000000 1 sandbox"
    assert out[1] == str(sorted([*clean_env(work), "ONLY", "PWD"]))
    mounted_tops = {Path(p).parts[1] for p in (sys.prefix, sys.base_prefix)}  # the venv and Python may live anywhere
    assert set(eval(out[2])) <= {"bin", "dev", "etc", "lib", "lib32", "lib64", "proc", "root", "sbin", "tmp", "usr",
                                 "work", *mounted_tops}
    assert out[3:] == ["/x Read-only file system", "/tmp/x written"]
    assert not (tmp_path / "x").exists() and (job.cgroup is None or not job.cgroup.exists())


def test_wall_limit_and_the_process_watchdog_without_cgroup(tmp_path, monkeypatch):
    monkeypatch.setattr(sandbox_module, "pids_cgroup_parent", lambda: None)
    work = tmp_path / "work"
    work.mkdir()
    spawn = "import subprocess, time\nkids = [subprocess.Popen(['sleep', '30']) for _ in range(40)]\ntime.sleep(30)"
    sandbox = Sandbox(SandboxConfig(max_processes=16))
    r = run_job([sys.executable, "-c", spawn], clean_env(work), tmp_path / "log", StopRules(target=-math.inf),
                cwd=work, sandbox=sandbox, grace_s=1.0)
    assert r["reason"] == "process_limit" and r["wall_s"] < 20
    sleepy = Sandbox(SandboxConfig(wall_seconds=1))
    r = run_job([sys.executable, "-c", "import time; time.sleep(30)"], clean_env(work), tmp_path / "log",
                StopRules(target=-math.inf), cwd=work, sandbox=sleepy, grace_s=1.0)
    assert r["reason"] == "timeout" and r["wall_s"] < 10 and r["sandbox"] == "bwrap"


def test_off_mode_is_unconfined_and_says_so(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    r = run_job([sys.executable, "-c", "import os; print(os.getuid())"], clean_env(work), tmp_path / "log",
                StopRules(target=-math.inf), cwd=work, sandbox=Sandbox(SandboxConfig(mode="off")))
    assert (r["sandbox"], r["reason"]) == ("off", "missed_target")
    assert open(r["log_path"]).read().splitlines()[1] == str(os.getuid())


# ---- how a run ended ----

def test_exit_signal_and_reason_from_output():
    assert exit_signal(-9, wrapped=True) == 9 and exit_signal(152, wrapped=True) == 24
    assert exit_signal(152, wrapped=False) is None and exit_signal(1, wrapped=True) is None
    assert reason_from_output(["Traceback", "MemoryError"]) == "memory_limit"
    assert reason_from_output(["OSError: [Errno 24] Too many open files: 'f1'"]) == "open_files_limit"
    assert reason_from_output(["PermissionError: [Errno 13] Permission denied", "done"]) == "denied"
    assert reason_from_output(["RuntimeError: boom"]) == "crashed"


# ---- output the job controls ----

def lines_from(chunks, line_bytes=8, total_bytes=1000):
    read, write = os.pipe()

    def feed():
        for chunk in chunks:
            os.write(write, chunk)
        os.close(write)
    threading.Thread(target=feed).start()
    try:
        return list(bounded_lines(read, line_bytes, total_bytes))
    finally:
        os.close(read)


def test_bounded_lines_cut_long_lines_and_stop_a_flood():
    assert lines_from([b"ab\ncd", b"e\n", b"tail"]) == ["ab\n", "cde\n", "tail"]
    cut = lines_from([b"0123456789abc", b"def\nnext\n"])
    assert cut == ["01234567 [line cut at 8 bytes]\n", "next\n"]
    assert lines_from([b"0123456789\nok\n"])[0] == "01234567 [line cut at 8 bytes]\n"
    with pytest.raises(LogFlood):
        lines_from([b"x" * 600, b"x" * 600])


def test_read_output_refuses_what_it_must_not_read(tmp_path):
    work = tmp_path / "work"
    (work / "sub").mkdir(parents=True)
    (work / "final_info.json").write_text('{"ok": 1}')
    assert json.loads(read_output(work, "final_info.json")) == {"ok": 1}
    (work / "to_passwd.json").symlink_to("/etc/passwd")
    (work / "to_inside.json").symlink_to(work / "final_info.json")
    (work / "up").symlink_to("/etc")
    os.mkfifo(work / "fifo")
    (work / "big").write_bytes(b"x" * 100)
    for name, why in (("to_passwd.json", "outside"), ("to_inside.json", "symlink"), ("up/passwd", "outside"),
                      ("../work/sub/../../work/fifo", "regular"), ("big", "larger")):
        with pytest.raises(UntrustedOutput, match=why):
            read_output(work, name, max_bytes=50)


# ---- the harness's clock ----

def clock_flags(lines_at: list[tuple[float, str]], target=2.0) -> list[str]:
    parser, clock = LogParser(target), HarnessClock()
    for now, line in lines_at:
        before = (parser.last_step, parser.last_train_time_ms)
        point = parser.feed(line)
        timed = (parser.last_step, parser.last_train_time_ms) != before
        clock.feed(point, parser.last_train_time_ms if timed else None, now)
    return clock.flags(parser)


def honest_run(rate=1.0, eval_s=0.5, reset_after_s=0.0):
    """A log like a record's: 100 ms steps, an evaluation (not timed) every 10 steps."""
    lines, now, train_ms = [(reset_after_s, "step:0/40 val_loss:4.0 train_time:0ms step_avg:0ms")], reset_after_s, 0.0
    for step in range(1, 41):
        now += 0.1
        train_ms += 100 * rate
        lines.append((now, f"step:{step}/40 train_loss:3.0 train_time:{train_ms:.0f}ms step_avg:1ms"))
        if step % 10 == 0:
            now += eval_s
            loss = 4.0 - step / 20
            lines.append((now, f"step:{step}/40 val_loss:{loss} train_time:{train_ms:.0f}ms step_avg:1ms"))
    return lines


def test_harness_clock_flags_contradictions_only():
    assert clock_flags(honest_run()) == []
    assert clock_flags(honest_run(eval_s=5.0, reset_after_s=60.0)) == []  # long evaluations, compile before
    assert clock_flags(honest_run(rate=0.2)) == ["clock_slower_than_harness"]
    assert clock_flags([(0.5, "step:100/100 val_loss:1.0 train_time:60000ms step_avg:1ms")]) == [
        "claims_more_time_than_elapsed"]
    assert clock_flags([(10.0, "step:99/100 train_loss:2.0 train_time:5000ms step_avg:1ms"),
                        (10.1, "step:100/100 val_loss:1.0 train_time:1000ms step_avg:1ms")]) == [
        "target_time_behind_train_time"]
    assert clock_flags([(0.5, "s:100 tel:1.0")]) == []  # llm.c lines carry no train time


# ---- scalerun sandbox ----

def test_cli_exec_prints_one_json_line_last(tmp_path, capsys):
    code = cli(["exec", f"sandbox.runs_dir={tmp_path}", "env.GREETING=hi", "--", sys.executable, "-c",
                "import os; print(os.environ['GREETING'])"])
    lines = capsys.readouterr().out.splitlines()
    summary = json.loads(lines[-1])
    assert code == 0 and lines[:-1] == ["hi"]
    assert (summary["mode"], summary["reason"], summary["returncode"], summary["signal"]) == ("bwrap", "ok", 0, None)
    assert Path(summary["workdir"]).parent.parent == tmp_path and Path(summary["log"]).exists()


def test_cli_bad_input_is_one_line_and_exit_2(capsys):
    assert cli(["exec", "sandbox.nope=1", "--", "true"]) == 2
    assert cli(["exec", "sandbox.mode=weird", "--", "true"]) == 2
    assert cli(["exec", "true"]) == 2
    assert cli(["nonsense"]) == 2
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 4 and all(e.startswith("scalerun: config error: ") for e in errors)
    assert "sandbox.nope" in errors[0] and "sandbox.mode" in errors[1]


def test_cli_probe(capsys):
    assert cli(["probe"]) == 0
    out = capsys.readouterr().out
    assert "bwrap   ok" in out and "auto    bwrap" in out and "process limit:" in out
