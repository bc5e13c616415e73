"""cluster.yaml passes Ray's own config preparation and schema validation (no cloud calls)."""
import copy

import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

from conftest import REPO


def load():
    return yaml.safe_load((REPO / "cluster.yaml").read_text())


def test_cluster_yaml_is_valid_for_the_ray_launcher():
    config = prepare_config(load())
    validate_config(config)
    types = config["available_node_types"]
    assert config["head_node_type"] in types
    gpu_types = [t for t in types if t.startswith("gpu")]
    assert gpu_types, "no GPU worker type"
    assert any("pip install -e" in c and "[vllm]" in c for c in config["setup_commands"])
    assert "~/scalerun" in config["file_mounts"]


def test_validation_catches_a_broken_file():
    config = load()
    config["available_node_types"]["gpu_1x"]["no_such_field"] = 1
    import jsonschema
    try:
        validate_config(prepare_config(copy.deepcopy(config)))
    except jsonschema.ValidationError as e:
        assert "no_such_field" in str(e)
    else:
        raise AssertionError("an unknown field passed validation")
