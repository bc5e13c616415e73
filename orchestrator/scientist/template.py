"""A template folder, as AI-Scientist's: experiment.py (takes --out_dir=run_i, writes
run_i/final_info.json), plot.py (reads the run folders, writes PNGs), prompt.json (system,
task_description) and seed_ideas.json (a list of ideas)."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

FILES = ("experiment.py", "plot.py", "prompt.json", "seed_ideas.json")


class TemplateError(ValueError):
    """A template folder that breaks the contract; the message names the file."""


@dataclass(frozen=True)
class Template:
    folder: Path
    experiment: str
    plot: str
    system: str
    task_description: str
    seed_ideas: list

    def sha256(self) -> str:
        """Of the four files' contents: an edited template makes new work units."""
        h = hashlib.sha256()
        for name in FILES:
            h.update((self.folder / name).read_bytes())
        return h.hexdigest()[:16]


def load_template(folder) -> Template:
    folder = Path(folder)
    missing = [n for n in FILES if not (folder / n).is_file()]
    if missing:
        raise TemplateError(f"{folder}: missing {', '.join(missing)}")
    try:
        prompt = json.loads((folder / "prompt.json").read_text())
        seeds = json.loads((folder / "seed_ideas.json").read_text())
    except json.JSONDecodeError as e:
        raise TemplateError(f"{folder}: invalid JSON: {e}") from None
    if not isinstance(prompt, dict) or not all(isinstance(prompt.get(k), str) for k in ("system", "task_description")):
        raise TemplateError(f"{folder}/prompt.json: needs string fields system and task_description")
    if not isinstance(seeds, list):
        raise TemplateError(f"{folder}/seed_ideas.json: must be a list of ideas")
    return Template(folder, (folder / "experiment.py").read_text(), (folder / "plot.py").read_text(),
                    prompt["system"], prompt["task_description"], seeds)
