"""Answer extraction and equivalence, shared by every task.

`grade(text, gold)` extracts the final answer of a model output and compares it with the
gold answer. Plain numbers are compared exactly in-process; everything else goes through
`math_verify`, which runs in a worker process with a hard timeout, because sympy can spin
for minutes on a pathological input and signal-based timeouts only work in a main thread.
Results are cached per unique (prediction, gold) pair.
"""
from __future__ import annotations

import functools
import json
import os
import re
import select
import subprocess
import sys
import threading
from decimal import Decimal
from pathlib import Path

DEFAULT_TIMEOUT_S = 5.0
_WORKER_START_S = 30.0
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")
_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$")


def _balanced_braces(text: str, start: int) -> str | None:
    """The content of the brace group opening at text[start] == '{', or None if unclosed."""
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[start + 1:i]
    return None


def _last_boxed(text: str) -> str | None:
    for match in reversed(list(re.finditer(r"\\(?:boxed|fbox)\s*", text))):
        end = match.end()
        if end < len(text) and text[end] == "{":
            content = _balanced_braces(text, end)
            if content is not None:
                return content
        else:  # "\boxed 5"
            bare = re.match(r"[^\s$]+", text[end:])
            if bare:
                return bare.group(0)
    return None


def _clean(answer: str) -> str:
    answer = answer.strip().strip("$").strip()
    return answer.rstrip(".").strip()


def extract_answer(text: str, truncated: bool = False) -> str | None:
    """The final answer in a model output: the last \\boxed{...} (nested braces allowed), else
    the rest of the sentence after the last "answer is"/"Answer:", else the last number; None
    if none. A truncated output (cut at the token limit) answers only with a boxed answer: its
    last number or statement is usually an intermediate one."""
    if not text or not text.strip():
        return None
    boxed = _last_boxed(text)
    if boxed is not None:
        return _clean(boxed) or None
    if truncated:
        return None
    stated = list(re.finditer(r"answer\s*(?:is|:|=)\s*", text, flags=re.IGNORECASE))
    if stated:
        rest = text[stated[-1].end():].split("\n", 1)[0]
        sentence = re.split(r"\.\s", rest, maxsplit=1)[0]  # "5. Wait, ..." ends at the period
        if _clean(sentence):
            return _clean(sentence)
    numbers = re.findall(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?|[+-]?\d+(?:\.\d+)?(?:/\d+)?", text)
    return numbers[-1] if numbers else None


def _as_number(answer: str) -> Decimal | None:
    answer = _clean(answer).replace(" ", "")
    if _THOUSANDS.match(answer):
        answer = answer.replace(",", "")
    return Decimal(answer) if _NUMBER.match(answer) else None


def serve_verifier(timeout_s: int) -> None:
    """Worker process loop: one JSON [prediction, gold] per stdin line, one JSON bool out."""
    from math_verify import parse, verify

    def parse_answer(answer: str):
        return parse(answer if "$" in answer else f"${answer}$", parsing_timeout=timeout_s)

    for line in sys.stdin:
        prediction, gold = json.loads(line)
        try:
            gold_parsed, prediction_parsed = parse_answer(gold), parse_answer(prediction)
            if gold_parsed and prediction_parsed:
                result = bool(verify(gold_parsed, prediction_parsed, timeout_seconds=timeout_s))
            else:
                result = _clean(prediction) == _clean(gold)
        except Exception:
            result = False
        print(json.dumps(result), flush=True)


class _Verifier:
    """One math_verify worker process, killed and later restarted when a call times out.

    A plain subprocess rather than multiprocessing, so that callers need no __main__ guard."""

    def __init__(self, timeout_s: float):
        self.timeout_s = timeout_s
        self.lock = threading.Lock()
        self.process: subprocess.Popen | None = None

    def _start(self) -> None:
        package_root = str(Path(__file__).resolve().parent.parent)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [package_root] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
        code = f"from orchestrator.grading import serve_verifier; serve_verifier({max(1, int(self.timeout_s))})"
        self.process = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True, env=env)

    def _kill(self) -> None:
        self.process.kill()
        self.process.wait()
        self.process = None

    def __call__(self, prediction: str, gold: str) -> bool:
        with self.lock:
            starting = self.process is None
            if starting:
                self._start()
            try:
                self.process.stdin.write(json.dumps([prediction, gold]) + "\n")
                self.process.stdin.flush()
            except BrokenPipeError:
                self._kill()
                return False
            # A fresh worker first pays for its start and the sympy import.
            deadline = self.timeout_s + (_WORKER_START_S if starting else 1.0)
            ready, _, _ = select.select([self.process.stdout], [], [], deadline)
            line = self.process.stdout.readline() if ready else ""
            if not line:  # timed out or died
                self._kill()
                return False
            return json.loads(line)


_verifier = _Verifier(DEFAULT_TIMEOUT_S)


@functools.lru_cache(maxsize=100_000)
def answers_equal(prediction: str, gold: str) -> bool:
    """Whether an extracted answer equals the gold answer (math equivalence)."""
    if _clean(prediction) == _clean(gold):
        return True
    prediction_number, gold_number = _as_number(prediction), _as_number(gold)
    if prediction_number is not None and gold_number is not None:
        return prediction_number == gold_number
    return _verifier(prediction, gold)


def grade(text: str, gold: str, truncated: bool = False) -> bool:
    """Whether a model output's final answer is equivalent to the gold answer (see
    `extract_answer` for a truncated output)."""
    answer = extract_answer(text, truncated)
    return answer is not None and answers_equal(answer, gold)
