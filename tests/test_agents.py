"""Research-agent rollouts on a fake evaluator: scaffold shapes, local vs global selection,
seeded journals, rejected edits and integrity violations never run, kill and resume, edits, the
best node and scaffold checks on hand-worked cases, a transition's FSR with missed runs."""
import random
import re
from pathlib import Path

import pytest

from conftest import REPO
from orchestrator.agents.coders import HOSTILE, MutateCoder, ReplayCoder, ScriptedCoder, diff_blocks, hostile
from orchestrator.edits import EditError, apply_edit, search_replace, whole_file
from orchestrator.agents.journal import Journal, Node, Tree, read_events, without_timing
from orchestrator.agents.protocol import Evaluate, Evaluation
from orchestrator.agents.scaffolds import PRESETS, Scaffold
from orchestrator.agents.search import Task, best_of, rollout
from orchestrator.driver import LocalPool, drive
from orchestrator.protocols import Propose, Proposal

ROOT_SCRIPT = "val_tokens = 8192\nspeed = 10\nbroken = 0\n"


class FakeEvaluator:
    """Time to target 100 / speed; `broken = 1` crashes. Records every script it runs."""

    def __init__(self, fail_after: int | None = None):
        self.ran: list[str] = []
        self.fail_after = fail_after

    def evaluate(self, requests):
        out = []
        for r in requests:
            if self.fail_after is not None and len(self.ran) >= self.fail_after:
                raise KeyboardInterrupt("killed")
            self.ran.append(r.sha)
            if "broken = 1" in r.script:
                out.append(Evaluation("failed", "crashed", log_tail="Traceback: boom"))
                continue
            speed = float(re.search(r"^speed = (\S+)$", r.script, re.M).group(1))
            out.append(Evaluation("ok", "target_reached", time_to_target_s=round(100 / speed, 6), wall_s=random.random()))
        return out


def seeded_coder(bug_rate=0.3):
    """Scales speed by a factor drawn from the request's seed; breaks the script at `bug_rate`;
    a debug request fixes it."""
    def answer(request):
        rng = random.Random(request.seed)
        if "Step: debug" in request.task:
            return Proposal(search_replace("broken = 1", "broken = 0"), "fix the crash")
        speed = re.search(r"^speed = .*$", request.script, re.M).group(0)
        new = f"speed = {float(speed.split('= ')[1]) * rng.choice([0.8, 0.9, 1.1, 1.25]):.6g}"
        edit = search_replace(speed, new)
        if rng.random() < bug_rate and "broken = 0" in request.script:
            edit += "\n" + search_replace("broken = 0", "broken = 1")
        return Proposal(edit, f"set {new}")
    return ScriptedCoder(answer)


def no_violations(script):
    return [] if "val_tokens = 8192" in script else ["pinned setting val_tokens changed"]


def run(scaffold, path, coder=None, evaluator=None, seed=0, **kwargs):
    evaluator = evaluator or FakeEvaluator()
    task = Task("fake/01", "fake/02", ROOT_SCRIPT, "Record: fake/01\nReach the target sooner.")
    journal = Journal(path)
    try:
        jobs = [("unit", rollout(task, scaffold, journal, seed, no_violations, **kwargs))]
        pools = {Evaluate: LocalPool(evaluator), Propose: LocalPool(coder or seeded_coder())}
        [(_, tree, _)] = list(drive(jobs, pools, max_active=1))
    finally:
        journal.close()
    return tree, evaluator


def steps(path):
    return [(e["action"], e["target"], e["count"]) for e in read_events(path) if e["event"] == "select"]


def test_flat_is_twenty_children_of_the_root(tmp_path):
    tree, _ = run(PRESETS["flat"], tmp_path / "j.jsonl")
    assert len(tree.nodes) == 21 and tree.nodes[0].children == list(range(1, 21))
    assert steps(tmp_path / "j.jsonl") == [("draft", 0, 20)]


def test_tree_is_one_then_three_per_round_up_to_twenty(tmp_path):
    tree, _ = run(PRESETS["tree"], tmp_path / "j.jsonl", coder=seeded_coder(bug_rate=0))
    counts = [c for _, _, c in steps(tmp_path / "j.jsonl")]
    assert counts == [1, 3, 3, 3, 3, 3, 3, 1] and len(tree.nodes) == 21
    assert len(tree.nodes[0].children) == 1
    for action, target, count in steps(tmp_path / "j.jsonl")[1:]:
        assert action == "improve" and tree.nodes[target].good


def test_forest_drafts_three_then_branches_three(tmp_path):
    tree, _ = run(PRESETS["forest"], tmp_path / "j.jsonl")
    counts = [c for _, _, c in steps(tmp_path / "j.jsonl")]
    assert counts[0] == 3 and set(counts[1:-1]) == {3} and sum(counts) == 20


@pytest.mark.parametrize("name", ["aide", "multi_aide"])
def test_aide_debugs_only_buggy_leaves_within_depth(tmp_path, name):
    scaffold = Scaffold(**{**PRESETS[name].__dict__, "max_bug_depth": 2})
    never_fixed = ScriptedCoder(lambda r: Proposal(search_replace("broken = 0", "broken = 1"), "break it")
                                if "broken = 0" in r.script else Proposal(search_replace("speed = ", "speed = 1"), "try"))
    tree, _ = run(scaffold, tmp_path / "j.jsonl", coder=never_fixed)
    debugs = [(t, c) for a, t, c in steps(tmp_path / "j.jsonl") if a == "debug"]
    assert debugs, "no debug step happened"
    for target, count in debugs:
        assert count == 1
    for node in tree.nodes.values():
        if node.kind == "debug":
            parent = tree.nodes[node.parent]
            assert parent.buggy and parent.children == [node.id] and node.debug_depth == parent.debug_depth + 1
            assert node.debug_depth <= 2
    assert len(tree.nodes) - 1 <= scaffold.max_nodes
    improves = [c for a, _, c in steps(tmp_path / "j.jsonl")[1:] if a == "improve"]
    assert set(improves) <= {PRESETS[name].branching, 20 - sum(c for *_, c in steps(tmp_path / "j.jsonl")[:-1])}


