"""Structured configs: dataclasses + YAML presets in configs/ + command-line dotlist overrides.

Every experiment config subclasses `RunConfig`. Loading merges, in order: the dataclass
defaults, the preset YAML, the `key=value` overrides; then the experiment's own `validate()`
checks values. Any problem raises `ConfigError` with one line naming the key, the value and
what is allowed; nothing touches the disk before validation passes.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import yaml
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import (ConfigAttributeError, ConfigKeyError, MissingMandatoryValue,
                              OmegaConfBaseException, ValidationError)

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIGS_DIR = REPO_ROOT / "configs"

# Fields that say where and how a run executes, not what it computes: they never enter the
# run id, so the same experiment resumes whatever cluster or tracker it is pointed at.
RUNTIME_KEYS = ("preset", "runs_dir", "run_id", "resume", "wandb", "ray", "progress")


class ConfigError(ValueError):
    """A bad configuration: the message is one line naming the key."""

    def __init__(self, key: str, value: Any, allowed: str):
        self.key, self.value, self.allowed = key, value, allowed
        shown = key if value is None else f"{key}={value!r}"
        super().__init__(f"config error: {shown}: {allowed}")


@dataclass
class WandbConfig:
    project: str = "scalerun"
    entity: str | None = None
    mode: str | None = None  # online | offline | disabled; default: WANDB_MODE, else online iff an API key is set
    tags: list[str] = field(default_factory=list)


@dataclass
class RayConfig:
    address: str | None = None  # default: RAY_ADDRESS, else a local instance sized to the machine
    num_cpus: int | None = None  # local instance only
    # Work units in flight at once; 0 = the experiment's default (eight per model replica for
    # sweeps that drive models, two per CPU for independent units).
    max_in_flight: int = 0
    # The driver's cohorts for sweeps that drive models (orchestrator/driver.py); answers do not
    # depend on it. 1: lockstep, the most requests per call; 2 on a cluster of many replicas: the
    # driver's own work overlaps the models' (twice the units in flight by default).
    cohorts: int = 1
    # Each cohort's calls go whole to one replica. With `cohorts` = the policy's replicas, each
    # replica moves in step with its own cohort and waits for no other (the most replicas one
    # driver keeps busy: benchmarks/scale_out.py); the units in flight stay as with one cohort.
    cohort_affinity: bool = False

    def cohorts_per_replica(self) -> int:
        """How many cohorts' calls each replica serves: what the default units in flight scale by."""
        return 1 if self.cohort_affinity else self.cohorts

    def check_cohorts_cover(self, replicas: int) -> None:
        """With cohort affinity, fewer cohorts than policy replicas would leave replicas idle."""
        if self.cohort_affinity and self.cohorts < replicas:
            raise ConfigError("ray.cohorts", self.cohorts, f"with ray.cohort_affinity, at least policy.replicas "
                                                           f"({replicas}): each cohort is sent to one replica")


@dataclass
class RunConfig:
    experiment: str = MISSING  # experiment kind, e.g. "tts"; or "package.module:EXPERIMENT"
    preset: str = ""
    seed: int = 0
    runs_dir: str | None = None  # default: SCALERUN_RUNS_DIR, else ./runs
    run_id: str | None = None  # default: a hash of the config, so re-running resumes
    resume: str | None = None  # the id of an existing run to continue
    progress: str = "auto"  # auto | bar | lines | quiet
    wandb: WandbConfig = field(default_factory=WandbConfig)
    ray: RayConfig = field(default_factory=RayConfig)

    def validate(self) -> None:
        """Experiment configs extend this with their own value checks."""
        check_choice("progress", self.progress, ("auto", "bar", "lines", "quiet"))
        if self.wandb.mode is not None:
            check_choice("wandb.mode", self.wandb.mode, ("online", "offline", "disabled"))
        if self.ray.max_in_flight < 0:
            raise ConfigError("ray.max_in_flight", self.ray.max_in_flight, "must be >= 0")
        if self.ray.cohorts < 1:
            raise ConfigError("ray.cohorts", self.ray.cohorts, "must be >= 1")


def check_choice(key: str, value: Any, allowed: Sequence[Any]) -> None:
    if value not in allowed:
        raise ConfigError(key, value, "allowed: " + ", ".join(map(str, allowed)))


def check_positive_ints(key: str, values: Sequence[Any]) -> None:
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise ConfigError(key, list(values), "must be a list of positive integers")


def check_path_exists(key: str, path: str | None) -> None:
    if not path or not Path(path).expanduser().exists():
        raise ConfigError(key, path, "must be an existing path")


