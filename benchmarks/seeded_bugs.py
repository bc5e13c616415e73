"""How many realistic small bugs the fast unit tests catch in the pure core: each mutation in
`MUTATIONS` (an off-by-one, a flipped comparison or sign, a dropped edge case, a wrong degrees of
freedom or quantile, a swapped argument, a missing fsync) is seeded alone into a pristine copy of
the repository's tracked files (as they are in the working tree, so new tests count before they
are committed), and the fast pure-core tests (`FAST_TESTS`) run in that copy. A mutation is caught
when they fail (a collection error or a run past the timeout included), survived when they pass.

    python benchmarks/seeded_bugs.py [--only SUBSTRING] [--timeout 300] [--mutations FILE]

The mutations span the search strategies, the tts statistics, the shared bootstrap, the PassUntil
estimators and fit, the speedrun statistics, log parser and FSR, the grader and the result store;
they were chosen from the code alone, not from the tests. `FAST_TESTS` is every test file that
imports only pure modules and runs in seconds: no Ray cluster, no `scalerun run` or trainer-job
subprocess, no torch model (so not test_tts_streams, which imports actors.policy, nor
test_speedrun_claims, test_architecture, test_scientist_* or test_agents_coders); the grader's
math_verify worker belongs to the pure grader, so test_grading is in.

Before the mutations the unmutated copy must pass, and a canary that raises at import must be
caught (so `import orchestrator` resolves to the copy), else the benchmark stops. `--only` keeps
the mutations whose file or description holds the substring. Prints one row per mutation (module,
caught or survived, the first failing test, description) and ends with ONE JSON line: mutations,
caught, catch_rate (target >= 0.9) and the descriptions of the survivors.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

REPO = Path(__file__).resolve().parents[1]

# Pure modules only, seconds per file (see the docstring); the slower grader files last, as -x stops early.
FAST_TESTS = (
    "tests/test_contracts_search.py", "tests/test_search_aggregate.py", "tests/test_search_batching.py",
    "tests/test_search_beam.py", "tests/test_search_dvts.py", "tests/test_search_lookahead.py",
    "tests/test_search_sampling.py", "tests/test_search_subsample.py", "tests/test_driver.py",
    "tests/test_contracts_tts_stats.py", "tests/test_tts_stats.py",
    "tests/test_contracts_passuntil.py", "tests/test_passuntil_stats.py", "tests/test_passuntil_sampling.py",
    "tests/test_contracts_speedrun.py", "tests/test_speedrun_stats.py", "tests/test_speedrun_logparse.py",
    "tests/test_contracts_results.py", "tests/test_results.py",
    "tests/test_progress.py", "tests/test_agents.py",
    "tests/test_contracts_grading.py", "tests/test_arith.py", "tests/test_grading.py",
)


class Mutation(NamedTuple):
    file: str
    old: str  # occurs exactly once in `file`
    new: str
    description: str


MUTATIONS = (
    # search/aggregate.py
    Mutation("orchestrator/search/aggregate.py", "key=lambda i: (scores[i], -i)", "key=lambda i: (scores[i], i)",
             "naive vote: a score tie goes to the last solution, not the first"),
    Mutation("orchestrator/search/aggregate.py", "key=lambda c: (totals[c], -first[c])",
             "key=lambda c: (totals[c], first[c])",
             "majority/weighted vote: a tie goes to the class seen last, not first"),
    Mutation("orchestrator/search/aggregate.py", "answered = [i for i, c in enumerate(classes) if c is not None]",
             "answered = list(range(len(classes)))",
             "vote: solutions without an answer vote too (None is a class)"),
    # search/base.py
    Mutation("orchestrator/search/base.py", "if not 0 < self.top_p <= 1:", "if not 0 <= self.top_p <= 1:",
             "SearchConfig accepts top_p = 0"),
    Mutation("orchestrator/search/base.py", 'COMPLETE = ("eos", "length")', 'COMPLETE = ("eos",)',
             "a step cut at max_tokens leaves its node open instead of completing it"),
    # search/beam.py
    Mutation("orchestrator/search/beam.py", "width = n if iterations == 0 else cfg.beam_width",
             "width = n if iterations == 1 else cfg.beam_width",
             "beam search: the N-wide first expansion happens at iteration 1 instead of 0"),
    Mutation("orchestrator/search/beam.py",
             "beams = best([c for c in candidates if not c.complete], n // cfg.beam_width)",
             "beams = best([c for c in candidates if not c.complete], n)",
             "beam search keeps N open beams instead of N/M"),
    Mutation("orchestrator/search/beam.py",
             "completed = best([*completed, *(c for c in candidates if c.complete)], n)",
             "completed = [*completed, *(c for c in candidates if c.complete)]",
             "beam search keeps every completion, unranked, instead of the best N"),
    # search/dvts.py
    Mutation("orchestrator/search/dvts.py", "finished.extend(node for node in siblings if node.complete)",
             "finished.append(chosen)",
             "DVTS: a finished subtree returns only its best completion, not all completed siblings"),
    Mutation("orchestrator/search/dvts.py", "if chosen.complete:", "if any(node.complete for node in siblings):",
             "DVTS: a subtree ends when any candidate completes, not when the best one does"),
    Mutation("orchestrator/search/dvts.py", "subtrees = n // cfg.beam_width", "subtrees = n",
             "DVTS runs N subtrees instead of N/M"),
    # search/lookahead.py
    Mutation("orchestrator/search/lookahead.py", "if cfg.lookahead < 1:", "if cfg.lookahead < 0:",
             "lookahead search accepts lookahead = 0"),
    Mutation("orchestrator/search/lookahead.py", "lookahead=cfg.lookahead)", "lookahead=cfg.lookahead - 1)",
             "lookahead search rolls out k-1 steps instead of k"),
    # search/sampling.py
    Mutation("orchestrator/search/sampling.py", 'truncated = sample.finish_reason == "length"',
             'truncated = sample.finish_reason == "max_tokens"',
             "sampling: a cut-off solution is never treated as truncated (wrong finish reason name)"),
    Mutation("orchestrator/search/sampling.py", "max_tokens=cfg.max_solution_tokens",
             "max_tokens=cfg.max_step_tokens",
             "sampling asks for max_step_tokens per whole solution"),
    # search/steps.py
    Mutation("orchestrator/search/steps.py", "p.steps + ((s.text,) if s.text else ())", "p.steps + (s.text,)",
             "expand: an empty sample adds an empty step"),
    Mutation("orchestrator/search/steps.py", 'derive_seed(seed, "expand", p.id)', 'derive_seed(seed, "expand")',
             "expand: every parent gets the same sampling seed"),
    Mutation("orchestrator/search/steps.py", "(result.step_scores[-1],)",
             "(result.step_scores[len(node.steps) - 1],)",
             "lookahead: the step score is read at the candidate step, not at the rollout's end"),
    # search/subsample.py
    Mutation("orchestrator/search/subsample.py",
             "        rng.shuffle(order)\n        for n in ns:\n",
             "        for n in ns:\n            rng.shuffle(order)\n",
             "subsample: a new shuffle per budget, so budgets are not nested"),
    Mutation("orchestrator/search/subsample.py", "bool(correct[chosen[pick]])", "bool(correct[pick])",
             "subsample: the vote's pick is graded by its index in the subsample, not in the run"),
    # tts/stats.py
    Mutation("orchestrator/tts/stats.py", "(v[:, None] < thresholds[None, :])", "(v[:, None] <= thresholds[None, :])",
             "difficulty levels: a value tied with a threshold goes to the harder level"),
    Mutation("orchestrator/tts/stats.py",
             "held_out[fold_b] = on_a.correct[fold_b]\n            held_out[fold_a] = on_b.correct[fold_a]",
             "held_out[fold_a] = on_a.correct[fold_a]\n            held_out[fold_b] = on_b.correct[fold_b]",
             "compute-optimal: each fold's choice is scored on its own fold (in-sample)"),
    Mutation("orchestrator/tts/stats.py", "c.cost <= budget * (1 + 1e-9)", "c.cost < budget",
             "compute-optimal: a configuration costing exactly the budget is not a candidate"),
    Mutation("orchestrator/tts/stats.py",
             "return float(np.exp(np.log(b[i - 1]) + fraction * (np.log(b[i]) - np.log(b[i - 1]))))",
             "return float(b[i - 1] + fraction * (b[i] - b[i - 1]))",
             "matching budget interpolated linearly in budget, not in log budget"),
    # stats.py
    Mutation("orchestrator/stats.py", "integers(0, v.shape[-1], size", "integers(0, v.shape[-1] - 1, size",
             "bootstrap never draws the last instance"),
    Mutation("orchestrator/stats.py", "tail = 100 * (1 - confidence) / 2", "tail = 100 * (1 - confidence)",
             "percentile interval puts the whole 1-confidence in each tail"),
    Mutation("orchestrator/stats.py", "x[rows, cols].mean(axis=(1, 2))", "x[rows, np.arange(draws)].mean(axis=(1, 2))",
             "two-stage bootstrap drops the second stage (draws not resampled)"),
    # passuntil/estimators.py
    Mutation("orchestrator/passuntil/estimators.py", "(r - 1) / (nf - 1)", "(r - 1) / nf",
             "PassUntil p_hat (r-1)/K instead of (r-1)/(K-1)"),
    Mutation("orchestrator/passuntil/estimators.py", "sps.beta.ppf(1 - tail, r, np.maximum(nf - r, 1))",
             "sps.beta.ppf(1 - tail, r + 1, np.maximum(nf - r, 1))",
             "stopped interval's upper end uses the Clopper-Pearson r+1"),
    Mutation("orchestrator/passuntil/estimators.py", "censored = ~stopped & (n >= rule.cap)", "censored = ~stopped",
             "an unfinished instance (below r passes, below the cap) is estimated as censored"),
    Mutation("orchestrator/passuntil/estimators.py", "samples >= self.cap", "samples > self.cap",
             "PassUntilRule.done lets an instance draw one sample past the cap"),
    # passuntil/fit.py
    Mutation("orchestrator/passuntil/fit.py", "sps.t.ppf(0.5 + confidence / 2, n - 2)",
             "sps.t.ppf(0.5 + confidence / 2, n - 1)",
             "task-law prediction interval with n-1 degrees of freedom instead of n-2"),
    Mutation("orchestrator/passuntil/fit.py", "1 + 1 / n + (x[held_out]", "1 / n + (x[held_out]",
             "task-law interval is the mean's confidence interval, not a prediction interval"),
    Mutation("orchestrator/passuntil/fit.py", "float((pred - measured) / measured)",
             "float((measured - pred) / measured)",
             "relative deviation has its sign flipped"),
    Mutation("orchestrator/passuntil/fit.py", "prior = (intercept + slope * xm, slope)", "prior = (intercept, slope)",
             "instance fit pulls towards the task line without centring its intercept"),
    # speedrun/stats.py
    Mutation("orchestrator/speedrun/stats.py", "/ (n - 1)) if n > 1", "/ n) if n > 1",
             "std with n instead of n-1"),
    Mutation("orchestrator/speedrun/stats.py", "p = 0.0 if mean < target else 1.0",
             "p = 0.0 if mean <= target else 1.0",
             "acceptance: a single run exactly at the target is accepted"),
    Mutation("orchestrator/speedrun/stats.py", "va**2 / (len(times_a) - 1) + vb**2 / (len(times_b) - 1)",
             "va**2 / len(times_a) + vb**2 / len(times_b)",
             "speedup interval: Welch-Satterthwaite with n instead of n-1"),
    # speedrun/logparse.py
    Mutation("orchestrator/speedrun/logparse.py", 'p["val_loss"] <= self.target', 'p["val_loss"] < self.target',
             "log parser: a validation loss exactly at the target does not reach it"),
    Mutation("orchestrator/speedrun/logparse.py", 'r" )?train_time:([0-9.]+)ms")', 'r" )train_time:([0-9.]+)ms")',
             "log parser: training lines without train_loss are ignored"),
    Mutation("orchestrator/speedrun/logparse.py", "|nan|inf))", "))",
             "log parser: nan/inf losses do not parse (a diverged run's lines vanish)"),
    # speedrun/fsr.py
    Mutation("orchestrator/speedrun/fsr.py", "or not gap > 0:", "or gap < 0:",
             "FSR: a zero record gap is not caught (division by zero)"),
    Mutation("orchestrator/speedrun/fsr.py", "return max(0.0, (t_record - t_candidate) / gap)",
             "return (t_record - t_candidate) / gap",
             "FSR: not clipped at 0, a slow candidate scores below a miss"),
    Mutation("orchestrator/speedrun/fsr.py", "return sum(fsr(a, b, t) for t in tc) / len(tc)",
             "return sum(fsr(a, b, t) for t in tc) / max(1, sum(t is not None for t in tc))",
             "FSR over runs: missed runs leave the denominator"),
    # grading.py
    Mutation("orchestrator/grading.py", r'reversed(list(re.finditer(r"\\(?:boxed|fbox)\s*", text)))',
             r're.finditer(r"\\(?:boxed|fbox)\s*", text)',
             "extract_answer takes the first boxed answer, not the last"),
    Mutation("orchestrator/grading.py",
             "    boxed = _last_boxed(text)\n    if boxed is not None:\n        return _clean(boxed) or None\n"
             "    if truncated:\n        return None\n",
             "    if truncated:\n        return None\n"
             "    boxed = _last_boxed(text)\n    if boxed is not None:\n        return _clean(boxed) or None\n",
             "extract_answer: a truncated output loses its boxed answer too"),
    Mutation("orchestrator/grading.py", "text[stated[-1].end():]", "text[stated[0].end():]",
             'extract_answer reads the first "answer is", not the last'),
    # results.py
    Mutation("orchestrator/results.py", "        self._file.flush()\n        os.fsync(self._file.fileno())\n",
             "        self._file.flush()\n",
             "result store appends without fsync"),
    Mutation("orchestrator/results.py",
             "break  # torn tail", "pass  # torn tail",
             "result store accepts a last line without its newline (a torn write that parses)"),
    Mutation("orchestrator/results.py",
             "            with open(self.path, \"r+b\") as f:\n                f.truncate(good_end)\n",
             "            pass\n",
             "result store keeps the torn tail, so the next append is glued to it"),
    Mutation("orchestrator/results.py", "return [self.rows[k] for k in keys if k in self.rows]",
             "return [row for key, row in self.rows.items() if key in set(keys)]",
             "ResultStore.select returns rows in file order, not in the order asked"),
)

# A copy whose `import orchestrator` came from elsewhere would let every mutation survive.
CANARY = Mutation("orchestrator/stats.py", "import numpy as np\n",
                  "import numpy as np\n\nraise ImportError('seeded canary')\n", "canary: raises at import")


def pristine_copy(dest: Path) -> None:
    """The tracked files of the working tree, copied to `dest`."""
    listed = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z"], capture_output=True, check=True).stdout
    for rel in filter(None, listed.decode().split("\0")):
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel, follow_symlinks=False)


def run_tests(copy: Path, timeout_s: float) -> tuple[bool, str]:
    """(passed, first failing test or the reason) for FAST_TESTS run in `copy`."""
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")  # no stale bytecode of a restored file
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    env.setdefault("OMP_NUM_THREADS", "1")
    env.pop("PYTHONPATH", None)  # nothing but the copy may provide `orchestrator`
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *FAST_TESTS]
    # Own session so a timeout kills the whole group (pytest and any worker it started).
    proc = subprocess.Popen(cmd, cwd=copy, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return False, f"timeout after {timeout_s:.0f} s"
    if proc.returncode == 0:
        return True, ""
    failed = [line.split(" - ")[0] for line in out.splitlines() if line.startswith(("FAILED ", "ERROR "))]
    return False, failed[0] if failed else f"exit {proc.returncode}: {out.strip().splitlines()[-1:]}"


def seeded(copy: Path, mutation: Mutation, timeout_s: float) -> tuple[bool, str]:
    """run_tests with `mutation` applied; the file is restored afterwards."""
    path = copy / mutation.file
    original = path.read_text()
    if original.count(mutation.old) != 1:
        raise SystemExit(f"{mutation.file}: the old text of {mutation.description!r} occurs "
                         f"{original.count(mutation.old)} times, not once")
    path.write_text(original.replace(mutation.old, mutation.new))
    try:
        return run_tests(copy, timeout_s)
    finally:
        path.write_text(original)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="", help="keep mutations whose file or description holds this")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per test run")
    ap.add_argument("--mutations", default="",
                    help='JSON list of {"file", "old", "new", "description"} used instead of MUTATIONS')
    args = ap.parse_args()
    mutations = ([Mutation(**m) for m in json.loads(Path(args.mutations).read_text())] if args.mutations
                 else MUTATIONS)
    chosen = [m for m in mutations if args.only in m.file or args.only in m.description]
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="seeded-bugs-") as tmp:
        copy = Path(tmp)
        pristine_copy(copy)
        passed, why = run_tests(copy, args.timeout)
        if not passed:
            raise SystemExit(f"the unmutated copy fails its tests ({why}): nothing to measure")
        print(f"unmutated copy passes ({time.time() - started:.0f} s)", flush=True)
        if seeded(copy, CANARY, args.timeout)[0]:
            raise SystemExit("a module raising at import went unnoticed: the tests do not import the copy")
        survived = []
        for m in chosen:
            passed, why = seeded(copy, m, args.timeout)
            if passed:
                survived.append(f"{m.file}: {m.description}")
            module = m.file.removeprefix("orchestrator/")
            print(f"{module:24} {'SURVIVED' if passed else 'caught':8} {why[:70]:70} {m.description}", flush=True)
    n = len(chosen)
    print(f"{n - len(survived)}/{n} caught in {time.time() - started:.0f} s")
    print(json.dumps({"benchmark": "seeded_bugs", "mutations": n, "caught": n - len(survived),
                      "catch_rate": round((n - len(survived)) / n, 3) if n else None, "survived": survived}))


if __name__ == "__main__":
    main()