def test_local_and_global_selection_choose_different_nodes(tmp_path):
    """Drafts: node 1 fast (good), node 2 buggy. Step 1 debugs node 2 (probability 1), the fix
    fails again. Step 2 improves: local selection looks at {root, node 2, node 3} and falls back
    to the root; global selection takes node 1, the best of the tree."""
    def answer(request):
        if "Step: debug" in request.task:
            return Proposal(search_replace("speed = 10", "speed = 11"), "still broken")
        if request.seed == 0 or "Step: improve" in request.task:
            return Proposal(search_replace("speed = ", "speed = 2"), "faster")
        return Proposal(search_replace("broken = 0", "broken = 1"), "broken")

    def seeded(seed, node, attempt):  # node 1's draft is the fast one
        return 0 if node == 1 else 1
    import orchestrator.agents.search as search
    original = search.request_seed
    search.request_seed = seeded
    try:
        chosen = {}
        for selection in ("local", "global"):
            scaffold = Scaffold("t", drafts=2, branching=1, iterations=3, max_nodes=10, debug_probability=1.0,
                                max_bug_depth=1, selection=selection)
            run(scaffold, tmp_path / f"{selection}.jsonl", coder=ScriptedCoder(answer))
            chosen[selection] = steps(tmp_path / f"{selection}.jsonl")
    finally:
        search.request_seed = original
    assert chosen["local"][:2] == chosen["global"][:2] == [("draft", 0, 2), ("debug", 2, 1)]
    assert chosen["local"][2] == ("improve", 0, 1) and chosen["global"][2] == ("improve", 1, 1)


def test_same_seed_same_journal_other_seed_another(tmp_path):
    journals = {}
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        run(PRESETS["multi_aide"], tmp_path / f"{name}.jsonl", seed=seed)
        journals[name] = [without_timing(e) for e in read_events(tmp_path / f"{name}.jsonl")]
    assert journals["a"] == journals["b"]
    assert journals["a"] != journals["c"]


def test_rejected_edit_and_integrity_violation_are_never_run(tmp_path):
    def answer(request):
        kind = HOSTILE[request.seed % 3]  # malformed, nonapplying, pinned
        return hostile(kind, request.script)
    import orchestrator.agents.search as search
    original = search.request_seed
    search.request_seed = lambda seed, node, attempt: node - 1
    try:
        tree, evaluator = run(Scaffold("flat3", drafts=3, branching=0, iterations=1, max_nodes=3),
                              tmp_path / "j.jsonl", coder=ScriptedCoder(answer))
    finally:
        search.request_seed = original
    assert evaluator.ran == [tree.nodes[0].sha]  # only the root ran
    events = read_events(tmp_path / "j.jsonl")
    for node in (1, 2):  # asked again with the reason, 5 reflections, then buggy
        edits = [e for e in events if e["event"] == "edit" and e["node"] == node]
        assert len(edits) == 6 and not any(e["applied"] for e in edits) and edits[-1]["final"]
        assert tree.nodes[node].buggy and tree.nodes[node].reason.startswith("edit rejected")
    assert tree.nodes[3].buggy and tree.nodes[3].reason.startswith("integrity: pinned setting val_tokens")
    assert tree.nodes[3].evaluation is None


def test_reflection_gets_the_apply_error(tmp_path):
    seen = []

    def answer(request):
        seen.append(request.history)
        if len(seen) == 1:
            return Proposal(search_replace("speed = 99", "speed = 20"), "stale")
        return Proposal(search_replace("speed = 10", "speed = 20"), "fixed")
    tree, _ = run(Scaffold("one", drafts=1, branching=0, iterations=1, max_nodes=1), tmp_path / "j.jsonl",
                  coder=ScriptedCoder(answer))
    assert "did not apply" in seen[1][-1] and "speed = 99" in seen[1][-1]
    assert tree.nodes[1].good and tree.nodes[1].time_s == 5.0


def test_kill_and_resume_evaluates_nothing_twice_and_writes_the_same_journal(tmp_path):
    scaffold = PRESETS["multi_aide"]
    whole, _ = run(scaffold, tmp_path / "whole.jsonl", seed=7)
    path = tmp_path / "killed.jsonl"
    first = FakeEvaluator(fail_after=6)
    with pytest.raises(KeyboardInterrupt):
        run(scaffold, path, evaluator=first, seed=7)
    with open(path, "a") as f:
        f.write('{"event": "evaluation", "node": 9')  # torn by the kill
    second = FakeEvaluator()
    resumed, _ = run(scaffold, path, evaluator=second, seed=7)
    assert len(first.ran) == 6 and second.ran and not set(first.ran) & set(second.ran)
    assert len(set(second.ran)) == len(second.ran)
    assert [without_timing(e) for e in read_events(path)] == [without_timing(e) for e in read_events(tmp_path / "whole.jsonl")]
    assert resumed.best == whole.best