def preset_path(preset: str) -> Path:
    """A preset is a name under configs/ (subfolders allowed) or a path to a YAML file."""
    p = Path(preset)
    if p.suffix in (".yaml", ".yml") and p.exists():
        return p
    candidate = CONFIGS_DIR / f"{preset}.yaml"
    if candidate.exists():
        return candidate
    known = sorted(str(f.relative_to(CONFIGS_DIR).with_suffix("")) for f in CONFIGS_DIR.rglob("*.yaml"))
    raise ConfigError("preset", preset, "allowed: " + ", ".join(known))


def _explain(e: OmegaConfBaseException, schema: type) -> ConfigError:
    key = getattr(e, "full_key", None) or getattr(e, "key", None) or "?"
    value = getattr(e, "value", None)
    if isinstance(e, ValidationError) and key.endswith("]"):  # a bad list element: name the list
        key = key[:key.rindex("[")]
    if isinstance(e, (ConfigKeyError, ConfigAttributeError)):
        parent = key.rsplit(".", 1)[0] if "." in key else ""
        return ConfigError(key, value, "unknown key; allowed keys"
                           + (f" in {parent}" if parent else "") + ": " + ", ".join(_keys_at(schema, parent)))
    if isinstance(e, MissingMandatoryValue):
        return ConfigError(key, "???", "a value is required")
    if isinstance(e, ValidationError):
        msg = str(e).splitlines()[0]
        return ConfigError(key, value, msg)
    return ConfigError(key, value, str(e).splitlines()[0])


def _keys_at(schema: type, dotted: str) -> list[str]:
    """The field names of the (nested) dataclass at a dotted path, for error messages."""
    cls = schema
    for part in filter(None, dotted.split(".")):
        cls = typing.get_type_hints(cls).get(part)
        if not dataclasses.is_dataclass(cls):
            return []
    return [f.name for f in dataclasses.fields(cls)]


@dataclass
class Preset:
    """A preset file and the overrides given with it, read but not yet merged into a schema."""

    path: Path
    raw: dict
    overrides: DictConfig
    kind: str  # the experiment kind it names


def read_preset(preset: str, overrides: Sequence[str] = ()) -> Preset:
    """The preset's YAML and the `key=value` overrides; the kind comes from either."""
    path = preset_path(preset)
    raw = yaml.safe_load(path.read_text()) or {}
    dotlist = list(overrides)
    for item in dotlist:
        if "=" not in item:
            raise ConfigError(item, None, "overrides are key=value")
    cli = OmegaConf.from_dotlist(dotlist)
    kind = OmegaConf.select(cli, "experiment", default=None) or raw.get("experiment")
    if not kind:
        raise ConfigError("experiment", None, f"{path} must name an experiment kind")
    return Preset(path, raw, cli, kind)


def build_config(schema: type, preset: Preset) -> Any:
    """Defaults of `schema`, then the preset, then the overrides; validated."""
    try:
        cfg: DictConfig = OmegaConf.merge(OmegaConf.structured(schema), preset.raw, preset.overrides)
        if not cfg.preset:
            resolved = preset.path.resolve()
            cfg.preset = (str(resolved.relative_to(CONFIGS_DIR).with_suffix(""))
                          if resolved.is_relative_to(CONFIGS_DIR) else preset.path.stem)
        obj = OmegaConf.to_object(cfg)
    except OmegaConfBaseException as e:
        raise _explain(e, schema) from None
    obj.validate()
    return obj


def to_dict(cfg: Any) -> dict:
    return OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)


def to_yaml(cfg: Any) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


def content_hash(obj: Any, length: int = 12) -> str:
    """A stable hash of JSON-able content (key order does not matter)."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:length]


def config_hash(cfg: Any) -> str:
    """Hash of what the run computes: the config minus the RUNTIME_KEYS."""
    d = {k: v for k, v in to_dict(cfg).items() if k not in RUNTIME_KEYS}
    return content_hash(d, 10)


def result_setup(cfg: Any, not_in_key: Sequence[str]) -> dict:
    """The config as it bears on one work unit's result, for the unit's key: every field except
    the RUNTIME_KEYS and the dotted `not_in_key` paths. Derived, never listed, so that a new
    field is in every unit key unless someone says why it must not be."""
    d = {k: v for k, v in to_dict(cfg).items() if k not in RUNTIME_KEYS}
    for dotted in not_in_key:
        *parents, leaf = dotted.split(".")
        node = d
        for part in parents:
            node = node[part]
        del node[leaf]
    return d
