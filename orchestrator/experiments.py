"""What an experiment is, and the registry of kinds.

An experiment is a config class plus three functions: `units` lists the work units (plain
dicts holding every field that affects their result), `execute` runs the pending ones and
yields `(unit, result)` as each finishes, and `summarize` turns the rows into tables,
scalars and plots. Where units run, how they resume, where rows and logs go: the runner.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from ray import cloudpickle  # Ray serialises with its own copy of cloudpickle

from orchestrator.config import ConfigError, build_config, read_preset

# Built-in kinds: name -> "module:attribute" of its Experiment, imported only when used.
KINDS = {
    "tts": "orchestrator.tts.experiment:EXPERIMENT",
    "speedrun": "orchestrator.speedrun.experiment:EXPERIMENT",
    "passuntil": "orchestrator.passuntil.experiment:EXPERIMENT",
    "ai-scientist": "orchestrator.scientist.experiment:EXPERIMENT",
    "agents": "orchestrator.agents.experiment:EXPERIMENT",
}
# Config schemas kept apart from their experiments, so that checking a config imports no torch.
SCHEMAS = {
    "tts": "orchestrator.tts.config:TTSConfig",
    "passuntil": "orchestrator.passuntil.config:PassUntilConfig",
}


@dataclass
class Summary:
    """What a finished run reports: headline scalars, tables, and PNG plots in the run folder."""

    title: str
    scalars: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, list[dict]] = field(default_factory=dict)
    figures: dict[str, Path] = field(default_factory=dict)
    notes: str = ""


@dataclass
class Experiment:
    name: str
    config_class: type
    units: Callable[[Any], list[dict]]
    execute: Callable[[Any, list[dict], Any], Iterator[tuple[dict, dict]]]
    summarize: Callable[[Any, list, Any], Summary]


def get_experiment(kind: str) -> Experiment:
    """A built-in kind, or a plug-in named as `package.module:ATTR` or `path/to/file.py:ATTR`."""
    target = KINDS.get(kind, kind)
    if ":" not in target:
        raise ConfigError("experiment", kind, "allowed: " + ", ".join(KINDS) + ", or module:ATTR")
    try:
        experiment = _attribute(target)
    except (ImportError, AttributeError, FileNotFoundError) as e:
        raise ConfigError("experiment", kind, f"cannot load {target}: {e}") from None
    if not isinstance(experiment, Experiment):
        raise ConfigError("experiment", kind, f"{target} is not an Experiment")
    return experiment


def config_class(kind: str) -> type:
    """The config schema of a kind: its `SCHEMAS` entry, else its experiment's."""
    return _attribute(SCHEMAS[kind]) if kind in SCHEMAS else get_experiment(kind).config_class


def _attribute(target: str):
    """The attribute a `module:ATTR` or `path/to/file.py:ATTR` target names, imported."""
    module_name, attr = target.rsplit(":", 1)
    module = _load_file(Path(module_name)) if module_name.endswith(".py") else importlib.import_module(module_name)
    return getattr(module, attr)


def load_config(preset: str, overrides: Sequence[str] = ()) -> Any:
    """A preset plus `key=value` overrides, resolved into the validated config of its kind."""
    found = read_preset(preset, overrides)
    return build_config(config_class(found.kind), found)


def _load_file(path: Path):
    """Imports a plug-in file and ships it to Ray workers by value, so they need no copy of it."""
    name = "scalerun_plugin_" + path.stem
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or not path.exists():
        raise FileNotFoundError(str(path))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    cloudpickle.register_pickle_by_value(module)
    return module
