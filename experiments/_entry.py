"""Shared start of the `ray job submit` entry points: the working dir on sys.path, then the CLI."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the submitted working dir

from orchestrator.cli import main  # noqa: E402


def run_preset(default_preset: str) -> int:
    """`python experiments/<entry>.py [preset] [key=value ...]`."""
    args = sys.argv[1:]
    preset = args.pop(0) if args and "=" not in args[0] else default_preset
    return main(["run", preset, *args])