def test_the_tree_is_rebuilt_from_the_journal(tmp_path):
    tree, _ = run(PRESETS["aide"], tmp_path / "j.jsonl", seed=1)
    rebuilt = Tree.from_events(read_events(tmp_path / "j.jsonl"))
    assert rebuilt.stats() == tree.stats() and rebuilt.best == tree.best
    assert {i: (n.parent, n.buggy, n.reason, n.sha) for i, n in rebuilt.nodes.items()} == \
        {i: (n.parent, n.buggy, n.reason, n.sha) for i, n in tree.nodes.items()}


def test_a_resumed_rollout_of_another_config_is_refused(tmp_path):
    from orchestrator.agents.journal import JournalMismatch
    run(PRESETS["tree"], tmp_path / "j.jsonl", seed=1)
    with pytest.raises(JournalMismatch):
        run(PRESETS["forest"], tmp_path / "j.jsonl", seed=1)


# ---- edits ----

def test_edit_blocks_whitespace_whole_file_and_errors():
    script = "a = 1\nb = 2   \nc = 3\n"
    assert apply_edit(script, search_replace("a = 1", "a = 5")) == ("a = 5\nb = 2   \nc = 3\n", "blocks")
    assert apply_edit(script, search_replace("b = 2\nc = 3", "b = 7\nc = 3"))[0] == "a = 1\nb = 7\nc = 3\n"
    assert apply_edit(script, whole_file("x = 1\n")) == ("x = 1\n", "whole_file")
    for bad, why in (("faster!", "neither format"), (search_replace("z = 9", "z = 1"), "not in the file"),
                     (search_replace("a = 1", "a = 1"), "unchanged"), (search_replace("", "q"), "empty")):
        with pytest.raises(EditError, match=why):
            apply_edit(script, bad)


def test_each_block_replaces_only_its_first_match_in_order():
    """A block replaces the first match only; the next block then sees the result."""
    script = "x = 1\nx = 1\n"
    assert apply_edit(script, search_replace("x = 1", "x = 2"))[0] == "x = 2\nx = 1\n"
    both = search_replace("x = 1", "x = 2") + "\n" + search_replace("x = 1", "x = 3")
    assert apply_edit(script, both)[0] == "x = 2\nx = 3\n"
    loose = "a = 1   \nb = 2\na = 1   \nb = 2\n"  # the whitespace-tolerant match: the first too
    assert apply_edit(loose, search_replace("a = 1\nb = 2", "a = 5\nb = 2"))[0] == "a = 5\nb = 2\na = 1   \nb = 2\n"


@pytest.mark.parametrize("script, search, expected", [
    ("a = 1   \nb = 2   \nc = 3", "b = 2\nc = 3", "a = 1   \nB\n"),  # ends at the file's last line
    ("a = 1   \nb = 2   ", "a = 1\nb = 2", "B\n"),  # the whole file
    ("a = 1   \nb = 2   \nc = 3", "a = 1\nb = 2", "B\n\nc = 3"),  # starts at its first line
])
def test_whitespace_tolerant_match_reaches_both_ends_of_the_file(script, search, expected):
    """Line-by-line matching (trailing whitespace ignored) tries every start, the last one
    where the SEARCH lines end on the file's last line included (no trailing newline here)."""
    assert apply_edit(script, search_replace(search, "B\n"))[0] == expected


def test_replay_blocks_turn_each_record_into_the_next():
    folder = REPO / "records" / "shakespeare"
    scripts = [p.read_text() for p in sorted(folder.glob("0*.py"))]
    for old, new in zip(scripts, scripts[1:]):
        assert apply_edit(old, diff_blocks(old, new))[0] == new
    coder = ReplayCoder({"s/01": (scripts[0], scripts[1])})
    from orchestrator.protocols import ProposeRequest
    [p, q, r] = coder.propose([ProposeRequest("Record: s/01", scripts[0]), ProposeRequest("Record: s/01", scripts[1]),
                               ProposeRequest("Record: s/01", scripts[0] + "# mine\n")])
    assert apply_edit(scripts[0], p.edit)[0] == scripts[1]
    assert q.error and not q.edit
    assert apply_edit(scripts[0] + "# mine\n", r.edit)[0] == scripts[1]


def test_mutate_changes_numbers_seeded_and_never_protected_ones():
    from orchestrator.protocols import ProposeRequest
    script = (REPO / "records" / "shakespeare" / "01_adamw.py").read_text()
    coder = MutateCoder(protected=["val_tokens", "val_every", "seq_len"])
    proposals = coder.propose([ProposeRequest("t", script, seed=s) for s in range(60)])
    assert proposals[3] == coder.propose([ProposeRequest("t", script, seed=3)])[0]
    changed = set()
    for p in proposals:
        new, _ = apply_edit(script, p.edit)
        for name in ("val_tokens = 8192", "val_every = 5", "seq_len = 64"):
            assert name in new
        changed |= {n.split()[0] for n in p.hypothesis.removeprefix("change ").split(", ")}
    assert {"lr", "batch_size", "n_embd", "num_iterations"} <= changed
    assert not changed & {"val_tokens", "val_every", "seq_len"}


# ---- presets, hints, pictures ----

def test_each_rollout_draws_its_own_stream_unless_the_scaffolds_are_paired():
    from orchestrator.experiments import load_config
    from orchestrator.agents.experiment import units

    def seeds(*overrides):
        return [u["seed"] for u in units(load_config("agents", list(overrides))) if u["kind"] == "rollout"]

    own, paired = seeds(), seeds("pair_scaffolds=true")
    assert len(own) == 10 and len(set(own)) == 10
    assert len(set(paired[:5])) == 1 and len(set(paired[5:])) == 1 and paired[0] != paired[5]  # one per group
    assert seeds("seed=1") != own and seeds() == own


