"""`scalerun`: run experiments, print resolved configs, build the tiny world, parse logs.

    scalerun run <preset> [key=value ...]      run or resume an experiment
    scalerun config <preset> [key=value ...]   print the resolved, validated config
    scalerun tinyworld build [profile=default] [force=true]
    scalerun tinyworld report [profile=default] [--json]
    scalerun speedrun parse <log> [--target 3.28]
    scalerun sandbox probe | exec [sandbox.key=value ...] -- CMD ARGS...

A bad config prints one line naming the key and exits with code 2, before anything is written.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from orchestrator.config import ConfigError, to_yaml


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="scalerun", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    for name, help_ in (("run", "run or resume an experiment"), ("config", "print the resolved config")):
        c = sub.add_parser(name, help=help_)
        c.add_argument("preset", help="a name under configs/ or a path to a YAML file")
        c.add_argument("overrides", nargs="*", help="key=value dotlist overrides")
    t = sub.add_parser("tinyworld", help="build or report the embedded tiny world")
    t.add_argument("action", choices=["build", "report"])
    t.add_argument("overrides", nargs="*", help="profile=default|test, force=true")
    t.add_argument("--json", action="store_true", help="report as one JSON object")
    s = sub.add_parser("speedrun", help="speedrun tools")
    s.add_argument("action", choices=["parse"])
    s.add_argument("rest", nargs=argparse.REMAINDER)
    x = sub.add_parser("sandbox", help="which sandboxes work here; run one command confined")
    x.add_argument("rest", nargs=argparse.REMAINDER)
    return p


def _kv(overrides: list[str], allowed: dict[str, str]) -> dict[str, str]:
    out = dict(allowed)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or key not in allowed:
            raise ConfigError(key, value or None, "allowed keys: " + ", ".join(allowed))
        out[key] = value
    return out


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # each command imports what it needs: torch, transformers and Ray take seconds to import
    try:
        if args.command == "config":
            from orchestrator.experiments import load_config
            print(to_yaml(load_config(args.preset, args.overrides)), end="")
        elif args.command == "run":
            from orchestrator import runtime
            from orchestrator.experiments import load_config
            from orchestrator.runner import run
            cfg = load_config(args.preset, args.overrides)
            try:
                run(cfg)
            finally:
                runtime.shutdown()
        elif args.command == "tinyworld":
            return _tinyworld(args)
        elif args.command == "speedrun":
            from orchestrator.speedrun.logparse import main as parse_main
            return parse_main(args.rest)
        elif args.command == "sandbox":
            from orchestrator.sandbox.cli import cli as sandbox_cli
            return sandbox_cli(args.rest)
    except ConfigError as e:
        print(f"scalerun: {e}", file=sys.stderr)
        return 2
    return 0


def _tinyworld(args) -> int:
    from orchestrator import tinyworld
    opts = _kv(args.overrides, {"profile": "default", "force": "false"})
    if opts["profile"] not in tinyworld.PROFILES:
        raise ConfigError("profile", opts["profile"], "allowed: " + ", ".join(tinyworld.PROFILES))
    if args.action == "build":
        world = tinyworld.build(opts["profile"], force=opts["force"].lower() in ("1", "true", "yes"))
        print(f"policy: {world.policy_dir}\nprm: {world.prm_dir}")
    else:
        report = tinyworld.report(opts["profile"])
        print(json.dumps(report) if args.json else tinyworld.format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
