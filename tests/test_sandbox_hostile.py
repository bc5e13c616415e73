"""The hostile suite: one tiny script per attack, each run through `scalerun sandbox exec` (the
trainer jobs' own runner), with `sandbox.mode=auto` (which must find bubblewrap) and again with the
userns fallback. Each must end denied, killed or flagged with the expected reason, and the host
must be unharmed: canaries unchanged, no process of the run left, the host's listener never
connected to, the fake API keys absent from every output."""
import hashlib
import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from orchestrator.sandbox import UntrustedOutput, read_output
from orchestrator.sandbox.cli import cli

REPO = Path(__file__).resolve().parents[1]
FAKE_KEYS = {"WANDB_API_KEY": "wandb-fake-7f3a9c", "OPENAI_API_KEY": "sk-fake-51b0e2", "HF_TOKEN": "hf_fake_c4d8a1",
             "AWS_SECRET_ACCESS_KEY": "aws-fake-90ee13", "RAY_ADDRESS": "ray-fake-10.9.8.7:6379"}
CANARY = "canary-5a1f0c-must-stay-put"


@pytest.fixture(params=["auto", "userns"])
def mode(request):
    return request.param


@pytest.fixture
def host(tmp_path, monkeypatch):
    """What a candidate must not reach: secrets in a host folder and in another run's folder, fake
    API keys in the host's environment, a listener on the host's loopback, data and records it may
    only read."""
    for key, value in FAKE_KEYS.items():
        monkeypatch.setenv(key, value)
    secrets = tmp_path / "host-home"
    secrets.mkdir()
    (secrets / ".netrc").write_text(f"machine example.com login me password {CANARY}\n")
    runs = tmp_path / "runs"
    other = runs / "other-run" / "work"
    other.mkdir(parents=True)
    (other / "final_info.json").write_text(json.dumps({"secret": CANARY}))
    data = tmp_path / "data"
    data.mkdir()
    (data / "val.bin").write_bytes(b"\x01\x02" * 512)
    records = tmp_path / "records"
    records.mkdir()
    (records / "01_adamw.yaml").write_text((REPO / "records/shakespeare/01_adamw.yaml").read_text())
    candidate = tmp_path / "candidate"
    candidate.mkdir()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)
    watched = [secrets / ".netrc", other / "final_info.json", data / "val.bin", records / "01_adamw.yaml"]
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in watched}
    venv_files = set(os.listdir(Path(sys.prefix) / "lib"))
    h = dict(tmp_path=tmp_path, secrets=secrets, runs=runs, other=other, data=data, records=records,
             candidate=candidate, port=listener.getsockname()[1])
    yield h
    try:
        listener.accept()
        connected = True
    except BlockingIOError:
        connected = False
    listener.close()
    assert not connected, "the host's listener was connected to"
    assert {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in watched} == before
    assert set(os.listdir(Path(sys.prefix) / "lib")) == venv_files


def run(host, mode, capsys, script: str, *options: str, args=()) -> tuple[dict, str, int]:
    """Run `script` through `scalerun sandbox exec`; (its JSON line, all its output, exit code),
    after checking that nothing of the run is left and no fake key came out."""
    path = host["candidate"] / "attack.py"
    path.write_text(textwrap.dedent(script))
    code = cli(["exec", f"sandbox.mode={mode}", f"sandbox.runs_dir={host['runs']}",
                f"sandbox.ro_paths=[{host['candidate']},{host['data']},{host['records']}]", *options,
                "--", sys.executable, str(path), *map(str, args)])
    out = capsys.readouterr().out
    summary = json.loads(out.strip().splitlines()[-1])
    if mode == "auto":
        assert summary["mode"] == "bwrap", "auto must find bubblewrap (scripts/setup.sh installs it)"
    assert_nothing_left(summary["workdir"], str(path))
    outputs = [out, Path(summary["log"]).read_text(errors="replace")]
    for folder, _, files in os.walk(summary["workdir"]):
        outputs += [Path(folder, f).read_text(errors="replace") for f in files
                    if not os.path.islink(os.path.join(folder, f))]
    for value in [*FAKE_KEYS.values(), CANARY]:
        assert not any(value in text for text in outputs), f"{value} came out of the sandbox"
    return summary, out, code


