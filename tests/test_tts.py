"""The test-time-compute sweep end to end: the tts-smoke preset on the tiny world's test profile."""
import json
import subprocess
import sys

from conftest import REPO
from orchestrator.config import load_config
from orchestrator.tts import units
from orchestrator.tts_config import METHODS


def test_units_cover_every_method_and_budget():
    cfg = load_config("tts-smoke")
    us = units(cfg)
    problems = {u["problem"] for u in us}
    assert len(problems) == 20
    search = {(u["method"], u["n"]) for u in us if u["kind"] == "search"}
    assert search == {(m, n) for m in ("beam", "dvts", "lookahead") for n in (4, 16)}
    assert sum(u["kind"] == "sampling" and u["n"] == 16 for u in us) == 20  # one draw at N_max per problem
    assert sum(u["kind"] == "oracle" for u in us) == 20
    other = units(load_config("tts-smoke", ["search.temperature=0.7"]))
    assert not {json.dumps(u, sort_keys=True) for u in us} & {json.dumps(u, sort_keys=True) for u in other}


def test_tts_smoke_end_to_end(runs_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb"))
    p = subprocess.run([sys.executable, "-m", "orchestrator.cli", "run", "tts-smoke", "progress=lines"],
                       cwd=REPO, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    run_dir = next(runs_dir.glob("tts-smoke/*"))
    summary = json.loads((run_dir / "summary.json").read_text())
    rows = summary["tables"]["accuracy"]
    got = {(r["method"], r["n"]) for r in rows}
    assert {(m, n) for m in METHODS for n in (4, 16)} <= got
    for r in rows:
        assert 0 <= r["ci_low"] <= r["accuracy"] <= r["ci_high"] <= 1, r
        assert r["policy_tokens"] > 0 and r["problems"] == 20
        assert (r["prm_tokens"] > 0) == (r["method"] not in ("majority", "pass@n")), r
    by = {(r["method"], r["n"]): r for r in rows}
    assert by[("pass@n", 16)]["accuracy"] >= by[("pass@n", 4)]["accuracy"]
    for m in ("beam", "dvts", "lookahead", "majority"):  # bigger budgets cost more
        assert by[(m, 16)]["policy_tokens"] > by[(m, 4)]["policy_tokens"]
    for png in ("accuracy_vs_n.png", "accuracy_by_level.png", "compute_optimal.png"):
        assert (run_dir / png).stat().st_size > 5000
    assert {r["bins"] for r in summary["tables"]["compute_optimal"]} == {"oracle", "predicted"}
    results = [json.loads(x) for x in (run_dir / "results.jsonl").read_text().splitlines()]
    dvts = [r for r in results if r["unit"].get("method") == "dvts"]
    assert dvts and all(r["result"]["trees"] for r in dvts)  # trees kept for inspection