def test_presets_load_and_a_bad_value_names_its_key():
    from orchestrator.config import ConfigError
    from orchestrator.experiments import load_config
    from orchestrator.agents.experiment import units
    for preset in ("agents", "agents-smoke"):
        cfg = load_config(preset)
        kinds = [u["kind"] for u in units(cfg)]
        assert kinds[-1] == "score" and "rollout" in kinds
    for override, key in (("rollouts=[{base: shakespeare/04_tuned_lr}]", "rollouts[0].base"),
                          ("rollouts=[{coder: llm}]", "rollouts[0].coder"),
                          ("rollouts=[{scaffolds: [bushes]}]", "rollouts[0].scaffolds"),
                          ("evaluation.clock=sundial", "evaluation.clock"),
                          ("evaluation.clock=cpu", "evaluation.cutoff"), ("scoring.concurrent=0", "scoring.concurrent")):
        with pytest.raises(ConfigError, match=re.escape(key)):
            load_config("agents-smoke", [override])


def test_every_shakespeare_transition_has_hints_at_levels_1_to_3():
    from orchestrator.agents.hints import load_hint
    names = ["shakespeare/01_adamw", "shakespeare/02_rotary", "shakespeare/03_muon", "shakespeare/04_tuned_lr"]
    for a, b in zip(names, names[1:]):
        assert load_hint(REPO / "records/shakespeare/hints", a, b, 0) == ""
        texts = [load_hint(REPO / "records/shakespeare/hints", a, b, level) for level in (1, 2, 3)]
        assert all(len(t) > 100 for t in texts) and len(set(texts)) == 3


def test_tree_picture_is_written(tmp_path):
    from orchestrator.agents.plots import tree_picture
    tree, _ = run(PRESETS["multi_aide"], tmp_path / "j.jsonl", seed=2)
    path = tree_picture(tmp_path / "tree.png", tree, "multi_aide")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---- the best node, scaffold checks, evaluations without a time ----

def evaluated(node_id, time_s, buggy=False):
    node = Node(node_id, 0, "draft", 1, 0, evaluation={"status": "ok", "time_to_target_s": time_s})
    node.buggy = buggy
    return node


def test_best_of_is_the_fastest_good_node_and_the_earlier_on_ties():
    assert best_of([evaluated(3, 2.0), evaluated(1, 2.0), evaluated(2, 2.5)]).id == 1
    assert best_of([evaluated(5, 2.0), evaluated(4, 2.0)]).id == 4
    assert best_of([evaluated(1, 1.0, buggy=True), evaluated(2, 3.0)]).id == 2  # a buggy node never wins
    assert best_of([evaluated(1, None), Node(2, 0, "draft", 1, 0)]) is None  # no time, or never evaluated
    assert best_of([]) is None


@pytest.mark.parametrize("changes, valid", [
    ({}, True), ({"branching": 0}, True), ({"branching": -1}, False),
    ({"drafts": 0}, False), ({"iterations": 0}, False), ({"max_nodes": 0}, False),
    ({"max_bug_depth": 0}, True), ({"max_bug_depth": -1}, False),
    ({"debug_probability": 0.0}, True), ({"debug_probability": 1.0}, True),
    ({"debug_probability": -0.01}, False), ({"debug_probability": 1.01}, False),
    ({"selection": "global"}, True), ({"selection": "best"}, False),
])
def test_scaffold_check_boundaries(changes, valid):
    """Scaffold.check: branching and max_bug_depth >= 0 (flat never branches), drafts, iterations
    and max_nodes >= 1, debug_probability within [0, 1] both ends included, a known selection."""
    assert (Scaffold(**changes).check() is None) is valid


def test_every_preset_is_valid():
    assert {name: s.check() for name, s in PRESETS.items()} == {name: None for name in PRESETS}


@pytest.mark.parametrize("evaluation, buggy, reason", [
    ({"status": "ok", "reason": "target_reached", "time_to_target_s": 4.0}, False, ""),
    ({"status": "ok", "reason": "missed_target", "time_to_target_s": None}, True, "ok: missed_target"),
    ({"status": "failed", "reason": "crashed", "time_to_target_s": None, "flags": ["nan"]}, True,
     "failed: crashed (nan)"),
])
def test_an_evaluation_without_a_time_to_target_makes_a_buggy_node(evaluation, buggy, reason):
    """A node is buggy when its run did not reach the target cleanly: a status other than ok,
    or an ok run that has no time to target."""
    tree = Tree.from_events([
        {"event": "node", "node": 0, "parent": None, "kind": "root", "depth": 0, "debug_depth": 0},
        {"event": "node", "node": 1, "parent": 0, "kind": "draft", "depth": 1, "debug_depth": 0},
        {"event": "evaluation", "node": 1, "t": 0.0, **evaluation}])
    node = tree.nodes[1]
    assert (node.buggy, node.reason, node.good) == (buggy, reason, not buggy)
    assert node.evaluation == evaluation
    assert tree.stats()["buggy"] == int(buggy)