def assert_nothing_left(workdir: str, script: str) -> None:
    def leftovers():
        found = []
        for p in psutil.process_iter():
            try:
                if script in " ".join(p.cmdline()) or p.cwd().startswith(workdir):
                    found.append(p)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                pass
        return found
    deadline = time.monotonic() + 5
    while leftovers() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not leftovers(), f"processes of the run are left: {[p.cmdline() for p in leftovers()]}"


# ---- network ----

def test_connect_to_host_listener(host, mode, capsys):
    s, out, _ = run(host, mode, capsys, """
        import socket, sys
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=3)
        """, args=[host["port"]])
    assert s["reason"] == "denied" and "ConnectionRefusedError" in out


def test_pip_install(host, mode, capsys):
    s, out, _ = run(host, mode, capsys, """
        import subprocess, sys
        sys.exit(subprocess.call([sys.executable, "-m", "pip", "install", "--retries", "1", "--timeout", "3",
                                  "--no-cache-dir", "scalerun-hostile-no-such-package"]))
        """)
    assert s["reason"] == "denied" and s["returncode"] != 0


# ---- reading what is not theirs: none of it exists in the sandbox ----

@pytest.mark.parametrize("target", ["/etc/shadow", "netrc", "other_run", "git"])
def test_read_host_secrets(host, mode, capsys, target):
    path = {"/etc/shadow": "/etc/shadow", "netrc": host["secrets"] / ".netrc",
            "other_run": host["other"] / "final_info.json", "git": REPO / ".git" / "config"}[target]
    s, out, _ = run(host, mode, capsys, """
        import os, sys
        print(open(os.path.expanduser("~/.netrc")).read() if os.path.exists(os.path.expanduser("~/.netrc")) else "")
        print(open(sys.argv[1]).read())
        """, args=[path])
    assert s["reason"] == "crashed" and "FileNotFoundError" in out
    if target == "/etc/shadow":
        assert "root:" not in out


def test_environment_has_no_host_keys(host, mode, capsys):
    s, out, _ = run(host, mode, capsys, """
        import os
        print(sorted(os.environ.items()))
        print(open("/proc/self/environ").read())
        """)
    assert s["reason"] == "ok" and "'HOME'" in out  # run() checks that no fake key came out


# ---- writing what is not theirs ----

@pytest.mark.parametrize("target", ["venv", "data", "records", "sysctl"])
def test_write_outside_work_folder(host, mode, capsys, target):
    path = {"venv": Path(sys.prefix) / "lib" / "pwned.txt", "data": host["data"] / "val.bin",
            "records": host["records"] / "01_adamw.yaml", "sysctl": Path("/proc/sys/kernel/randomize_va_space")}[target]
    value = path.read_text() if target == "sysctl" else "pwned"  # the host's own value: harmless if it got through
    s, out, _ = run(host, mode, capsys, """
        import sys
        open(sys.argv[1], "w").write(sys.argv[2])
        """, args=[path, value])
    assert s["reason"] == "denied", out
    if target == "sysctl":
        assert path.read_text() == value


# ---- resources ----

def test_fork_bomb(host, mode, capsys):
    s, _, _ = run(host, mode, capsys, """
        import os
        while True:
            try:
                os.fork()
            except OSError:
                pass
        """, "sandbox.max_processes=64", "sandbox.wall_seconds=60")
    assert s["reason"] == "process_limit"


def test_allocate_4_gib(host, mode, capsys):
    s, out, _ = run(host, mode, capsys, "buffer = bytearray(4 << 30)\n")
    assert s["reason"] == "memory_limit" and "MemoryError" in out


