"""Running a RunRequest in the sandbox: the one place the idea loop's code is executed.

The script runs as `python <script> <args>` in the request's work folder, confined by
orchestrator.sandbox with the request's timeout as its wall limit, with a clean environment
(plus the data folder's variable and `env`), the data folder read-only. After its processes are
gone, final_info.json is read with `read_output` (a symlink, or a path leaving the run folder,
is refused) and checked against the schema; plot.py's new PNGs are listed the same careful way.
"""
from __future__ import annotations

import functools
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from orchestrator.sandbox import Sandbox, SandboxConfig, UntrustedOutput, clean_env, read_output
from orchestrator.scientist.final_info import BadResults, check_final_info
from orchestrator.scientist.protocol import RunRequest, RunResult

POLL_S = 0.1


@dataclass
class DataSource:
    """The template's data: a folder exported to every run as `env_var`, read-only. With `path`
    empty it is what `python -m <prepare>` prints last (trusted project code, run on the node
    that runs the script, before the sandbox starts)."""

    env_var: str = "SHAKESPEARE_DATA_DIR"
    path: str = ""
    prepare: str = "orchestrator.speedrun.shakespeare_data"

    def folder(self) -> str:
        if self.path:
            return str(Path(self.path).expanduser().resolve())
        return prepared(self.prepare)


@functools.lru_cache(maxsize=None)
def prepared(module: str) -> str:
    """The folder `python -m module` prints last (once per process: it checks hashes each time)."""
    out = subprocess.run([sys.executable, "-m", module], check=True, capture_output=True, text=True)
    return out.stdout.strip().splitlines()[-1]


def tail_of(path: Path, chars: int) -> str:
    """The last `chars` characters of a log file (read from its end: it may be large)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 4 * chars))
            return f.read().decode(errors="replace")[-chars:]
    except FileNotFoundError:
        return ""


def clear(path: Path) -> None:
    """Remove a previous attempt's run folder (or whatever a job left under its name)."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def new_pngs(workdir: Path, since: float) -> list[str]:
    """Regular PNG files (not symlinks) at the top of workdir, modified at or after `since`."""
    found = []
    for entry in os.scandir(workdir):
        st = entry.stat(follow_symlinks=False)
        if entry.name.endswith(".png") and stat.S_ISREG(st.st_mode) and st.st_mtime >= since:
            found.append(entry.name)
    return sorted(found)


def run_request(request: RunRequest, sandbox: SandboxConfig, env: dict[str, str], ro_paths=(), stderr_chars: int = 1500,
                stop_event: threading.Event | None = None) -> RunResult:
    """Run one request confined; how it ended, with the stderr tail and the checked results."""
    workdir = Path(request.workdir).resolve()
    if request.results:
        clear(workdir / request.results)
    prefix = Path(request.log_prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    out_path, err_path = prefix.with_name(prefix.name + ".stdout"), prefix.with_name(prefix.name + ".stderr")
    job_env = {**clean_env(workdir), "OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "1",
               "PYTHONDONTWRITEBYTECODE": "1", "MPLCONFIGDIR": "/tmp/matplotlib", **env}
    started = time.time()
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        confined = Sandbox(replace(sandbox, wall_seconds=request.timeout_s))
        run = confined.start([sys.executable, request.script, *request.args], job_env, workdir, ro_paths,
                             stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        stopped = None
        try:
            while run.proc.poll() is None:
                stopped = run.check() or ("stopped" if stop_event is not None and stop_event.is_set() else None)
                if stopped:
                    break
                time.sleep(POLL_S)
        finally:
            if run.proc.poll() is None:
                os.killpg(run.proc.pid, signal.SIGKILL)  # its own session: the whole sandbox goes
            run.proc.wait()
            run.close()
    wall = time.time() - started
    tail = tail_of(err_path, stderr_chars)
    base = dict(returncode=run.proc.returncode, stderr_tail=tail, wall_s=wall)
    if stopped:
        why = {"timeout": f"no exit within {request.timeout_s:g} s"}.get(stopped, f"stopped by the sandbox: {stopped}")
        return RunResult(stopped, why, **base)
    ended = run.exit_reason(run.proc.returncode, tail.splitlines())
    if ended != "ok":
        last = next((line for line in reversed(tail.splitlines()) if line.strip()), "")
        return RunResult(ended, f"exit status {run.proc.returncode}" + (f": {last.strip()[:300]}" if last else ""),
                         **base)
    if not request.results:
        plots = new_pngs(workdir, started - 1.0)
        if not plots:
            return RunResult("no_plots", "exit 0 but no new PNG file in the folder", **base)
        return RunResult("ok", plots=plots, **base)
    run_dir = workdir / request.results
    name = f"{request.results}/final_info.json"
    if run_dir.is_symlink() or not run_dir.is_dir():
        return RunResult("no_results", f"exit 0 but {request.results} is not a folder", **base)
    try:
        info = check_final_info(read_output(workdir, name))
    except FileNotFoundError:
        return RunResult("no_results", f"exit 0 without {name}", **base)
    except UntrustedOutput as e:
        return RunResult("untrusted_results", f"refused: {e}", **base)
    except BadResults as e:
        return RunResult("bad_results", str(e), **base)
    except OSError as e:
        return RunResult("no_results", f"cannot read {name}: {e}", **base)
    return RunResult("ok", results=info, **base)


@dataclass
class RunnerSettings:
    """What every run of an experiment shares: the sandbox, the data, extra environment."""

    sandbox: SandboxConfig = field(default_factory=SandboxConfig)
    data: DataSource | None = field(default_factory=DataSource)
    env: dict[str, str] = field(default_factory=dict)
    stderr_chars: int = 1500


class SandboxRunner:
    """Answers `Execute` batches in this process, one run after another (tests, one machine)."""

    def __init__(self, settings: RunnerSettings):
        self.settings = settings
        self.sandbox = replace(settings.sandbox, mode=Sandbox(settings.sandbox).mode)  # auto resolved once
        self._data: tuple[dict, list] | None = None

    def _data_env(self) -> tuple[dict, list]:
        if self._data is None:
            data = self.settings.data
            folder = data.folder() if data is not None else None
            self._data = ({data.env_var: folder}, [folder]) if folder else ({}, [])
        return self._data

    def execute(self, requests: list[RunRequest], stop_event: threading.Event | None = None) -> list[RunResult]:
        env, ro = self._data_env()
        return [run_request(r, self.sandbox, {**env, **self.settings.env}, ro, self.settings.stderr_chars, stop_event)
                for r in requests]


@dataclass
class RunJob:
    """One request as a trainer actor's job (actors/trainer.py calls it on its node)."""

    request: RunRequest
    settings: RunnerSettings

    def __call__(self, stop_event: threading.Event, on_point) -> dict:
        return asdict(SandboxRunner(self.settings).execute([self.request], stop_event)[0])
