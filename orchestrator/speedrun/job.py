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
  log_flood       it printed more than the log's total cap (lines longer than the line cap are cut)
Run in a sandbox (orchestrator.sandbox), also: the sandbox's limits (timeout, cpu_limit,
memory_limit, file_size_limit, open_files_limit, process_limit, disk_limit) and denied, in place
of crashed when they explain the end.

A sandboxed job's printed train times are its own claim: `HarnessClock` checks them against the
harness's clock, and a contradiction is listed in the result's "flags" and makes its status "flagged".
status is "ok" when the target was reached unflagged, else "failed" (or "flagged").
"""
from __future__ import annotations

import collections
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

from orchestrator.sandbox import LogFlood, Sandbox, SandboxConfig, bounded_lines, exit_signal
from orchestrator.speedrun.logparse import LogParser

FLOOD = object()  # the output passed the log's total cap
TAIL_LINES = 50  # last output lines kept to tell how a sandboxed job ended


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


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) the process tree under `pid` has used so far, finished children
    that were waited for included."""
    total = 0.0
    try:
        tree = [psutil.Process(pid), *descendants(pid)]
    except psutil.NoSuchProcess:
        return total
    for p in tree:
        try:
            t = p.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
        except psutil.NoSuchProcess:
            pass
    return total


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


def _pump(stream, lines: queue.Queue, line_bytes: int, total_bytes: int) -> None:
    try:
        for line in bounded_lines(stream.fileno(), line_bytes, total_bytes):
            lines.put(line)
    except LogFlood:
        lines.put(FLOOD)
        return
    lines.put(None)


class HarnessClock:
    """The train times a job prints (its claim) against the harness's own clock: seconds since the
    job started, taken as each line arrives. Flags, for the first point at or below the target:

      claims_more_time_than_elapsed  its train time exceeds the harness's time at its arrival
      target_time_behind_train_time  its train time is below the last train line's before it
      clock_slower_than_harness      over training intervals (a train line after a timed line: no
                                     evaluation or clock reset inside), printed train time advanced
                                     less than MIN_RATE times as fast as the harness's clock
    """

    SLACK_S = 1.0
    MIN_RATE = 0.5
    MIN_MEASURED_S = 2.0  # less training time measured than this is too short to judge a rate

    def __init__(self):
        self.points: list[tuple[float, float | None]] = []  # per validation point: (arrival, last train ms)
        self.printed_ms = self.measured_s = 0.0
        self._last: tuple[float, float] | None = None  # (train ms, arrival) of the last timed line
        self._last_train_ms: float | None = None

    def feed(self, point: dict | None, train_ms: float | None, now: float) -> None:
        """One parsed line: its validation point, or else the train time it printed (None: none)."""
        if point is not None:
            self.points.append((now, self._last_train_ms))
            if point["train_time_ms"] is not None:
                self._last = (point["train_time_ms"], now)
            return
        if train_ms is None:
            return
        if self._last is not None and train_ms >= self._last[0]:
            self.printed_ms += train_ms - self._last[0]
            self.measured_s += now - self._last[1]
        self._last, self._last_train_ms = (train_ms, now), train_ms

    def flags(self, parser: LogParser) -> list[str]:
        target = parser.first_at_or_below_target()
        if target is None or target["train_time_ms"] is None:
            return []
        arrival, train_before = self.points[parser.steps.index(target)]
        flags = []
        if target["train_time_ms"] / 1000 > arrival + self.SLACK_S:
            flags.append("claims_more_time_than_elapsed")
        if train_before is not None and target["train_time_ms"] < train_before:
            flags.append("target_time_behind_train_time")
        if self.measured_s >= self.MIN_MEASURED_S and self.printed_ms / 1000 < self.MIN_RATE * self.measured_s:
            flags.append("clock_slower_than_harness")
        return flags