def test_busy_loop_past_cpu_limit(host, mode, capsys):
    s, _, _ = run(host, mode, capsys, "while True:\n    pass\n", "sandbox.cpu_seconds=1", "sandbox.wall_seconds=60")
    assert (s["reason"], s["signal"]) == ("cpu_limit", 24)


def test_fill_disk_past_folder_limit(host, mode, capsys):
    s, _, _ = run(host, mode, capsys, """
        import time
        chunk = b"x" * (1 << 20)
        for i in range(256):  # at most 256 MiB, should the watchdog miss it
            with open(f"fill{i}.bin", "wb") as f:
                f.write(chunk)
        time.sleep(30)
        """, f"sandbox.disk_bytes={32 << 20}", "sandbox.wall_seconds=60")
    assert s["reason"] == "disk_limit"


def test_open_10000_files(host, mode, capsys):
    s, out, _ = run(host, mode, capsys, "files = [open(f'f{i}', 'w') for i in range(10000)]\n")
    assert s["reason"] == "open_files_limit" and "Too many open files" in out


# ---- processes ----

def test_daemon_does_not_outlive_the_run(host, mode, capsys):
    s, _, _ = run(host, mode, capsys, """
        import os, sys, time
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                os.chdir("/")
                os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(60)", sys.argv[0]])
            os._exit(0)
        time.sleep(0.5)
        """)
    assert s["reason"] == "ok"  # run() checks that no process of the run is left


def test_kill_host_process(host, mode, capsys):
    victim = subprocess.Popen(["sleep", "60"])
    try:
        s, out, _ = run(host, mode, capsys, """
            import os, signal, sys
            os.kill(int(sys.argv[1]), signal.SIGKILL)
            """, args=[victim.pid])
        assert s["reason"] == "crashed" and "ProcessLookupError" in out
        assert victim.poll() is None, "the host process was killed"
    finally:
        victim.kill()
        victim.wait()


# ---- output ----

def test_planted_symlink_output_is_not_read(host, mode, capsys):
    s, _, _ = run(host, mode, capsys, """
        import os
        os.symlink("/etc/passwd", "final_info.json")
        os.symlink("final_info.json", "summary.json")
        """)
    assert s["reason"] == "ok"
    for name in ("final_info.json", "summary.json"):
        with pytest.raises(UntrustedOutput):
            read_output(s["workdir"], name)


def test_stdout_flood_without_newline(host, mode, capsys):
    s, _, _ = run(host, mode, capsys, """
        import sys
        while True:
            sys.stdout.write("x" * 65536)
        """, f"sandbox.log_total_bytes={1 << 20}", "sandbox.log_line_bytes=1024")
    assert s["reason"] == "log_flood"
    assert max(len(line) for line in Path(s["log"]).read_text().splitlines()) < 1100


def test_fake_target_line_is_flagged(host, mode, capsys):
    s, _, code = run(host, mode, capsys, """
        print("step:1000/1000 val_loss:1.0000 train_time:600000ms step_avg:600.00ms", flush=True)
        """, "target=2.3")
    assert s["reason"] == "target_reached" and "claims_more_time_than_elapsed" in s["flags"] and code == 1


def test_monkeypatched_perf_counter_is_flagged(host, mode, capsys):
    s, _, code = run(host, mode, capsys, """
        import time
        real = time.perf_counter
        origin = real()
        time.perf_counter = lambda: origin + (real() - origin) / 20  # a clock 20 times too slow
        t0 = time.perf_counter()
        print("step:0/25 val_loss:4.0000 train_time:0ms step_avg:0.00ms", flush=True)
        for step in range(1, 26):
            time.sleep(0.1)
            ms = 1000 * (time.perf_counter() - t0)
            print(f"step:{step}/25 train_loss:3.0000 train_time:{ms:.0f}ms step_avg:{ms / step:.2f}ms", flush=True)
        print(f"step:25/25 val_loss:2.0000 train_time:{ms:.0f}ms step_avg:{ms / 25:.2f}ms", flush=True)
        """, "target=2.3")
    assert s["reason"] == "target_reached" and s["flags"] == ["clock_slower_than_harness"] and code == 1
