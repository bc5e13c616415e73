"""Ideas for the AI-Scientist loop: JSON parsing, retries with the parse error, reflections,
dropping with a reason, the offline duplicate filter, and the scripted coder's edits."""
import json
from types import SimpleNamespace

import pytest

from orchestrator.driver import LocalPool, drive
from orchestrator.experiments import load_config
from orchestrator.protocols import Propose, Proposal, ProposeRequest
from orchestrator.scientist.coder import ScriptedCoder, Sweep
from orchestrator.edits import apply_edit, search_replace
from orchestrator.scientist.experiment import execute, units
from orchestrator.scientist.ideas import IdeaError, duplicate_of, filter_duplicates, generate_ideas, parse_idea
from orchestrator.scientist.protocol import ALL_COMPLETED, HINT_EXPERIMENT, HINT_IDEA, IDEA_DONE
from test_scientist_loop import ListCoder, make_template

GOOD = {"name": "warmup", "title": "Longer Warmup", "experiment": "Try 100 warmup steps.", "interestingness": 3,
        "feasibility": 9, "novelty": 2}


def test_parse_idea_accepts_fenced_json_and_names_what_is_wrong():
    assert parse_idea("Here it is:\n```json\n" + json.dumps(GOOD) + "\n```") == GOOD
    for text, why in (("no braces", "no JSON object"), ("{'name': 1}", "invalid JSON"),
                      (json.dumps({**GOOD, "novelty": 11}), "novelty must be an integer from 1 to 10"),
                      (json.dumps({**GOOD, "name": "Has Spaces"}), "name 'Has Spaces' must match"),
                      (json.dumps({k: v for k, v in GOOD.items() if k != "title"}), "missing fields: title"),
                      ("[1, 2]", "no JSON object")):
        with pytest.raises(IdeaError, match=why):
            parse_idea(text)


def run_generation(answers, num_ideas=2, reflections=3, json_retries=2, archive=()):
    coder = ListCoder([Proposal(edit=a) for a in answers])
    job = generate_ideas("Lower the loss.", "lr = 1", list(archive), num_ideas, reflections, json_retries, 0.8, 0)
    [(_, slots, _)] = list(drive([("ideas", job)], {Propose: LocalPool(coder)}, 1))
    return slots, coder


def test_malformed_json_is_retried_with_the_error_then_dropped_and_generation_goes_on():
    other = {**GOOD, "name": "width", "title": "Wider Model", "experiment": "Use n_embd 128 instead of 64."}
    slots, coder = run_generation(["not json", "{broken}", '{"name": "x"}',  # slot 0: three malformed answers
                                   json.dumps(other), IDEA_DONE])  # slot 1: fine, kept at the first reflection
    assert slots[0]["idea"] is None and slots[0]["reason"].startswith("malformed JSON after 3 tries: missing fields")
    assert "invalid JSON" in coder.requests[2].history[-1]  # the retry carries the parse error
    assert slots[1]["idea"] == other
    assert [r.hint for r in coder.requests] == ["idea", "idea", "idea", "idea", "reflect"]
    assert coder.answers == []


def test_reflections_improve_the_idea_at_most_three_times():
    versions = [{**GOOD, "title": f"Warmup v{i}"} for i in range(5)]
    slots, coder = run_generation([json.dumps(v) for v in versions], num_ideas=1)
    assert slots[0]["idea"]["title"] == "Warmup v3"  # the answer plus three reflections
    assert len(coder.requests) == 4 and [a.edit for a in coder.answers] == [json.dumps(versions[4])]
    assert "Reflection 3 of 3" in coder.requests[3].history[-1]


def test_a_malformed_reflection_keeps_the_last_valid_idea():
    slots, _ = run_generation([json.dumps(GOOD), "oops", "oops", "oops"], num_ideas=1)
    assert slots[0]["idea"] == GOOD


def test_generated_duplicates_of_the_archive_are_dropped_with_a_reason():
    copy = {**GOOD, "name": "warmup_again", "title": "longer   WARMUP!"}
    slots, coder = run_generation([json.dumps(copy), IDEA_DONE], num_ideas=1, archive=[GOOD])
    assert slots[0]["idea"] is None and slots[0]["reason"] == "duplicate: same title as 'warmup'"
    assert coder.requests[0].history[0].startswith("Existing idea warmup: Longer Warmup.")


