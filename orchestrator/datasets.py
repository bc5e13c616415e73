"""Problems for search and sampling experiments: the tiny world's `arith`, or a local JSONL file.

Every problem is `(id, question, answer, level)`; a JSONL line names its fields with the
config's question/answer/level keys (MATH-500, GSM8K or CHAMP exported to JSONL load as is).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from orchestrator.config import ConfigError, check_choice, check_path_exists
from orchestrator.tasks import arith


@dataclass
class DatasetConfig:
    name: str = "arith"  # arith | jsonl
    path: str | None = None  # jsonl: a local file with question/answer(/level) fields
    split: str = "test"
    num_problems: int = 100
    question_key: str = "question"
    answer_key: str = "answer"
    level_key: str = "level"

    def validate(self, key: str) -> None:
        check_choice(f"{key}.name", self.name, ("arith", "jsonl"))
        if self.name == "jsonl":
            check_path_exists(f"{key}.path", self.path)
        if self.num_problems < 1:
            raise ConfigError(f"{key}.num_problems", self.num_problems, "must be a positive int")


@dataclass(frozen=True)
class Item:
    id: str
    question: str
    answer: str
    level: int | None = None
    reference_steps: tuple[str, ...] = ()  # a checkable reference solution, where the task has one


def load_items(cfg) -> list[Item]:
    """The first `num_problems` problems of the configured dataset, in a fixed order."""
    if cfg.name == "arith":
        per_level = -(-cfg.num_problems // len(arith.LEVELS))
        problems = arith.problems(cfg.split, per_level, seed=arith.TEST_SEED)
        by_level = [[p for p in problems if p.level == lvl] for lvl in arith.LEVELS]
        interleaved = [lvl[i] for i in range(per_level) for lvl in by_level]  # every level represented
        return [Item(p.id, p.question, p.answer, p.level, p.reference_steps) for p in interleaved[:cfg.num_problems]]
    if cfg.name == "jsonl":
        items = []
        for n, line in enumerate(Path(cfg.path).expanduser().read_text().splitlines()):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ConfigError("dataset.path", cfg.path, f"line {n + 1}: not valid JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise ConfigError("dataset.path", cfg.path, f"line {n + 1}: a JSON object is needed, got "
                                  f"{type(row).__name__}")
            for key in (cfg.question_key, cfg.answer_key):
                if key not in row:
                    raise ConfigError("dataset." + ("question_key" if key == cfg.question_key else "answer_key"),
                                      key, f"line {n + 1} of {cfg.path} has only {sorted(row)}")
            question = str(row[cfg.question_key])
            level = row.get(cfg.level_key)
            item_id = str(row.get("id") or row.get("unique_id") or hashlib.sha1(question.encode()).hexdigest()[:12])
            digits = "".join(ch for ch in str(level) if ch.isdigit()) if level is not None else ""
            items.append(Item(item_id, question, str(row[cfg.answer_key]), int(digits) if digits else None))
        return items[:cfg.num_problems]
    raise ConfigError("dataset.name", cfg.name, "allowed: arith, jsonl")