def test_score_transition_counts_a_missed_candidate_run_as_zero(monkeypatch):
    """FSR over a candidate's re-runs counts a miss as 0 for that run (not dropped), while the
    records' times are the runs that reached the target. Records at 3 s and 1 s; the candidate
    reaches the target in 2 s (half the gap) once and misses once: FSR 1/4."""
    import orchestrator.agents.scoring as scoring
    from orchestrator.speedrun.records import Record
    seconds = {("r/01", 0): 3.0, ("r/01", 1): None, ("r/02", 0): 1.0, ("r/02", 1): 1.0,
               ("candidate/abcdef012345", 0): 2.0, ("candidate/abcdef012345", 1): None}

    def replay(order, records, log_dir, timeout_s, max_concurrent, sandbox):
        assert sorted(records) == ["candidate/abcdef012345", "r/01", "r/02"]
        for key in order:
            t = seconds[key[:2]]
            yield key, {"status": "ok" if t is not None else "failed", "reason": "r", "flags": [],
                        "time_to_target_ms": None if t is None else 1000 * t}

    monkeypatch.setattr(scoring, "replay", replay)
    out = scoring.score_transition(Record("r/01", Path("a.py")), Record("r/02", Path("b.py")),
                                   {"abcdef0123456789": Path("c.py")}, repeats=2, seed=0, log_dir=None,
                                   timeout_s=1.0, sandbox=None, clock="wall", log=lambda _: None)
    assert (out["t_i_s"], out["t_i+1_s"]) == (3.0, 1.0)
    candidate = out["candidates"]["abcdef0123456789"]
    assert (candidate["fsr"], candidate["runs"], candidate["misses"], candidate["time_to_target_s"]) == \
        (0.25, 2, 1, 2.0)
    assert len(out["runs"]) == 6


# ---- the journal: reading, resuming, the tree its events make ----

def node_event(i, parent, kind="draft", debug_depth=0):
    return {"event": "node", "node": i, "parent": parent, "kind": kind, "depth": 0 if parent is None else 1,
            "debug_depth": debug_depth}


def test_read_events_skips_blank_lines_and_a_torn_tail(tmp_path):
    path = tmp_path / "j.jsonl"
    assert read_events(path) == []
    path.write_text('{"event": "a"}\n\n{"event": "b"}\n{"event": "c"')
    assert read_events(path) == [{"event": "a"}, {"event": "b"}]
    path.write_text('{"event": "a"}')
    assert read_events(path) == []


def test_a_journal_cuts_its_torn_tail_and_appends_after_it(tmp_path):
    path = tmp_path / "j.jsonl"
    path.write_text('{"event": "a", "t": 1}\n{"event": "b", "t"')
    journal = Journal(path)
    assert journal.past == [{"event": "a", "t": 1}]
    assert journal.write({"event": "a"}) == {"event": "a", "t": 1}  # replayed: the recorded one comes back
    written = journal.write({"event": "c", "x": 1})
    journal.close()
    assert written["event"] == "c" and isinstance(written["t"], float)
    assert [e["event"] for e in read_events(path)] == ["a", "c"]
    assert path.read_text().count("\n") == 2


def test_a_resumed_journal_refuses_another_event_but_ignores_timings(tmp_path):
    from orchestrator.agents.journal import JournalMismatch
    path = tmp_path / "j.jsonl"
    path.write_text('{"event": "a", "n": 1, "t": 1, "wall_s": 5, "compute_seconds": 2}\n')
    journal = Journal(path)
    assert journal.write({"event": "a", "n": 1, "wall_s": 9, "compute_seconds": 0})["wall_s"] == 5
    journal.close()
    journal = Journal(path)
    with pytest.raises(JournalMismatch):
        journal.write({"event": "a", "n": 2})
    journal.close()


def test_recorded_is_the_first_matching_event(tmp_path):
    path = tmp_path / "j.jsonl"
    path.write_text("".join(json_line(e) for e in [
        {"event": "proposal", "node": 1, "attempt": 0, "edit": "x"},
        {"event": "proposal", "node": 1, "attempt": 1, "edit": "y"},
        {"event": "proposal", "node": 1, "attempt": 1, "edit": "z"},
        {"event": "evaluation", "node": 1, "sha": "s"}]))
    journal = Journal(path)
    assert journal.recorded("proposal", node=1, attempt=1)["edit"] == "y"
    assert journal.recorded("proposal", node=2) is None
    assert journal.recorded("evaluation", sha="s")["node"] == 1
    journal.close()


def json_line(event):
    import json
    return json.dumps(event) + "\n"


def test_tree_apply_marks_buggy_nodes_with_their_reason():
    tree = Tree.from_events([
        {"event": "rollout", "record": "r"},
        node_event(0, None, "root"), node_event(1, 0), node_event(2, 0), node_event(3, 1, "improve"),
        {"event": "proposal", "node": 1, "hypothesis": "h1"},
        {"event": "edit", "node": 1, "applied": False, "error": "e0", "final": False},
        {"event": "edit", "node": 1, "applied": True, "script": "s1", "sha": "a1"},
        {"event": "edit", "node": 2, "applied": False, "error": "nope", "final": True},
        {"event": "integrity", "node": 3, "problems": ["p", "q"]},
        {"event": "integrity", "node": 1, "problems": []},
        {"event": "done", "best": 1}])
    n1, n2, n3 = tree.nodes[1], tree.nodes[2], tree.nodes[3]
    assert (n1.hypothesis, n1.script, n1.sha, n1.edit_errors, n1.buggy, n1.integrity) == ("h1", "s1", "a1", ["e0"], False, [])
    assert (n2.buggy, n2.reason, n2.script) == (True, "edit rejected: nope", None)
    assert (n3.buggy, n3.reason) == (True, "integrity: p; q")
    assert tree.nodes[0].children == [1, 2] and n1.children == [3] and tree.best == 1
    assert tree.header == {"event": "rollout", "record": "r"}


def test_base_script_is_the_nearest_ancestor_with_a_script():
    tree = Tree.from_events([
        node_event(0, None, "root"), {"event": "edit", "node": 0, "applied": True, "script": "root", "sha": "r"},
        node_event(1, 0), node_event(2, 1, "debug", 1), node_event(3, 2, "debug", 2),
        {"event": "edit", "node": 2, "applied": True, "script": "two", "sha": "t"}])
    assert tree.base_script(tree.nodes[1]) == "root"
    assert tree.base_script(tree.nodes[2]) == "root"  # node 1 never got a script
    assert tree.base_script(tree.nodes[3]) == "two"