def run_job(cmd: list[str], env: dict[str, str], log_path, rules: StopRules,
            stop_event: threading.Event | None = None, on_point=None, cwd=None,
            grace_s: float = 5.0, sandbox: Sandbox | None = None, ro_paths=(), on_line=None) -> dict:
    """Run `cmd` in its own process group until it exits or a stop rule fires.

    Every output line (stdout and stderr together, cut to the log caps of the sandbox's config, or
    of the default config without one) goes to log_path as it arrives and through the live
    parser; on_point(point) is called for each validation point, on_line(line) for each line.

    With a sandbox, `cmd` runs confined with exactly `env`, in `cwd` (its work folder: required,
    read-write; keep log_path outside it), seeing `ro_paths` read-only. Without one it runs on the
    host (the callers not yet moved to a sandbox).

    Returns the result dict (reason, status, flags, returncode, signal, sandbox, time_to_target_ms,
    steps, final_val_loss, log_path, wall_s, ...).
    """
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    caps = sandbox.config if sandbox is not None else SandboxConfig()
    parser = LogParser(rules.target)
    clock = HarnessClock()
    tail: collections.deque = collections.deque(maxlen=TAIL_LINES)
    lines: queue.Queue = queue.Queue()
    known: dict[int, psutil.Process] = {}
    start = time.monotonic()
    started_at = time.time()
    reason = None
    confined = None
    with open(log_path, "w") as log:

        def take(line: str) -> None:
            log.write(line)
            tail.append(line)
            before = (parser.last_step, parser.last_train_time_ms)
            point = parser.feed(line)
            if "cpu_s" not in cpu_to_target and parser.first_at_or_below_target() is not None:
                cpu_to_target["cpu_s"] = tree_cpu_seconds(proc.pid)
            timed = (parser.last_step, parser.last_train_time_ms) != before
            clock.feed(point, parser.last_train_time_ms if timed else None, time.monotonic() - start)
            if point is not None and on_point is not None:
                on_point(point)
            if on_line is not None:
                on_line(line)

        cpu_to_target: dict[str, float] = {}  # the job's CPU seconds when the target line arrived
        pipes = dict(stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        if sandbox is None:
            proc = subprocess.Popen(cmd, env=env, cwd=cwd, start_new_session=True, **pipes)
        else:
            if cwd is None:
                raise ValueError("a sandboxed job needs cwd, its work folder")
            log.write(f"[scalerun] sandbox mode {sandbox.mode}, work folder {cwd}\n")
            confined = sandbox.start(cmd, env, cwd, ro_paths, **pipes)
            proc = confined.proc
        pump = threading.Thread(target=_pump, args=(proc.stdout, lines, caps.log_line_bytes, caps.log_total_bytes),
                                daemon=True)
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
                elif line is FLOOD:
                    reason = "log_flood"
                    break
                elif line:
                    take(line)
                    log.flush()
                now = time.monotonic()
                if now - last_scan > 1.0:  # remember the tree, to find orphans later
                    known.update({p.pid: p for p in descendants(proc.pid)})
                    last_scan = now
                reason = stop_reason(rules, parser, now - start)
                if reason is None and confined is not None:
                    reason = confined.check()
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
            if confined is not None:
                confined.close()
            pump.join(timeout=5.0)
            proc.stdout.close()
            while not lines.empty():  # lines printed before the kill still belong in the log
                line = lines.get()
                if isinstance(line, str) and line:
                    take(line)
    wall_s = time.monotonic() - start
    result = parser.result()
    reached = result["first_step_at_or_below_target"] is not None
    if reason is None:
        if reached:
            reason = "target_reached"
        elif proc.returncode == 0:
            reason = "missed_target"
        else:
            reason = confined.exit_reason(proc.returncode, tail) if confined is not None else "crashed"
    flags = clock.flags(parser) if sandbox is not None else []  # the callers not yet moved trust their jobs
    status = "ok" if reached and reason not in ("nan", "diverged") else "failed"
    return {
        "reason": reason,
        "status": "flagged" if flags and status == "ok" else status,
        "flags": flags,
        "sandbox": sandbox.mode if sandbox is not None else None,
        "returncode": proc.returncode,
        "signal": exit_signal(proc.returncode, sandbox is not None and sandbox.mode != "off"),
        "time_to_target_ms": result["time_to_target_ms"],
        "cpu_s_to_target": cpu_to_target.get("cpu_s"),  # the harness's process-CPU clock, start-up included
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
