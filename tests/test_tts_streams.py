"""Every tts unit draws from its own random stream, and the intervals the sweep reports cover the
truth at their nominal rate when problems are independent."""
import numpy as np
import pytest
from scipy import stats as sps

from actors.policy import row_uniforms
from orchestrator.experiments import load_config
from orchestrator.grading import answers_equal, extract_answer
from orchestrator.protocols import GenerateResult, Sample, ScoreResult
from orchestrator.search import derive_seed, run_many
from orchestrator.search.subsample import subsample_outcomes
from orchestrator.stats import bootstrap_mean_interval, two_stage_bootstrap_interval
from orchestrator.tts import experiment as tts


def first_seeds(cfg, kind="search", method="beam", n=4):
    """The seed of the first policy request of each problem's unit."""
    items = {item.id: item for item in tts.load_items(cfg.dataset)}
    fmt = tts.prompt_format(cfg)
    seeds = []
    for unit in tts.units(cfg):
        if unit["kind"] == kind and unit.get("method") == method and unit["n"] == n:
            batch = next(tts.strategy(unit, items[unit["problem"]].question, cfg, fmt))
            seeds.append(batch.requests[0].seed)
    return seeds


def test_first_token_choices_are_uncorrelated_across_problems():
    # A first token "leaves the top token" when its uniform passes the top token's probability.
    choices = []
    for seed in range(60):
        cfg = load_config("tts-smoke", [f"seed={seed}", "dataset.num_problems=25", "methods=[beam]"])
        u = row_uniforms(np.array(first_seeds(cfg), dtype=np.uint64), 0)
        choices.append(u > 0.6)
    choices = np.array(choices, dtype=float)  # sweeps x problems
    assert choices.shape == (60, 25)
    corr = np.corrcoef(choices.T)
    off_diagonal = corr[~np.eye(25, dtype=bool)]
    assert abs(off_diagonal.mean()) < 0.03  # zero within noise (one pair's sd is about 0.13)
    assert np.abs(off_diagonal).max() < 0.6
    assert sps.kstest(row_uniforms(np.array(first_seeds(cfg), dtype=np.uint64), 0), "uniform").pvalue > 1e-3


def test_no_two_units_share_a_stream():
    cfg = load_config("tts-smoke", ["dataset.num_problems=10"])
    seeds = [tts.stream_seed(u) for u in tts.units(cfg)]
    assert len(set(seeds)) == len(seeds)


class CoinPolicy:
    """A policy that answers problem `p<rate>` right with that probability, drawing each sample
    from its own seed through the real sampler's hash (as the backends do)."""

    def generate(self, requests):
        out = []
        for r in requests:
            rate = float(r.prompt.split("p=")[1].split()[0])
            u = row_uniforms(np.arange(r.seed, r.seed + r.n, dtype=np.uint64), 0)
            samples = [Sample(r"a) \boxed{1}" if x < rate else r"a) \boxed{0}", "eos", 3) for x in u]
            out.append(GenerateResult(samples, prompt_tokens=4, generated_tokens=3 * r.n))
        return out


class FlatScorer:
    def score(self, requests):
        return [ScoreResult([0.5] * len(r.steps)) for r in requests]


def reported_interval(cfg, rates, method):
    """The sweep's interval of `method`@1 for problems with these pass rates: the sampling units'
    strategies run on CoinPolicy, then the summary's own subsampling and interval."""
    fmt = tts.prompt_format(cfg)
    units = [{"problem": f"q{i}", "kind": "sampling", "n": max(cfg.budgets), "seed": cfg.seed}
             for i in range(len(rates))]
    strategies = [tts.strategy(u, f"p={rate} solve", cfg, fmt) for u, rate in zip(units, rates)]
    results = run_many(strategies, CoinPolicy(), FlatScorer())
    draws = []
    for u, res in zip(units, results):
        correct = [s.answer == "1" for s in res.solutions]
        outcomes = subsample_outcomes([s.answer for s in res.solutions], [0.5] * len(correct), correct, [1],
                                      answers_equal, num_resamples=cfg.resamples,
                                      seed=derive_seed(cfg.seed, u["problem"], "subsample"))
        draws.append(outcomes[1][method])
    return two_stage_bootstrap_interval(draws, seed=cfg.seed, n_boot=600)


def test_reported_intervals_cover_the_truth():
    # Pass rates drawn per sweep from a population with mean 0.5: the truth majority@1 estimates.
    covered, trials = 0, 300
    for trial in range(trials):
        cfg = load_config("tts-smoke", [f"seed={trial}", "budgets=[4]", "methods=[majority]", "resamples=4"])
        rates = np.random.default_rng(10_000 + trial).uniform(0.1, 0.9, size=40).round(3)
        _, low, high = reported_interval(cfg, rates, "majority")
        covered += low <= 0.5 <= high
    assert covered / trials >= 0.93, covered / trials


def test_sampling_intervals_do_not_collapse_at_the_largest_budget():
    # One distinct draw per problem (N = N_max): the two-stage bootstrap is the plain one over
    # problems, not a point.
    outcomes = np.repeat(np.array([[1.0], [0.0], [1.0], [1.0], [0.0]] * 8), 16, axis=1)
    mean, low, high = two_stage_bootstrap_interval(outcomes, seed=3)
    plain = bootstrap_mean_interval(outcomes[:, 0], seed=3)
    assert mean == pytest.approx(0.6) and high - low > 0.2
    assert (low, high) == pytest.approx(plain[1:], abs=0.04)


def test_subsample_noise_widens_the_interval():
    rng = np.random.default_rng(0)
    outcomes = (rng.random((30, 32)) < 0.5).astype(float)  # every problem at 0.5, pure subsample noise
    _, low, high = two_stage_bootstrap_interval(outcomes, seed=1)
    averaged = bootstrap_mean_interval(outcomes.mean(axis=1), seed=1)
    assert high - low > averaged[2] - averaged[1]


def test_extract_answer_reads_the_coin_texts():
    assert extract_answer(r"a) \boxed{1}") == "1"