def test_tree_stats_count_nodes_besides_the_root_and_distinct_evaluated_scripts():
    ok = {"status": "ok", "reason": "target_reached"}
    tree = Tree.from_events([
        node_event(0, None, "root"), node_event(1, 0), node_event(2, 0), node_event(3, 0),
        *({"event": "edit", "node": i, "applied": True, "script": sha, "sha": sha} for i, sha in
          ((0, "r"), (1, "x"), (2, "x"), (3, "y"))),
        {"event": "evaluation", "node": 0, "sha": "r", "time_to_target_s": 10.0, **ok},
        {"event": "evaluation", "node": 1, "sha": "x", "time_to_target_s": 8.0, **ok},
        {"event": "evaluation", "node": 2, "sha": "x", "time_to_target_s": 8.0, **ok},
        {"event": "evaluation", "node": 3, "sha": "y", "status": "failed", "reason": "crashed",
         "time_to_target_s": None},
        {"event": "done", "best": 1}])
    assert tree.stats() == {"nodes": 3, "candidates_evaluated": 2, "buggy": 1, "buggy_fraction": 1 / 3,
                            "best_node": 1, "best_time_s": 8.0, "best_is_root": False, "root_time_s": 10.0}
    root_only = Tree.from_events([node_event(0, None, "root"), {"event": "done", "best": None}])
    assert root_only.stats() == {"nodes": 0, "candidates_evaluated": 0, "buggy": 0, "buggy_fraction": 0.0,
                                 "best_node": None, "best_time_s": None, "best_is_root": False,
                                 "root_time_s": None}


# ---- the rollout: history, reflections, coder errors, shared evaluations, cutoff, room ----

def test_history_lists_the_branch_from_the_root_then_the_edit_errors():
    from orchestrator.agents.search import history
    ok = {"status": "ok", "reason": "target_reached"}
    tree = Tree.from_events([
        node_event(0, None, "root"), {"event": "evaluation", "node": 0, "time_to_target_s": 10.0, **ok},
        node_event(1, 0), {"event": "proposal", "node": 1, "hypothesis": "faster lr"},
        {"event": "evaluation", "node": 1, "status": "failed", "reason": "crashed", "time_to_target_s": None,
         "log_tail": "x" * 2500 + "END"},
        node_event(2, 1, "debug", 1),
        {"event": "edit", "node": 2, "applied": False, "error": "no match", "final": False}])
    lines = history(tree, tree.nodes[2])
    assert lines[0] == "node 0 (root): the record's script -> reached the target in 10.00 s"
    assert lines[1] == "node 1 (draft): faster lr -> buggy: failed: crashed"
    assert lines[2].startswith("log tail of node 1:\n") and lines[2].endswith("END")
    assert len(lines[2]) == len("log tail of node 1:\n") + 2000  # only the last 2000 characters
    assert lines[3:] == ("your edit for this step did not apply: no match",)
    improve = Tree.from_events([node_event(0, None, "root"), node_event(1, 0, "improve")])
    assert history(improve, improve.nodes[1]) == ("node 0 (root): the record's script -> buggy: ",)


def test_request_seed_depends_on_seed_node_and_attempt():
    from orchestrator.agents.search import request_seed
    seeds = {request_seed(s, n, a) for s in (0, 1) for n in (1, 2) for a in (0, 1)}
    assert len(seeds) == 8 and all(0 <= s < 2 ** 31 for s in seeds)
    assert request_seed(3, 4, 5) == request_seed(3, 4, 5)


def one_node(tmp_path, answer, reflections=5, **kwargs):
    scaffold = Scaffold("one", drafts=1, branching=0, iterations=1, max_nodes=1)
    return run(scaffold, tmp_path / "j.jsonl", coder=ScriptedCoder(answer), reflections=reflections, **kwargs)


@pytest.mark.parametrize("reflections, attempts", [(0, 1), (1, 2), (3, 4)])
def test_a_nonapplying_edit_is_asked_again_reflections_times(tmp_path, reflections, attempts):
    tree, evaluator = one_node(tmp_path, lambda r: Proposal(search_replace("nope", "x"), "stale"), reflections)
    edits = [e for e in read_events(tmp_path / "j.jsonl") if e["event"] == "edit" and e["node"] == 1]
    assert [e["final"] for e in edits] == [False] * (attempts - 1) + [True]
    assert tree.nodes[1].buggy and len(evaluator.ran) == 1


def test_a_coder_error_is_final_at_once(tmp_path):
    tree, evaluator = one_node(tmp_path, lambda r: Proposal("", error="timed out"))
    edits = [e for e in read_events(tmp_path / "j.jsonl") if e["event"] == "edit" and e["node"] == 1]
    assert [(e["error"], e["final"]) for e in edits] == [("coder: timed out", True)]
    assert tree.nodes[1].reason == "edit rejected: coder: timed out" and len(evaluator.ran) == 1


def test_nodes_with_one_script_are_evaluated_once_and_share_the_result(tmp_path):
    same = ScriptedCoder(lambda r: Proposal(search_replace("speed = 10", "speed = 20"), "same"))
    tree, evaluator = run(Scaffold("flat3", drafts=3, branching=0, iterations=1, max_nodes=3), tmp_path / "j.jsonl",
                          coder=same)
    assert len(evaluator.ran) == 2  # the root and the one distinct candidate
    assert [tree.nodes[i].time_s for i in (1, 2, 3)] == [5.0, 5.0, 5.0]


