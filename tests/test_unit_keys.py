"""Unit keys come from the config itself: every field that can change a result is in every
unit's key, and a named run refuses a config other than the one that made it."""
import dataclasses
import json
import os
import subprocess
import sys

import pytest

from conftest import REPO
from orchestrator.config import RUNTIME_KEYS
from orchestrator.experiments import load_config
from orchestrator.passuntil import experiment as passuntil
from orchestrator.tts import experiment as tts


def leaf_fields(obj, prefix=""):
    """(dotted name, value) of every leaf field of a nested dataclass config."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        name = prefix + f.name
        if dataclasses.is_dataclass(value):
            yield from leaf_fields(value, name + ".")
        else:
            yield name, value


def changed(name: str, value):
    """Another value of the same type (a model path stays a tiny-world path that exists)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    if isinstance(value, list):
        return value + [value[0] if value else "x"]
    if isinstance(value, str) and value.startswith("tinyworld:"):
        return "tinyworld:test" if value != "tinyworld:test" else "tinyworld:default"
    return (value or "") + "x"


def set_field(cfg, dotted: str, value):
    *parents, leaf = dotted.split(".")
    target = cfg
    for part in parents:
        target = getattr(target, part)
    setattr(target, leaf, value)


@pytest.mark.parametrize("preset,module", [("tts-smoke", tts), ("passuntil-smoke", passuntil)])
def test_every_field_is_in_the_unit_key_or_named_as_not_changing_results(preset, module):
    key_of = tts.setup if module is tts else (lambda c: module.result_setup(c, module.NOT_IN_UNIT_KEY))
    base = load_config(preset)
    reference = json.dumps(key_of(base), sort_keys=True)
    checked = 0
    for name, value in leaf_fields(base):
        if name.split(".")[0] in RUNTIME_KEYS:
            continue
        cfg = load_config(preset)
        set_field(cfg, name, changed(name, value))
        moved = json.dumps(key_of(cfg), sort_keys=True) != reference
        assert moved != (name in module.NOT_IN_UNIT_KEY), (
            f"{name}: {'in the key but listed as not changing results' if moved else 'not in the unit key'}")
        checked += 1
    assert checked >= 20


def test_the_bug_fields_are_in_the_tts_key():
    base = {json.dumps(u, sort_keys=True) for u in tts.units(load_config("tts-smoke"))}
    for override in ("policy.dtype=bfloat16", "policy.backend=vllm", "prm.dtype=float16"):
        other = {json.dumps(u, sort_keys=True) for u in tts.units(load_config("tts-smoke", [override]))}
        assert not base & other, override


def test_placement_and_more_budgets_keep_the_units_that_were_there():
    base = [json.dumps(u, sort_keys=True) for u in tts.units(load_config("tts-smoke"))]
    more = tts.units(load_config("tts-smoke", ["policy.replicas=3", "prm.batch_size=8", "budgets=[4,16,32]"]))
    kept = [u for u in base if '"kind": "sampling"' not in u]  # the sampling unit draws N_max, now 32
    assert set(kept) <= {json.dumps(u, sort_keys=True) for u in more}


def scalerun(*args, env):
    return subprocess.run([sys.executable, "-m", "orchestrator.cli", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=900, env=env)


def test_a_named_run_refuses_another_config(tmp_path):
    env = {**os.environ, "SCALERUN_RUNS_DIR": str(tmp_path / "runs"), "WANDB_DIR": str(tmp_path / "wandb"),
           "WANDB_MODE": "offline"}
    small = ["run_id=x", "dataset.num_problems=1", "budgets=[4]", "methods=[beam]", "oracle_samples=1",
             "progress=quiet"]
    first = scalerun("run", "tts-smoke", *small, env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    run_dir = tmp_path / "runs" / "tts-smoke" / "x"
    before = {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir()}
    rows = (run_dir / "results.jsonl").read_text()
    for change in ("policy.dtype=bfloat16", "policy.backend=vllm"):
        p = scalerun("run", "tts-smoke", *small, change, env=env)
        assert p.returncode == 2, p.stdout[-2000:] + p.stderr[-2000:]
        assert p.stderr.strip().count("\n") == 0 and "run_id='x'" in p.stderr, p.stderr
        assert {q.name: q.stat().st_mtime_ns for q in run_dir.iterdir()} == before  # nothing written
        assert (run_dir / "results.jsonl").read_text() == rows
