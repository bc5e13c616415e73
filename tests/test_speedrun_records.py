"""Record YAMLs, the registry, launch commands and integrity checks."""
import hashlib
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from orchestrator.speedrun.records import (check_data, check_integrity, check_script, launch_command, launch_env,
                                           load_record, load_records)

SCRIPT = textwrap.dedent("""\
    import time
    class Hyperparameters:
        val_tokens : int = 10485760 # fixed by the rules
        seq_len: int = 1024
    num_vals = 20
    t0 = time.perf_counter()
    """)


def write_record(folder: Path, stem: str, order: int, **extra) -> Path:
    (folder / f"{stem}.py").write_text(SCRIPT)
    body = {"order": order, "script": f"{stem}.py", "target_val_loss": 3.28, **extra}
    (folder / f"{stem}.yaml").write_text(yaml.safe_dump(body))
    return folder / f"{stem}.yaml"


def test_registry_orders_records_and_resolves_scripts(tmp_path):
    write_record(tmp_path, "b_second", 2)
    write_record(tmp_path, "a_first", 1, launch={"nproc_per_node": 8, "env": {"NCCL_DEBUG": "WARN"}},
                 resources_per_process={"CPU": 2, "GPU": 1})
    write_record(tmp_path, "c_third", 3)
    records = load_records(tmp_path)
    assert [r.name for r in records] == [f"{tmp_path.name}/a_first", f"{tmp_path.name}/b_second",
                                         f"{tmp_path.name}/c_third"]
    first = records[0]
    assert first.script == tmp_path / "a_first.py" and first.script.is_file()
    assert first.world_size == 8 and first.node_resources() == {"CPU": 16, "GPU": 8}
    assert first.launch.env == {"NCCL_DEBUG": "WARN"}


def test_bad_records_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown record keys"):
        load_record(write_record(tmp_path, "x", 1, targett=3.0))
    with pytest.raises(ValueError, match="unknown record keys"):
        load_record(write_record(tmp_path, "y", 1, log_format="modded"))  # the parser reads every log era


def test_launch_command_single_and_multi_node(tmp_path):
    single = load_record(write_record(tmp_path, "s", 1, launch={"nproc_per_node": 2, "args": ["--fast"]}))
    cmd = launch_command(single, python="py")
    assert cmd == ["py", "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
                   str(tmp_path / "s.py"), "--fast"]
    multi = load_record(write_record(tmp_path, "m", 1, launch={"nproc_per_node": 8, "nnodes": 2}))
    with pytest.raises(ValueError, match="master_addr"):
        launch_command(multi)
    cmd = launch_command(multi, node_rank=1, master_addr="10.0.0.1", master_port=29500, python="py")
    assert cmd[3:8] == ["--nproc_per_node=8", "--nnodes=2", "--node_rank=1", "--master_addr=10.0.0.1",
                        "--master_port=29500"]
    assert cmd[0] == "py" and launch_command(single)[0] == sys.executable
    plain = load_record(write_record(tmp_path, "p", 1, launch={"launcher": "python", "args": ["-v"]}))
    assert launch_command(plain, python="py") == ["py", str(tmp_path / "p.py"), "-v"]
    with pytest.raises(ValueError, match="one process"):
        load_record(write_record(tmp_path, "q", 1, launch={"launcher": "python", "nproc_per_node": 2}))


def test_launch_env_expands_and_orders(tmp_path):
    rec = load_record(write_record(tmp_path, "e", 1, launch={"env": {"DATA": "${ROOT}/fineweb", "OMP_NUM_THREADS": "4"}}))
    env = launch_env(rec, extra={"ROOT": "/data", "SEED": "3"}, base={"PATH": "/bin", "SEED": "0"})
    assert env["DATA"] == "/data/fineweb" and env["SEED"] == "3" and env["PATH"] == "/bin"
    assert env["OMP_NUM_THREADS"] == "4" and env["OMP_WAIT_POLICY"] == "PASSIVE"


def test_integrity_checks(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "val.bin").write_bytes(b"abc")
    good_hash = hashlib.sha256(b"abc").hexdigest()
    rec = load_record(write_record(tmp_path, "r", 1, integrity={
        "data_hashes": {"${DATA_DIR}/val.bin": good_hash},
        "pinned_settings": {"val_tokens": 10485760, "num_vals": 20},
        "timed_region": ["t0 = time.perf_counter()"]}))
    assert check_integrity(rec, env={"DATA_DIR": str(data)}) == []

    (data / "val.bin").write_bytes(b"abd")
    assert "expected " + good_hash in check_data(rec, {"DATA_DIR": str(data)})[0]
    assert "missing" in check_data(rec, {"DATA_DIR": str(tmp_path / "nowhere")})[0]

    cheat = tmp_path / "cheat.py"
    cheat.write_text(SCRIPT.replace("10485760", "1048576").replace("t0 = time.perf_counter()", "t0 = 0")
                     + "num_vals = 2\n")
    problems = check_script(rec, cheat)
    assert "pinned setting val_tokens = 1048576, expected 10485760" in problems
    assert "pinned setting num_vals = 2, expected 20" in problems
    assert "timed region line missing: t0 = time.perf_counter()" in problems
    assert len(problems) == 3

    dropped = tmp_path / "dropped.py"
    dropped.write_text(SCRIPT.replace("num_vals = 20\n", ""))
    assert check_script(rec, dropped) == ["pinned setting num_vals is not assigned"]


LOGS = Path(__file__).resolve().parents[2] / "shared" / "data" / "modded-nanogpt-logs"
if not LOGS.is_dir():
    LOGS = Path("/work/shared/data/modded-nanogpt-logs")


def test_script_rules_on_real_modded_nanogpt_sources(tmp_path, monkeypatch):
    """The logs open with their scripts' source: the rules read real modded-nanogpt code."""
    monkeypatch.setenv("MODDED_NANOGPT_DIR", str(LOGS))
    rec = load_record(write_record(tmp_path, "m", 1, integrity={
        "pinned_settings": {"val_tokens": 10485760},
        "timed_region": ["training_time_ms += 1000 * (time.perf_counter() - t0)", "t0 = time.perf_counter()"]}))
    for name in ("2025-01-16_Sub3Min.txt", "2026-07-17_FP8DownProjection.txt"):
        assert check_script(rec, LOGS / name) == [], name
    # the 2024-10 script timed with time.time()
    assert check_script(rec, LOGS / "2024-10-14_ModernArch.txt") == [
        "timed region line missing: training_time_ms += 1000 * (time.perf_counter() - t0)",
        "timed region line missing: t0 = time.perf_counter()"]
    (tmp_path / "env.yaml").write_text(yaml.safe_dump({"script": "${MODDED_NANOGPT_DIR}/2025-09-03_FA3.txt"}))
    assert load_record(tmp_path / "env.yaml").script == (LOGS / "2025-09-03_FA3.txt").resolve()
