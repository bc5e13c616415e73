"""Task registry: a task is a module with `problems(split, n_per_level, seed)`,
`test_problems()`, `step_correctness(problem, steps)` and `is_fully_correct(problem, steps)`."""
from __future__ import annotations

from types import ModuleType

from orchestrator.tasks import arith

TASKS: dict[str, ModuleType] = {arith.NAME: arith}


def get_task(name: str) -> ModuleType:
    if name not in TASKS:
        raise KeyError(f"unknown task {name!r}; known: {sorted(TASKS)}")
    return TASKS[name]
