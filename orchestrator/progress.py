"""Progress for long loops: a live bar on a terminal, sparse plain lines elsewhere.

`ray job submit` logs and CI output are not terminals; there a line every 10% or 30 s keeps
the log readable instead of filling it with redrawn bars.
"""
from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, description: str, total: int, mode: str = "auto", done: int = 0):
        self.description, self.total, self.done = description, total, done
        if mode == "auto":
            mode = "bar" if sys.stdout.isatty() else "lines"
        self.mode = mode
        self.start = time.monotonic()
        self._started_done = done
        self._last_line = (self.start, done)
        self._bar = None
        if mode == "bar":
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress as RichProgress,
                                       TextColumn, TimeElapsedColumn, TimeRemainingColumn)
            self._bar = RichProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
                                     TimeRemainingColumn(), transient=False)
            self._task = self._bar.add_task(description, total=total, completed=done, rate="")
            self._bar.start()
        elif mode == "lines":
            self._line(force=True)

    def rate(self) -> float:
        elapsed = time.monotonic() - self.start
        return (self.done - self._started_done) / elapsed if elapsed > 0 else 0.0

    def eta_seconds(self) -> float | None:
        r = self.rate()
        return (self.total - self.done) / r if r > 0 else None

    def log(self, message: str) -> None:
        """A message above the bar (or a plain line), prefixed with the loop's name."""
        line = f"[{self.description}] {message}"
        if self._bar is not None:
            self._bar.console.print(line, markup=False)
        elif self.mode != "quiet":
            print(line, flush=True)

    def advance(self, n: int = 1) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done, rate=f"{self.rate():.2f}/s")
        elif self.mode == "lines":
            self._line()

    def _line(self, force: bool = False) -> None:
        now = time.monotonic()
        last_t, last_done = self._last_line
        step = max(1, self.total // 10)
        if force or self.done == self.total or now - last_t >= 30 or self.done - last_done >= step:
            eta = self.eta_seconds()
            eta_s = f", eta {eta:.0f}s" if eta is not None else ""
            print(f"[progress] {self.description}: {self.done}/{self.total} "
                  f"({self.rate():.2f}/s{eta_s})", flush=True)
            self._last_line = (now, self.done)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
