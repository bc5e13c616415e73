"""End to end through the CLI: `scalerun run agents-smoke` (seeded mutations of 03_muon, the Flat
and AIDE scaffolds cut to 2 nodes, one trusted re-run each), sandboxed, on a local Ray; then a
rerun that finds every unit done."""
import json

from conftest import run_preset


def test_agents_smoke_end_to_end_and_resume(runs_dir):
    first = run_preset("agents-smoke", "progress=lines", runs_dir=runs_dir)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    [run_dir] = (runs_dir / "agents-smoke").iterdir()
    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    assert sorted(r["unit"]["kind"] for r in rows) == ["rollout", "rollout", "score"]

    summary = json.loads((run_dir / "summary.json").read_text())
    fsr = {row["scaffold"]: row for row in summary["tables"]["fsr"]}
    assert sorted(fsr) == ["aide", "flat"]
    for row in fsr.values():
        assert row["fsr_ci_low"] <= row["fsr"] <= row["fsr_ci_high"]
        assert row["t_i_s"] > 0 and row["t_i+1_s"] > 0 and row["nodes"] == 2
    assert "## fsr" in (run_dir / "summary.md").read_text()
    assert all((run_dir / path).stat().st_size > 1000 for path in summary["figures"].values())

    # every journal ends its rollout; a candidate is run once however many nodes propose it
    evaluated, seeds = set(), set()
    for journal in (run_dir / "rollouts").iterdir():
        events = [json.loads(line) for line in journal.read_text().splitlines()]
        assert events[0]["event"] == "rollout" and events[-1]["event"] == "done"
        evaluated |= {e["sha"] for e in events if e["event"] == "evaluation"}
        seeds.add(events[0]["seed"])
    assert len(seeds) == 2  # each rollout its own stream
    runs = [json.loads(line) for line in (run_dir / "evaluations.jsonl").read_text().splitlines()]
    assert sorted(r["unit"]["sha"] for r in runs) == sorted(evaluated)

    again = run_preset("agents-smoke", "progress=lines", runs_dir=runs_dir)
    assert again.returncode == 0 and "3 already done, 0 to run" in again.stdout