def test_duplicate_filter_by_text_similarity_and_threshold():
    near = {**GOOD, "name": "warmup2", "title": "Longer Warmups", "experiment": "Try 100 warmup steps!"}
    far = {**GOOD, "name": "muon", "title": "Muon optimiser", "experiment": "Replace AdamW with Muon on matrices."}
    assert "similar to 'warmup'" in duplicate_of(near, [GOOD], 0.8)
    assert duplicate_of(far, [GOOD], 0.8) is None
    assert duplicate_of(near, [GOOD], 1.0) is None  # only identical text at threshold 1
    kept, dropped = filter_duplicates([GOOD, near, far], [], 0.8)
    assert [i["name"] for i in kept] == ["warmup", "muon"] and dropped[0]["name"] == "warmup2"


def test_malformed_and_duplicate_seed_ideas_end_as_recorded_failures(tmp_path, runs_dir):
    folder = make_template(tmp_path / "template")
    seeds = [{"name": "no_scores", "title": "t", "experiment": "e"}, GOOD, {**GOOD, "name": "warmup_copy"}]
    (folder / "seed_ideas.json").write_text(json.dumps(seeds))
    cfg = load_config("ai-scientist-smoke", [f"template={folder}", "ideas.names=[]", "ideas.num_ideas=3"])
    pending = units(cfg)
    ctx = SimpleNamespace(run_dir=tmp_path / "run", log=lambda line: None, in_flight=lambda d: d)
    rows = execute(cfg, pending, ctx)
    # the good idea would run on the cluster: stop once the two failures are recorded
    dropped = [next(rows), next(rows)]
    assert [(u["slot"], r["status"]) for u, r in dropped] == [(0, "dropped"), (2, "dropped")]
    assert dropped[0][1]["reason"] == "malformed seed idea: missing fields: interestingness, feasibility, novelty"
    assert dropped[1][1]["reason"] == "duplicate: same title as 'warmup'"


def test_scripted_coder_sweeps_a_parameter_then_completes():
    coder = ScriptedCoder({"lr_idea": Sweep("learning_rate", ["3e-3", "1e-2"])})
    script = "n_embd = 64\nlearning_rate = 1e-3  # peak\n"
    task = "You are...\nIdea: lr_idea\nTitle: x"
    values = []
    for _ in range(3):
        [p] = coder.propose([ProposeRequest(task=task, script=script, hint=HINT_EXPERIMENT)])
        if p.edit == ALL_COMPLETED:
            break
        script = apply_edit(script, p.edit)[0]
        values.append(script.splitlines()[1])
    assert values == ["learning_rate = 3e-3", "learning_rate = 1e-2"] and p.edit == ALL_COMPLETED
    [other] = coder.propose([ProposeRequest(task="Idea: unknown", script=script, hint=HINT_EXPERIMENT)])
    assert other.edit == ALL_COMPLETED


def test_scripted_coder_proposes_a_sweep_not_in_the_archive():
    coder = ScriptedCoder({"a": Sweep("x", ["1"]), "b": Sweep("y", ["2"])})
    [p] = coder.propose([ProposeRequest(task="", script="", hint=HINT_IDEA, history=("Existing idea a: A. x",))])
    assert parse_idea(p.edit)["name"] == "b"


def test_coder_ideas_are_generated_once_kept_in_ideas_json_and_duplicates_dropped(tmp_path):
    from orchestrator.scientist.experiment import coder_slots
    from orchestrator.scientist.template import load_template
    folder = make_template(tmp_path / "template")
    cfg = load_config("ai-scientist-smoke", [f"template={folder}", "ideas.source=coder", "ideas.names=[]", "ideas.num_ideas=4",
                                             "ideas.duplicate_threshold=0.95",
                                             "coder.sweeps={lr: {param: lr, values: ['1']}, width: {param: w, values: ['2']}}"])
    template = load_template(folder)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    coder = ListCoder([])
    coder.propose = ScriptedCoder(dict(cfg.coder.sweeps)).propose  # the scripted coder, counted below
    slots = coder_slots(cfg, template, LocalPool(coder), run_dir, lambda line: None)
    names = [s["idea"]["name"] if s["idea"] else None for s in slots]
    # the smoke preset's own learning_rate sweep comes first; the fourth idea repeats the last
    # (the scripted ideas differ only in their parameter: at 0.8 the filter drops them as one)
    assert names == ["learning_rate", "lr", "width", None] and slots[3]["reason"] == "duplicate: same name as 'width'"
    assert json.loads((run_dir / "ideas.json").read_text()) == slots
    assert coder_slots(cfg, template, LocalPool(None), run_dir, lambda line: None) == slots  # reused, not asked
