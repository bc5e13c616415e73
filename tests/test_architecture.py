"""The shape of the code: imports point one way (no cycles among project modules, lazy imports
included), and the pure core reaches none of the heavy libraries, directly or through other
project modules."""
import ast
import subprocess
import sys
from pathlib import Path

from conftest import REPO

HEAVY = ("ray", "torch", "wandb", "transformers", "vllm")
PURE = ("orchestrator.search", "orchestrator.driver", "orchestrator.stats", "orchestrator.protocols",
        "orchestrator.tts.stats", "orchestrator.passuntil.estimators", "orchestrator.passuntil.fit",
        "orchestrator.passuntil.sampling", "orchestrator.speedrun.stats", "orchestrator.speedrun.fsr",
        "orchestrator.speedrun.logparse", "orchestrator.grading", "orchestrator.edits",
        "orchestrator.agents.scaffolds", "orchestrator.agents.search", "orchestrator.agents.coders",
        *(f"orchestrator.scientist.{m}" for m in ("loop", "ideas", "state", "notes", "final_info",
                                                    "template", "protocol", "coder")))


def project_modules() -> dict[str, Path]:
    found = {}
    for package in ("orchestrator", "actors"):
        for path in (REPO / package).rglob("*.py"):
            name = ".".join(path.relative_to(REPO).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> tuple[set[str], set[str]]:
    """(project modules, top-level external packages) that a module imports anywhere in it."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    local, external = set(), set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module or ""
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            if target in modules and target != name:
                local.add(target)
            elif not target.startswith(("orchestrator", "actors")):
                external.add(target.split(".")[0])
    return local, external


def graph():
    modules = project_modules()
    edges, external = {}, {}
    for name, path in modules.items():
        edges[name], external[name] = imports_of(name, path, modules)
    return edges, external


def test_no_import_cycles():
    edges, _ = graph()
    cycles = []
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(node):
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_pure_core_reaches_no_heavy_library():
    edges, external = graph()
    pure = sorted(m for m in edges if any(m == p or m.startswith(p + ".") for p in PURE))
    assert "orchestrator.search.beam" in pure and "orchestrator.tts.stats" in pure
    problems = []
    for module in pure:
        seen, todo = {module}, [module]
        while todo:
            current = todo.pop()
            for heavy in set(external[current]) & set(HEAVY):
                problems.append(f"{module} reaches {heavy} through {current}")
            for nxt in edges[current] - seen:
                seen.add(nxt)
                todo.append(nxt)
    assert not problems, "\n".join(problems)


def test_checking_a_tts_config_loads_no_torch():
    code = ("import sys\nfrom orchestrator.tts.config import TTSConfig\nfrom orchestrator.config import ConfigError\n"
            "cfg = TTSConfig(preset='x')\ncfg.validate()\ncfg.prm.family = 'openai'\n"
            "try:\n    cfg.validate()\nexcept ConfigError as e:\n    assert 'prm.family' in str(e)\n"
            "else:\n    raise SystemExit('prm.family not checked')\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    p = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr


def test_loading_a_preset_with_a_schema_loads_no_torch():
    from orchestrator.experiments import SCHEMAS
    code = ("import sys\nfrom orchestrator.experiments import load_config\n"
            "for preset in ('tts-smoke', 'passuntil-smoke'):\n    load_config(preset)\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    assert set(SCHEMAS) == {"tts", "passuntil"}
    p = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr


def test_each_schema_is_its_experiments_config_class():
    from orchestrator.experiments import SCHEMAS, config_class, get_experiment
    for kind in SCHEMAS:
        assert config_class(kind) is get_experiment(kind).config_class


def test_prm_family_names_match_the_families():
    from actors.prm_families import FAMILIES
    from orchestrator.models import PRM_FAMILY_NAMES
    assert tuple(FAMILIES) == PRM_FAMILY_NAMES
