"""Research ideas: parsing a coder's JSON, generation with reflections, and the offline
duplicate filter.

An idea is a dict with name (a short identifier), title, experiment (what to try) and the
integer scores interestingness, feasibility and novelty (1 to 10). A coder's answer that is
not such a JSON object is asked again with the parse error, `json_retries` times, then the idea
is dropped with the reason. There is no web novelty search: duplicates are found offline only,
by normalised title and text similarity against the archive (the ideas kept so far).
"""
from __future__ import annotations

import difflib
import json
import re

from orchestrator.protocols import Propose, ProposeRequest
from orchestrator.scientist.protocol import HINT_IDEA, HINT_REFLECT, IDEA_DONE

TEXT_FIELDS = ("name", "title", "experiment")
SCORE_FIELDS = ("interestingness", "feasibility", "novelty")
IDEA_FIELDS = TEXT_FIELDS + SCORE_FIELDS
NAME = re.compile(r"^[a-z0-9][a-z0-9_]{0,47}$")
IDEA_FORMAT = ('one JSON object: {"name": "lowercase_with_underscores", "title": "...", "experiment": "...", '
               '"interestingness": 1-10, "feasibility": 1-10, "novelty": 1-10}')


class IdeaError(ValueError):
    """Why a text is not an idea (said to the coder when it is asked again)."""


def parse_idea(text: str) -> dict:
    """The idea in `text`: the outermost {...} (a ```json fence or words around it are fine)."""
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end < start:
        raise IdeaError("no JSON object found")
    try:
        idea = json.loads(text[start:end + 1])
    except json.JSONDecodeError as e:
        raise IdeaError(f"invalid JSON: {e}") from None
    return check_idea(idea)


def check_idea(idea) -> dict:
    if not isinstance(idea, dict):
        raise IdeaError("the JSON is not an object")
    missing = [f for f in IDEA_FIELDS if f not in idea]
    if missing:
        raise IdeaError(f"missing fields: {', '.join(missing)}")
    for f in TEXT_FIELDS:
        if not isinstance(idea[f], str) or not idea[f].strip():
            raise IdeaError(f"{f} must be a non-empty string")
    if not NAME.match(idea["name"]):
        raise IdeaError(f"name {idea['name']!r} must match {NAME.pattern}")
    for f in SCORE_FIELDS:
        if isinstance(idea[f], bool) or not isinstance(idea[f], int) or not 1 <= idea[f] <= 10:
            raise IdeaError(f"{f} must be an integer from 1 to 10, got {idea[f]!r}")
    return {f: idea[f].strip() if f in TEXT_FIELDS else idea[f] for f in IDEA_FIELDS}


def normalised(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text.lower()).split())


def duplicate_of(idea: dict, archive: list[dict], threshold: float) -> str | None:
    """Why `idea` repeats one in the archive (same name, same normalised title, or title and
    experiment text at least `threshold` similar), else None."""
    text = normalised(idea["title"] + " " + idea["experiment"])
    for other in archive:
        if other["name"] == idea["name"]:
            return f"same name as {other['name']!r}"
        if normalised(other["title"]) == normalised(idea["title"]):
            return f"same title as {other['name']!r}"
        ratio = difflib.SequenceMatcher(None, text, normalised(other["title"] + " " + other["experiment"])).ratio()
        if ratio >= threshold:
            return f"text {ratio:.2f} similar to {other['name']!r} (threshold {threshold})"
    return None


def filter_duplicates(ideas: list[dict], archive: list[dict], threshold: float) -> tuple[list[dict], list[dict]]:
    """(kept ideas, dropped rows {name, reason}); each idea is checked against the archive and
    the ideas kept before it."""
    kept, dropped = [], []
    for idea in ideas:
        why = duplicate_of(idea, archive + kept, threshold)
        if why:
            dropped.append({"name": idea["name"], "title": idea["title"], "reason": f"duplicate: {why}"})
        else:
            kept.append(idea)
    return kept, dropped


def _archive_lines(archive: list[dict]) -> tuple[str, ...]:
    return tuple(f"Existing idea {a['name']}: {a['title']}. {a['experiment']}" for a in archive)


def generate_idea(task: str, script: str, archive: list[dict], reflections: int, json_retries: int, seed: int):
    """A generator (for the driver) that asks the coder for one new idea and up to `reflections`
    improvements of it; returns (idea or None, record). The record lists every answer's fate;
    its `reason` says why no idea came (malformed JSON after the retries). A reflection that stays
    malformed keeps the last valid version."""
    history = list(_archive_lines(archive))
    record = {"answers": [], "reason": ""}
    idea = None
    for round_ in range(reflections + 1):
        hint = HINT_IDEA if round_ == 0 else HINT_REFLECT
        if round_:
            history.append(f"Reflection {round_} of {reflections}: your idea was {json.dumps(idea)}. Check it for "
                           f"correctness, feasibility and clarity; answer the improved {IDEA_FORMAT}, or "
                           f"{IDEA_DONE!r} to keep it.")
        for retry in range(json_retries + 1):
            req = ProposeRequest(task=f"{task}\n\nPropose a new research idea as {IDEA_FORMAT}.", script=script,
                                 hint=hint, history=tuple(history), seed=seed * 1000 + round_ * 10 + retry)
            proposal = (yield Propose([req]))[0]
            answer = proposal.edit if proposal.error is None else ""
            if round_ and IDEA_DONE.lower() in answer.lower():
                record["answers"].append({"round": round_, "outcome": "done"})
                return idea, record
            try:
                if proposal.error is not None:
                    raise IdeaError(f"coder error: {proposal.error}")
                idea = parse_idea(answer)
                record["answers"].append({"round": round_, "outcome": "ok"})
                break
            except IdeaError as e:
                record["answers"].append({"round": round_, "outcome": "malformed", "error": str(e)})
                history.append(f"Your answer could not be used: {e}. Answer again with {IDEA_FORMAT}.")
        else:
            if idea is None:
                record["reason"] = f"malformed JSON after {json_retries + 1} tries: {record['answers'][-1]['error']}"
                return None, record
            return idea, record
    return idea, record


def generate_ideas(task: str, script: str, archive: list[dict], num_ideas: int, reflections: int,
                   json_retries: int, threshold: float, seed: int):
    """A generator that makes `num_ideas` ideas one after another, each seeing the archive and
    the ideas before it; returns a list of `num_ideas` slots, each {"idea": ...} or
    {"idea": None, "reason": ...} (malformed or a duplicate)."""
    slots, known = [], list(archive)
    for k in range(num_ideas):
        idea, record = yield from generate_idea(task, script, known, reflections, json_retries, seed + k)
        if idea is None:
            slots.append({"idea": None, "reason": record["reason"], "answers": record["answers"]})
            continue
        why = duplicate_of(idea, known, threshold)
        if why:
            slots.append({"idea": None, "reason": f"duplicate: {why}", "answers": record["answers"],
                          "proposed": idea})
            continue
        known.append(idea)
        slots.append({"idea": idea, "reason": "", "answers": record["answers"]})
    return slots
