"""The speedrun replay experiment end to end on a fake ladder whose times are known exactly."""
import json
import os
import subprocess
import sys

import yaml

from conftest import REPO

SCRIPT = """import os, time
seed = int(os.environ["SEED"])
t0 = time.perf_counter()
for step, (loss, ms) in enumerate({points}):
    time.sleep(max(0.0, ms / 1000 - (time.perf_counter() - t0)))  # honest: the harness checks its clock
    print(f"step:{{step * 10}}/100 val_loss:{{loss}} train_time:{{ms}}ms step_avg:10.00ms", flush=True)
"""


def write_record(folder, stem, order, points):
    (folder / f"{stem}.py").write_text(SCRIPT.format(points=points))
    (folder / f"{stem}.yaml").write_text(yaml.safe_dump(
        {"order": order, "script": f"{stem}.py", "target_val_loss": 2.0, "launch": {"launcher": "python"}}))


def test_replay_ladder_with_candidate_fsr(tmp_path):
    ladder = tmp_path / "ladder"
    ladder.mkdir()
    write_record(ladder, "a_base", 1, [(4.0, 0), (3.0, 1000), (1.9, 2000)])  # 2.0 s to target
    write_record(ladder, "b_next", 2, [(4.0, 0), (1.9, 1000)])  # 1.0 s
    (tmp_path / "cand.py").write_text(SCRIPT.format(points=[(4.0, 0), (2.5, 800), (1.8, 1500)]))  # 1.5 s
    preset = tmp_path / "sr.yaml"
    preset.write_text(yaml.safe_dump({"experiment": "speedrun", "records": str(ladder), "repeats": 2,
                                      "acceptance_repeats": 1,
                                      "candidate": {"script": str(tmp_path / "cand.py"), "base": "ladder/a_base"}}))
    env = {"SCALERUN_RUNS_DIR": str(tmp_path / "runs"), "WANDB_DIR": str(tmp_path / "wandb")}
    p = subprocess.run([sys.executable, "-m", "orchestrator.cli", "run", str(preset), "progress=lines"], cwd=REPO,
                       capture_output=True, text=True, timeout=600, env={**os.environ, **env})
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    run_dir = next((tmp_path / "runs").glob("sr/*"))
    summary = json.loads((run_dir / "summary.json").read_text())
    times = {r["record"]: r for r in summary["tables"]["time_to_target"]}
    assert times["ladder/a_base"]["time_to_target_s"] == 2.0 and times["ladder/a_base"]["ok"] == 3
    assert times["ladder/a_base"]["acceptance_runs"] == 1  # the full-length run only
    assert times["ladder/a_base"]["ci_low_s"] == times["ladder/a_base"]["ci_high_s"] == 2.0
    assert times["ladder/b_next"]["time_to_target_s"] == 1.0
    assert times["candidate/cand"]["time_to_target_s"] == 1.5
    assert summary["tables"]["fsr"][0]["fsr"] == 0.5 and summary["tables"]["fsr"][0]["candidate_runs"] == 3
    speedup = {(s["from"], s["to"]): s["speedup"] for s in summary["tables"]["speedups"]}
    assert speedup[("candidate/cand", "ladder/b_next")] == 1.5
    runs = summary["tables"]["runs"]
    assert [r["record"] for r in runs][:3] == ["ladder/a_base", "candidate/cand", "ladder/b_next"]  # interleaved
    assert [r["record"] for r in runs][3:6] == ["ladder/b_next", "candidate/cand", "ladder/a_base"]
    assert [r["mode"] for r in runs] == ["timed"] * 6 + ["full"] * 3 and {r["sandbox"] for r in runs} == {"bwrap"}
    assert all((run_dir / r["log"]).exists() for r in runs)
    for png in ("val_loss_vs_time.png", "speedups.png"):
        assert (run_dir / png).stat().st_size > 5000


def test_gpu_preset_and_modded_nanogpt_record_launch_spec(tmp_path, monkeypatch):
    """The GPU cluster path, checked without GPUs: preset, launch command, node bundle, env."""
    from orchestrator.experiments import load_config
    from orchestrator.speedrun.records import launch_command, launch_env, load_record

    monkeypatch.setenv("MODDED_NANOGPT_DIR", str(tmp_path))
    (tmp_path / "train_gpt.py").write_text("print('stand-in for modded-nanogpt train_gpt.py')\n")
    cfg = load_config("speedrun/modded_nanogpt")
    assert cfg.records == "records/modded-nanogpt" and cfg.max_concurrent == 4
    record = load_record(REPO / "records" / "modded-nanogpt" / "train_gpt.yaml")
    assert record.script == tmp_path / "train_gpt.py" and record.target_val_loss == 3.28
    assert record.world_size == 8
    assert record.node_resources() == {"CPU": 16, "GPU": 8}  # one all-or-nothing bundle per node
    cmd = launch_command(record, python="python")
    assert cmd[:4] == ["python", "-m", "torch.distributed.run", "--nproc_per_node=8"] and "--standalone" in cmd
    assert cmd[-1] == str(tmp_path / "train_gpt.py")
    assert launch_env(record, base={})["NCCL_DEBUG"] == "WARN"
