"""Config validation: one line naming the key, exit code 2, and no run folder created."""
import subprocess
import sys

import pytest

from orchestrator.cli import main
from orchestrator.config import ConfigError
from orchestrator.experiments import load_config

BAD = [
    (["budgets=[4,-16]"], "budgets"),  # a budget that is not a positive int
    (["budgets=[4,16.5]"], "budgets"),
    (["budgets=[4,6]", "search.beam_width=4"], "search.beam_width"),  # width must divide N
    (["policy.path=/no/such/model"], "policy.path"),  # a missing model path
    (["policy.path=tinyworld:huge"], "policy.path"),
    (["methods=[beam,astar]"], "methods"),  # a value outside the allowed set
    (["search.aggregation=median"], "search.aggregation"),
    (["search.beam_width=four"], "search.beam_width"),  # a wrong type
    (["dataset.num_problems=0"], "dataset.num_problems"),
    (["search.beamwidth=4"], "search.beamwidth"),  # an unknown key
    (["bogus=1"], "bogus"),
    (["policy.backend=tensorrt"], "policy.backend"),
    (["prm.dtype=fp8"], "prm.dtype"),
    (["prm.family=openai"], "prm.family"),
    (["dataset.name=jsonl", "dataset.path=/no/such.jsonl"], "dataset.path"),
    (["ray.cohorts=0"], "ray.cohorts"),
    (["ray.cohort_affinity=true", "policy.replicas=2"], "ray.cohorts"),  # one cohort would leave a replica idle
]


@pytest.mark.parametrize("overrides,key", BAD)
def test_bad_config_names_the_key(overrides, key):
    with pytest.raises(ConfigError) as e:
        load_config("tts-smoke", overrides)
    assert e.value.key == key
    message = str(e.value)
    assert "\n" not in message and key in message


def test_unknown_key_lists_allowed_keys():
    with pytest.raises(ConfigError) as e:
        load_config("tts-smoke", ["search.beamwidth=4"])
    assert "beam_width" in str(e.value)


def test_allowed_values_are_listed():
    with pytest.raises(ConfigError) as e:
        load_config("tts-smoke", ["search.aggregation=median"])
    assert "last, min, prod, mean" in str(e.value)


def test_unknown_preset_lists_presets():
    with pytest.raises(ConfigError) as e:
        load_config("no-such-preset")
    assert "tts-smoke" in str(e.value)


def test_good_overrides_apply():
    cfg = load_config("tts-smoke", ["budgets=[8,32]", "search.beam_width=8", "seed=3"])
    assert cfg.budgets == [8, 32] and cfg.search.beam_width == 8 and cfg.seed == 3
    assert cfg.preset == "tts-smoke"


def test_cli_exits_2_with_one_line_and_creates_nothing(tmp_path, runs_dir, capsys):
    code = main(["run", "tts-smoke", "budgets=[4,6]"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and "search.beam_width" in err
    assert not runs_dir.exists()


def test_cli_process_exit_code(tmp_path):
    env_runs = tmp_path / "runs"
    p = subprocess.run([sys.executable, "-m", "orchestrator.cli", "config", "tts-smoke", "budgets=[0]"],
                       capture_output=True, text=True, env={"SCALERUN_RUNS_DIR": str(env_runs), "PATH": "/usr/bin"})
    assert p.returncode == 2, p.stderr
    assert p.stderr.strip().count("\n") == 0 and "budgets" in p.stderr
    assert not env_runs.exists()


def test_model_dtype_reaches_transformers_as_a_torch_dtype():
    from actors.launch import transformers_dtype
    from orchestrator.models import ModelConfig

    assert transformers_dtype(ModelConfig()) == "float32"  # auto on CPU
    assert transformers_dtype(ModelConfig(num_gpus=1)) == "bfloat16"
    assert transformers_dtype(ModelConfig(dtype="float16", num_gpus=1)) == "float16"


def test_a_malformed_jsonl_line_is_one_line_naming_file_and_line(tmp_path):
    data = tmp_path / "problems.jsonl"
    data.write_text('{"question": "1+1?", "answer": "2"}\n{"question": "2+2?", "answer": \n')
    runs = tmp_path / "runs"
    p = subprocess.run([sys.executable, "-m", "orchestrator.cli", "run", "tts-smoke", "dataset.name=jsonl",
                        f"dataset.path={data}", f"runs_dir={runs}"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 2, p.stderr[-2000:]
    assert p.stderr.strip().count("\n") == 0 and str(data) in p.stderr and "line 2" in p.stderr, p.stderr
    assert not runs.exists()
