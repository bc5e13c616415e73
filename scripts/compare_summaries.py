"""Compares two runs' summary.json, timing fields aside: `python scripts/compare_summaries.py A B`.

Prints the number of differences and the first 40 (dotted path: A's value vs B's). Fields that
say how long an attempt took or which run it was (wall and compute seconds, run id, config hash,
units run in this attempt) are left out, so a refactor or a resumed run can be checked for the
same numbers.
"""
import json
import sys

from orchestrator.report import comparable_summary

def differences(a, b, path=""):
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b)):
            if key not in a or key not in b:
                out.append(f"{path}.{key}: only in {'B' if key in b else 'A'}")
            else:
                out += differences(a[key], b[key], f"{path}.{key}")
        return out
    if isinstance(a, list) and isinstance(b, list):
        out = [f"{path}: {len(a)} vs {len(b)} items"] if len(a) != len(b) else []
        for i, (x, y) in enumerate(zip(a, b)):
            out += differences(x, y, f"{path}[{i}]")
        return out
    return [] if a == b else [f"{path}: {a!r} vs {b!r}"]


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        sys.exit(__doc__.splitlines()[0])
    a, b = (comparable_summary(json.loads(open(path).read())) for path in argv)
    found = differences(a, b)
    print(f"{len(found)} differences (timing, run id and config hash aside)")
    for line in found[:40]:
        print("  " + line)
    return 0 if not found else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