class BeatRecorder(FakeEvaluator):
    def evaluate(self, requests):
        self.beats = getattr(self, "beats", []) + [r.beat_time_ms for r in requests]
        return super().evaluate(requests)


@pytest.mark.parametrize("cutoff, beat", [(0.0, None), (1.5, 15000.0)])
def test_a_cutoff_stops_candidates_at_a_multiple_of_the_root_time(tmp_path, cutoff, beat):
    evaluator = BeatRecorder()
    one_node(tmp_path, lambda r: Proposal(search_replace("speed = 10", "speed = 20"), "x"), evaluator=evaluator,
             cutoff=cutoff)
    assert evaluator.beats == [None, beat]  # the root (10 s) runs without one


def test_max_nodes_bounds_the_drafts_and_every_later_step(tmp_path):
    tree, _ = run(Scaffold("s", drafts=5, branching=3, iterations=5, max_nodes=7), tmp_path / "j.jsonl",
                  coder=seeded_coder(bug_rate=0))
    assert [c for _, _, c in steps(tmp_path / "j.jsonl")] == [5, 2]
    assert len(tree.nodes) == 8
    events = read_events(tmp_path / "j.jsonl")
    assert events[-1]["event"] == "done" and events[-1]["best"] == tree.best


def test_a_rollout_opens_with_its_header_and_the_root(tmp_path):
    run(Scaffold("one", drafts=1, branching=0, iterations=1, max_nodes=1), tmp_path / "j.jsonl", seed=4)
    events = read_events(tmp_path / "j.jsonl")
    assert [e["event"] for e in events[:5]] == ["rollout", "node", "edit", "integrity", "evaluation"]
    head = events[0]
    assert (head["record"], head["next_record"], head["seed"], head["reflections"], head["cutoff"]) == (
        "fake/01", "fake/02", 4, 5, 0.0)
    assert events[2]["mode"] == "record" and events[2]["script"] == ROOT_SCRIPT


# ---- coders ----

def test_record_of_reads_the_record_line():
    from orchestrator.agents.coders import record_of
    assert record_of("Intro\nRecord: shakespeare/01_adamw\nmore") == "shakespeare/01_adamw"
    assert record_of("Record:  x") is None and record_of("no record") is None
    assert record_of("xRecord: a\nRecord: b") == "b"  # the line must start with it


def test_numeric_settings_are_module_level_single_line_nonzero_numbers():
    from orchestrator.agents.coders import numeric_settings
    script = ("lr = 3e-4\nsteps, warm = 100, 0\nflag = True\nname = 'x'\nneg = -2\na = b = 4\n"
              "x, y = 1, 2, 3\ndef f():\n    inner = 5\nbig = (\n 7)\nlast = 2.5  # c\n")
    assert [(n, line, v) for n, line, _, _, v in numeric_settings(script)] == [
        ("lr", 1, 3e-4), ("steps", 2, 100), ("big", 11, 7), ("last", 12, 2.5)]  # the number's own line
    (_, _, start, end, _), = [s for s in numeric_settings(script) if s[0] == "last"]
    assert script.split("\n")[11][start:end] == "2.5"


@pytest.mark.parametrize("value, factor, new", [("8", 0.5, "4"), ("3", 0.1, "1"), ("7", 0.5, "4"), ("0.001", 1.5, "0.0015"),
                                                ("1.2345", 2.0, "2.47")])
def test_mutate_scales_an_int_to_an_int_of_at_least_one_and_a_float_to_three_digits(monkeypatch, value, factor, new):
    import orchestrator.agents.coders as coders
    from orchestrator.protocols import ProposeRequest
    monkeypatch.setattr(coders, "FACTORS", (factor,))
    [p] = MutateCoder(max_changes=1).propose([ProposeRequest("t", f"x = {value}\n", seed=0)])
    assert apply_edit(f"x = {value}\n", p.edit)[0] == f"x = {new}\n"
    assert p.hypothesis == f"change x {value} -> {new}"


def test_mutate_refuses_scripts_without_a_free_number_or_that_do_not_parse():
    from orchestrator.protocols import ProposeRequest
    [a, b] = MutateCoder(protected=["x"]).propose([ProposeRequest("t", "x = 1\n"), ProposeRequest("t", "x = (\n")])
    assert a.error == "no numeric setting that may change" and not a.edit
    assert b.error.startswith("the script does not parse") and not b.edit


def test_replay_knows_only_its_ladder():
    from orchestrator.protocols import ProposeRequest
    [p] = ReplayCoder({}).propose([ProposeRequest("Record: s/09", "x")])
    assert p.error == "replay knows no next record for s/09" and p.edit == ""


def test_diff_blocks_falls_back_to_the_whole_file_when_a_hunk_is_ambiguous():
    old = "a = 1\n" + "pad\n" * 8 + "a = 1\n"
    new = "a = 1\n" + "pad\n" * 8 + "a = 2\n"
    edit = diff_blocks(old, new)
    assert apply_edit(old, edit)[0] == new


def test_an_unknown_hostile_kind_is_refused():
    with pytest.raises(ValueError, match="unknown hostile"):
        hostile("polite", ROOT_SCRIPT)


# ---- scoring helpers ----

def test_similarity_and_candidate_names():
    from orchestrator.agents.scoring import candidate_name, similarity
    assert similarity("a\nb\n", "a\nb\n") == 1.0
    assert similarity("a\nb", "a\nc") == 0.5 and similarity("x", "y") == 0.0
    assert candidate_name("0123456789abcdef") == "candidate/0123456789ab"


# ---- edits: formats and precedence ----

