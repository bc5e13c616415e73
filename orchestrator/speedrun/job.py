"""Run one training job as a process tree: stream and keep its log, parse it live, stop it early,
and kill the whole tree on the way out so nothing is left behind. Knows nothing of Ray; the
trainer actor (actors/trainer.py) wraps it.

Reasons a job ends:
  target_reached  a validation loss at or below the target was printed (the job is stopped there
                  when stop_at_target, since only the time to target counts)
  missed_target   the script exited 0 without reaching the target
  crashed         the script exited non-zero on its own
  nan             a validation or training loss was NaN or infinite
  diverged        validation loss rose more than diverge_margin above its best so far
  cannot_beat     train time passed beat_time_ms before the target: it can no longer beat that time
  timeout         wall time passed timeout_s
  stopped         the caller asked it to stop (stop_event)
status is "ok" when the target was reached, else "failed".
"""
from __future__ import annotations

import math
import os
import queue
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from orchestrator.speedrun.logparse import LogParser


@dataclass
class StopRules:
    target: float
    stop_at_target: bool = True
    diverge_margin: float = 1.0  # nats above the best validation loss so far
    beat_time_ms: float | None = None
    timeout_s: float | None = None


def stop_reason(rules: StopRules, parser: LogParser, wall_s: float) -> str | None:
    """Why the job should stop now, from what it has printed so far (None: keep going)."""
    losses = [p["val_loss"] for p in parser.steps]
    last_train = parser.last_train_loss
    if (losses and not math.isfinite(losses[-1])) or (last_train is not None and not math.isfinite(last_train)):
        return "nan"
    reached = parser.first_at_or_below_target() is not None
    if reached and rules.stop_at_target:
        return "target_reached"
    if len(losses) > 1 and losses[-1] > min(losses) + rules.diverge_margin:
        return "diverged"
    if (not reached and rules.beat_time_ms is not None and parser.last_train_time_ms is not None
            and parser.last_train_time_ms >= rules.beat_time_ms):
        return "cannot_beat"
    if rules.timeout_s is not None and wall_s >= rules.timeout_s:
        return "timeout"
    return None


def _alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def kill_tree(proc: subprocess.Popen, known: dict[int, psutil.Process], grace_s: float = 5.0) -> None:
    """SIGTERM the job's process group and every process seen in its tree, SIGKILL what is left
    after grace_s. `known` holds descendants seen while it ran: ones that left the group (setsid)
    or were orphaned when their parent died are still found through it."""
    family = {p.pid: p for p in [*known.values(), *descendants(proc.pid)]}
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        for p in family.values():
            try:
                p.send_signal(sig)
            except psutil.NoSuchProcess:
                pass
        deadline = time.monotonic() + (grace_s if sig == signal.SIGTERM else 5.0)
        while time.monotonic() < deadline and (proc.poll() is None or any(_alive(p) for p in family.values())):
            time.sleep(0.05)
        if proc.poll() is not None and not any(_alive(p) for p in family.values()):
            break
    proc.wait()


def _pump(stream, lines: queue.Queue) -> None:
    for line in iter(stream.readline, ""):
        lines.put(line)
    lines.put(None)


def run_job(cmd: list[str], env: dict[str, str], log_path, rules: StopRules,
            stop_event: threading.Event | None = None, on_point=None, cwd=None,
            grace_s: float = 5.0) -> dict:
    """Run `cmd` in its own process group until it exits or a stop rule fires.

    Every output line (stdout and stderr together) goes to log_path as it arrives and through the
    live parser; on_point(point) is called for each validation point. Returns the result dict
    (reason, status, returncode, time_to_target_ms, steps, final_val_loss, log_path, wall_s, ...).
    """
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    parser = LogParser(rules.target)
    lines: queue.Queue = queue.Queue()
    known: dict[int, psutil.Process] = {}
    start = time.monotonic()
    started_at = time.time()
    reason = None
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, text=True, errors="replace", bufsize=1,
                                start_new_session=True)
        pump = threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True)
        pump.start()
        last_scan = 0.0
        exited_at = None
        eof = False
        try:
            while True:
                try:
                    line = lines.get(timeout=0.2)
                except queue.Empty:
                    line = ""
                if line is None:
                    eof = True
                elif line:
                    log.write(line)
                    log.flush()
                    point = parser.feed(line)
                    if point is not None and on_point is not None:
                        on_point(point)
                now = time.monotonic()
                if now - last_scan > 1.0:  # remember the tree, to find orphans later
                    known.update({p.pid: p for p in descendants(proc.pid)})
                    last_scan = now
                reason = stop_reason(rules, parser, now - start)
                if reason is None and stop_event is not None and stop_event.is_set():
                    reason = "stopped"
                if reason is not None:
                    break
                if proc.poll() is not None and lines.empty():
                    exited_at = exited_at or now  # a leftover child may hold the pipe open: give it 2 s
                    if eof or now - exited_at > 2.0:
                        break
        finally:
            kill_tree(proc, known, grace_s)
            pump.join(timeout=5.0)
            while not lines.empty():  # lines printed before the kill still belong in the log
                line = lines.get()
                if line:
                    log.write(line)
                    parser.feed(line)
    wall_s = time.monotonic() - start
    result = parser.result()
    reached = result["first_step_at_or_below_target"] is not None
    if reason is None:
        reason = "target_reached" if reached else "missed_target" if proc.returncode == 0 else "crashed"
    return {
        "reason": reason,
        "status": "ok" if reached and reason not in ("nan", "diverged") else "failed",
        "returncode": proc.returncode,
        "time_to_target_ms": result["time_to_target_ms"],
        "steps_to_target": result["first_step_at_or_below_target"],
        "steps": result["steps"],
        "final_val_loss": result["final_val_loss"],
        "final_train_time_ms": result["final_train_time_ms"],
        "log_format": result["format"],
        "log_path": str(log_path),
        "wall_s": wall_s,
        "started_at": started_at,  # epoch seconds, to see which runs overlapped
        "cmd": cmd,
    }
