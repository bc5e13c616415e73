"""PassUntil end to end: the passuntil-smoke preset on the test-profile model series."""
import json
import math
import os
import subprocess
import sys

from types import SimpleNamespace

import pytest

from conftest import REPO
from orchestrator.config import ConfigError
from orchestrator.experiments import load_config
from orchestrator.passuntil.experiment import stream_seed, summarize, units


def test_units_are_model_by_problem_and_config_errors_name_the_key():
    cfg = load_config("passuntil-smoke")
    us = units(cfg)
    assert len(us) == 3 * 20 and len({(u["model"], u["problem"]) for u in us}) == 60
    for overrides, key in ((["cap=1"], "cap"), (["series=huge"], "series"), (["models=[/no/a,/no/b,/no/c]"], "models[0].path"),
                           (["models=[/tmp]"], "models"), (["pass_criterion=exact"], "pass_criterion"),
                           (["pass_criterion=chain", "dataset.name=jsonl", "dataset.path=/tmp/x.jsonl"],
                            "pass_criterion")):
        with pytest.raises(ConfigError) as e:
            load_config("passuntil-smoke", overrides)
        assert e.value.key == key


def test_each_model_draws_its_own_stream_unless_the_models_are_paired():
    cfg = load_config("passuntil-smoke")
    own = {(u["model"], u["problem"]): stream_seed(cfg, u) for u in units(cfg)}
    assert len(set(own.values())) == len(own)  # no two (model, problem) units share draws
    paired = load_config("passuntil-smoke", ["paired_models=true"])
    shared = {(u["model"], u["problem"]): stream_seed(paired, u) for u in units(paired)}
    of_problem = {problem: seed for (_, problem), seed in shared.items()}
    assert all(seed == of_problem[problem] for (_, problem), seed in shared.items())  # every model: the problem's stream
    assert len(set(of_problem.values())) == len(of_problem)  # problems still differ


def test_chain_criterion_refuses_a_lucky_answer():
    from orchestrator.datasets import load_items
    from orchestrator.passuntil.experiment import _passes

    answer_cfg = load_config("passuntil-smoke")
    chain_cfg = load_config("passuntil-smoke", ["pass_criterion=chain"])
    item = next(i for i in load_items(answer_cfg.dataset) if i.level == 2)
    right = "\n\n".join(item.reference_steps)
    first_value = item.reference_steps[0].split(" = ")[1]
    lucky = right.replace(f"= {first_value}", f"= {int(first_value) + 1}", 1)  # wrong step, right answer
    assert lucky != right
    assert _passes(answer_cfg, item)(right, False) and _passes(answer_cfg, item)(lucky, False)
    assert _passes(chain_cfg, item)(right, False) and not _passes(chain_cfg, item)(lucky, False)
    assert _passes(chain_cfg, item)(right.replace("\n\n", "\n\n  ") + "\n\n", False)  # whitespace aside


def test_summary_without_a_fit_keeps_the_measurements(tmp_path):
    """Only one training model has 0 < PU < 1 (the smallest never passes): no line, no prediction,
    but every model's PU, the censored instances and the plots are still reported."""
    cfg = load_config("passuntil-smoke")  # r=2, cap=64

    def row(model, params, problem, passes, samples):
        return SimpleNamespace(unit={"model": model, "problem": problem},
                               result={"params": params, "passes": passes, "samples": samples,
                                       "drawn": samples, "fixed_k": 8, "fixed_k_passes": min(passes, 1)})

    rows = [r for j in range(10) for r in (row("small", 1e4, f"p{j}", 0, 64), row("mid", 1e5, f"p{j}", 2, 33),
                                           row("large", 1e6, f"p{j}", 2, 3))]
    summary = summarize(cfg, rows, SimpleNamespace(run_dir=tmp_path))
    s = summary.scalars
    assert s["fit_left_out"].startswith("no fit: fewer than 2 training models with 0 < PU < 1")
    assert s["fit_slope"] is None and s["heldout_predicted_pu"] is None
    assert s["heldout_measured_pu"] == pytest.approx(0.5) and s["censored_instances"] == 10
    assert [m["pu"] for m in summary.tables["models"]] == pytest.approx([0, 1 / 32, 0.5])
    assert summary.tables["prediction"] == []
    assert "nothing is predicted" in summary.notes
    assert (tmp_path / "scaling_law.png").stat().st_size > 5000


def test_passuntil_smoke_end_to_end(tmp_path):
    env = {**os.environ, "SCALERUN_RUNS_DIR": str(tmp_path / "runs"), "WANDB_DIR": str(tmp_path / "wandb")}
    p = subprocess.run([sys.executable, "-m", "orchestrator.cli", "run", "passuntil-smoke", "progress=lines"],
                       cwd=REPO, capture_output=True, text=True, timeout=900, env=env)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    run_dir = next((tmp_path / "runs").glob("passuntil-smoke/*"))
    summary = json.loads((run_dir / "summary.json").read_text())
    models = summary["tables"]["models"]
    assert [m["model"] for m in models] == ["w16", "w32", "w48"]
    assert models[0]["params"] < models[1]["params"] < models[2]["params"]
    for m in models:
        assert 0 <= m["pu_low"] <= m["pu"] <= m["pu_high"] <= 1
        assert m["pu"] <= m["pu_bound"] <= 1 and (m["pu_bound"] > 0 or m["censored"] == 0)
        assert m["samples_drawn"] >= 20 * 8  # at least the fixed-K draws of every instance
    s = summary["scalars"]
    assert math.isfinite(s["fit_slope"]) and math.isfinite(s["fit_intercept"])
    assert s["fit_left_out"] == (", ".join(m["model"] for m in models[:2] if m["pu"] in (0, 1)) or "none")
    assert s["heldout_model"] == "w48" and s["heldout_measured_pu"] == models[2]["pu"]
    assert 0 < s["heldout_predicted_pu"] < 1
    censored = summary["tables"]["censored"]
    assert all(r["samples"] == 64 and r["passes"] < 2 and r["upper_bound"] > 0 for r in censored)
    for png in ("scaling_law.png", "fixed_k_vs_passuntil.png"):
        assert (run_dir / png).stat().st_size > 5000