@pytest.mark.parametrize("edit, expected", [
    ("```py\nx = 2\n```", ("x = 2\n", "whole_file")),
    ("```\nx = 3\n```", ("x = 3\n", "whole_file")),
    ("text\n```python\nx = 4\n```\nmore text", ("x = 4\n", "whole_file")),
])
def test_a_single_fenced_block_replaces_the_whole_file(edit, expected):
    assert apply_edit("x = 1\n", edit) == expected


def test_two_fenced_blocks_are_no_edit_and_blocks_win_over_a_fence():
    with pytest.raises(EditError, match="neither format"):
        apply_edit("x = 1\n", "```python\na\n```\n```python\nb\n```")
    mixed = search_replace("x = 1", "x = 5") + "\n```python\ny = 0\n```"
    assert apply_edit("x = 1\n", mixed) == ("x = 5\n", "blocks")


def test_a_later_block_failing_fails_the_whole_edit_with_its_number():
    both = search_replace("x = 1", "x = 5") + "\n" + search_replace("zzz", "q")
    with pytest.raises(EditError, match="block 2"):
        apply_edit("x = 1\n", both)
    with pytest.raises(EditError, match="block 1: its SEARCH text is empty"):
        apply_edit("x = 1\n", search_replace("  \n ", "q"))


def test_score_transition_interleaves_records_and_candidates_with_a_seed_per_repeat(monkeypatch):
    """Every repeat is one direction-alternating round over record i, record i+1 and each
    candidate (record i's launch spec and target with the candidate's script), seeded seed + rep;
    a candidate's flags are the sorted union over its runs."""
    import orchestrator.agents.scoring as scoring
    from orchestrator.speedrun.records import Record
    seen = {}

    def replay(order, records, log_dir, timeout_s, max_concurrent, sandbox):
        seen["order"], seen["records"] = list(order), records
        for name, rep, _, _ in order:
            flags = {("candidate/aaaaaaaaaaaa", 0): ["z", "a"], ("candidate/aaaaaaaaaaaa", 1): ["a"]}.get((name, rep), [])
            yield (name, rep, None, None), {"status": "ok", "reason": "target_reached", "flags": flags,
                                            "time_to_target_ms": 1000.0 * {"r/01": 4, "r/02": 2}.get(name, 3 + rep)}

    monkeypatch.setattr(scoring, "replay", replay)
    base = Record("r/01", Path("a.py"), target_val_loss=2.5)
    out = scoring.score_transition(base, Record("r/02", Path("b.py")), {"a" * 16: Path("c.py")}, repeats=2,
                                   seed=10, log_dir=None, timeout_s=1.0, sandbox=None, clock="wall", log=lambda _: None)
    c = "candidate/aaaaaaaaaaaa"
    assert seen["order"] == [("r/01", 0, 10, "timed"), ("r/02", 0, 10, "timed"), (c, 0, 10, "timed"),
                             (c, 1, 11, "timed"), ("r/02", 1, 11, "timed"), ("r/01", 1, 11, "timed")]
    cand = seen["records"][c]
    assert (cand.script, cand.target_val_loss, cand.launch) == (Path("c.py"), 2.5, base.launch)
    result = out["candidates"]["a" * 16]
    assert result["flags"] == ["a", "z"] and result["time_to_target_s"] == pytest.approx(3.5)
    assert result["fsr"] == pytest.approx(0.25)  # 3 s and 4 s against records at 4 s and 2 s: 0.5 and 0
    assert (out["record_i"], out["record_i+1"]) == ("r/01", "r/02")


def test_every_journal_event_is_fsynced_once_it_is_written(tmp_path, monkeypatch):
    import os
    path = tmp_path / "j.jsonl"
    journal = Journal(path)
    at_fsync = []
    real = os.fsync

    def fsync(fd):
        at_fsync.append(path.read_text().count("\n"))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    for i in range(3):
        journal.write({"event": "x", "i": (i, i)})
    journal.close()
    assert at_fsync == [1, 2, 3]
    assert [e["i"] for e in read_events(path)] == [[0, 0], [1, 1], [2, 2]]  # JSON values, as a reader sees them


def test_diff_blocks_is_one_block_per_hunk_with_three_lines_of_context():
    old = "\n".join(f"l{i}" for i in range(10))
    new = old.replace("l5", "X")
    assert diff_blocks(old, new) == search_replace("l2\nl3\nl4\nl5\nl6\nl7\nl8", "l2\nl3\nl4\nX\nl6\nl7\nl8")
    far = old.replace("l0", "A").replace("l9", "B")
    assert diff_blocks(old, far) == "\n".join([search_replace("l0\nl1\nl2\nl3", "A\nl1\nl2\nl3"),
                                               search_replace("l6\nl7\nl8\nl9", "l6\nl7\nl8\nB")])


def test_mutate_changes_two_numbers_of_one_line_right_to_left(monkeypatch):
    """Two changes on one line are applied from the right, so the first one's new width does not
    shift the second one's columns."""
    import orchestrator.agents.coders as coders
    from orchestrator.protocols import ProposeRequest
    monkeypatch.setattr(coders, "FACTORS", (2.5,))
    script = "a, b = 4, 96\nc = 3\n"
    proposals = MutateCoder(max_changes=3).propose([ProposeRequest("t", script, seed=s) for s in range(30)])
    results = {apply_edit(script, p.edit)[0] for p in proposals}
    assert "a, b = 10, 240\nc = 3\n" in results and "a, b = 10, 240\nc = 8\n" in results
    assert results <= {f"a, b = {a}, {b}\nc = {c}\n" for a in (4, 10) for b in (96, 240) for c in (3, 8)}
    assert all(1 <= len(p.hypothesis.removeprefix("change ").split(", ")) <= 3 for p in proposals)
