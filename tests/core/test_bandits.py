"""The bandit policies on synthetic bandits with known means, their JSON state and registry,
and a cross-check against MABWiser.  Small horizons: the whole file runs in a few seconds."""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import pytest

from servelab.core.bandits import (
    BANDITS,
    UCB1,
    ChangeDetect,
    Context,
    EpsilonGreedy,
    LinUCB,
    Thompson,
    load_bandit,
    make_bandit,
)
from servelab.core.bandits.base import BanditPolicy

MEANS = np.array([0.3, 0.4, 0.5, 0.6, 0.8])
ContextFn = Callable[[int], Context | None]


def play(policy: BanditPolicy, means: Callable[[int], np.ndarray], steps: int, seed: int,
         noise: str = "gaussian", contexts: ContextFn = lambda t: None) -> np.ndarray:
    """Run ``policy`` for ``steps`` decisions; rewards are Gaussian (sd 0.1) or Bernoulli around
    ``means(t)``.  Returns the arms played."""
    rng = np.random.default_rng(seed)
    draws = rng.normal(0.0, 0.1, steps) if noise == "gaussian" else rng.random(steps)
    arms = np.empty(steps, dtype=np.int64)
    for t in range(steps):
        m, ctx = means(t), contexts(t)
        arm = policy.select(ctx)
        reward = m[arm] + draws[t] if noise == "gaussian" else float(draws[t] < m[arm])
        policy.update(arm, float(reward), ctx)
        arms[t] = arm
    return arms


def recovery(arms: np.ndarray, best: int, span: int = 50) -> int:
    """Decisions until the new best arm holds a majority of a ``span``-decision window."""
    share = np.convolve(arms == best, np.ones(span) / span, mode="valid")
    hit = np.flatnonzero(share > 0.5)
    return int(hit[0]) if len(hit) else len(arms)


# -- stationary ------------------------------------------------------------------------------

SUBLINEAR = ["ucb1", "thompson", "linucb", "change_detect", "switch_aware"]
FORGETTING = ["epsilon_greedy", "sw_ucb", "discounted_ucb"]  # explore at a constant rate


def test_every_policy_is_classified():
    assert sorted(SUBLINEAR + FORGETTING) == sorted(BANDITS)


@pytest.mark.parametrize("name", list(BANDITS))
def test_stationary_regret(name):
    """On a stationary Gaussian bandit every policy pulls the best arm most and its regret over
    the second half is far below random's; the policies that never forget are sublinear (the
    second half's regret well under the first's), the others pay a constant exploration rate
    (the second half no worse than the first)."""
    steps, half = 2000, 1000
    random_half = (MEANS.max() - MEANS.mean()) * half
    for seed in range(2):
        arms = play(make_bandit(name, len(MEANS), seed), lambda t: MEANS, steps, seed)
        regret = MEANS.max() - MEANS[arms]
        first, second = regret[:half].sum(), regret[half:].sum()
        assert np.bincount(arms, minlength=len(MEANS)).argmax() == MEANS.argmax()
        assert second < 0.5 * random_half
        if name in SUBLINEAR:
            assert second < 0.6 * first, (first, second)
        else:
            assert second < 1.1 * first + 5, (first, second)


# -- piecewise stationary --------------------------------------------------------------------

AFTER = np.array([0.3, 0.4, 0.5, 0.85, 0.45])  # the best arm (4) drops, arm 3 becomes best
CHANGE, END = 1500, 2300


def _piecewise(t: int) -> np.ndarray:
    return MEANS if t < CHANGE else AFTER


def _shifting_context(t: int) -> Context:
    return Context(rate=50.0 if t < CHANGE else 150.0, fast=0.6, medium=0.3, slow=0.1)


def _recoveries(name: str, contexts: ContextFn = lambda t: None) -> list[int]:
    out = []
    for seed in range(4):
        arms = play(make_bandit(name, len(MEANS), seed), _piecewise, END, seed, "bernoulli",
                    contexts)
        out.append(recovery(arms[CHANGE:], int(AFTER.argmax())))
    return out


@pytest.mark.parametrize("name", ["sw_ucb", "discounted_ucb", "change_detect"])
def test_non_stationary_policies_recover(name):
    """After the best arm changes (Bernoulli rewards, 1500 decisions in), the non-stationary
    policies give the new best arm a majority within 150 decisions (median of 4 seeds); the
    change detector is fed the workload shift that caused it."""
    contexts: ContextFn = _shifting_context if name == "change_detect" else (lambda t: None)
    assert np.median(_recoveries(name, contexts)) <= 150


def test_thompson_recovers_much_later():
    """Stationary Thompson sampling's posterior has concentrated: it takes far longer than the
    non-stationary policies' bound to follow the change (median over 4 seeds)."""
    assert np.median(_recoveries("thompson")) >= 200


def test_epsilon_greedy_misses_a_neglected_arm_turning_best():
    """ε-greedy only revisits an arm by its ε draws: when a long-neglected bad arm becomes the
    best, it has not followed after 800 decisions, where sliding-window UCB has."""
    after = np.array([0.9, 0.4, 0.5, 0.6, 0.3])

    def means(t: int) -> np.ndarray:
        return MEANS if t < CHANGE else after

    shares = {}
    for name in ("epsilon_greedy", "sw_ucb"):
        arms = [play(make_bandit(name, 5, s), means, END, s, "bernoulli")[CHANGE:] for s in range(3)]
        shares[name] = np.mean([np.mean(a[-300:] == 0) for a in arms])
    assert shares["sw_ucb"] > 0.6 > 0.3 > shares["epsilon_greedy"], shares


# -- change detection ------------------------------------------------------------------------

def test_feature_detector_restarts_once_on_a_shift_and_ignores_noise():
    """Rate noise of a Poisson count at ~100 req/s and mix noise of ±0.03 never fire; a 3x rate
    step fires exactly one restart, two windows later (``confirm``), which forgets every arm."""
    rng = np.random.default_rng(0)
    policy = ChangeDetect(UCB1(5, 0))
    for t in range(300):
        rate = rng.poisson(100 if t < 200 else 300)
        fast = 0.6 + rng.uniform(-0.03, 0.03)
        ctx = Context(rate=float(rate), fast=fast, medium=0.9 - fast, slow=0.1)
        arm = policy.select(ctx)
        if t == 201:
            assert policy.restarts == 1 and "workload changed (rate" in policy.last_reason
            assert policy.last_reason.endswith("untried")
        policy.update(arm, float(MEANS[arm]), ctx)
    assert policy.restarts == 1
    assert policy.arm_resets == 0


def test_reward_detector_resets_only_the_shifted_arm():
    policy = ChangeDetect(UCB1(3, 0), features=(), reward_window=10, reward_threshold=0.2)
    for _ in range(10):
        for arm in range(3):
            policy.update(arm, 0.5 + 0.1 * arm)
    for _ in range(5):
        policy.update(2, 0.1)  # arm 2 drops from 0.7 to 0.1: it fires after two of these
    assert policy.arm_resets == 1
    assert policy.inner.values() == pytest.approx([0.5, 0.6, 0.1])  # arm 2 forgot its 0.7s
    assert policy.inner.state()["counts"] == [10, 10, 3]
    policy.select()
    assert policy.last_reason.startswith("arm 2's reward moved")


# -- contextual ------------------------------------------------------------------------------

def test_linucb_learns_a_context_to_arm_mapping():
    """Two workloads with different best arms: LinUCB ends up playing each one's best arm, which
    no context-free policy can do."""
    quiet = Context(rate=20.0, fast=1.0, medium=0.0, slow=0.0, cpu=0.2)
    busy = Context(rate=400.0, fast=0.0, medium=0.2, slow=0.8, cpu=0.9, p99_s=1.5)
    means = {quiet: np.array([0.8, 0.5, 0.3, 0.4]), busy: np.array([0.2, 0.5, 0.9, 0.4])}
    rng = np.random.default_rng(3)
    order = [quiet if u < 0.5 else busy for u in rng.random(1200)]
    policy = LinUCB(4, seed=0, alpha=0.5)
    picks: dict[Context, list[int]] = {quiet: [], busy: []}
    for t, ctx in enumerate(order):
        arm = policy.select(ctx)
        policy.update(arm, float(means[ctx][arm] + rng.normal(0, 0.05)), ctx)
        if t >= 900:
            picks[ctx].append(arm)
    for ctx, m in means.items():
        assert int(policy.predict(ctx).argmax()) == int(m.argmax())
        assert np.mean(np.array(picks[ctx]) == m.argmax()) > 0.8


# -- JSON state and registry -----------------------------------------------------------------

def _policy(name: str, seed: int) -> BanditPolicy:
    if name == "switch_aware":  # a non-uniform cost matrix must survive the round trip too
        return make_bandit(name, 6, seed, inner="thompson", cost=lambda i, j: 0.5 * abs(i - j))
    if name == "change_detect":
        return make_bandit(name, 6, seed, inner={"policy": "sw_ucb", "params": {"window": 40}})
    return make_bandit(name, 6, seed)


def _context(t: int) -> Context:
    return Context(rate=50.0 + 100.0 * (t >= 120) + t % 7, fast=0.5, medium=0.3, slow=0.2,
                   cpu=(t % 10) / 10)


@pytest.mark.parametrize("name", list(BANDITS))
def test_json_round_trip_continues_identically(name):
    """A policy saved to JSON mid-run and loaded back makes exactly the same next choices
    (the random generator's state travels in the JSON) and ends in the same state."""
    rng = np.random.default_rng(1)
    means = rng.uniform(0.2, 0.8, 6)
    original = _policy(name, seed=7)
    for t in range(150):
        arm = original.select(_context(t))
        original.update(arm, float(means[arm] + rng.normal(0, 0.1)), _context(t))
    copy = load_bandit(json.loads(json.dumps(original.to_dict())))
    assert type(copy) is type(original) and copy.params() == original.params()
    for t in range(150, 300):
        reward_noise = float(rng.normal(0, 0.1))
        a, b = original.select(_context(t)), copy.select(_context(t))
        assert a == b and original.last_reason == copy.last_reason
        original.update(a, float(means[a]) + reward_noise, _context(t))
        copy.update(b, float(means[b]) + reward_noise, _context(t))
    assert json.dumps(copy.to_dict()) == json.dumps(original.to_dict())


@pytest.mark.parametrize("name", list(BANDITS))
def test_contract(name):
    """select returns an arm with a reason; values has one entry per arm; reset forgets one
    arm or all; the same seed and rewards give the same choices."""
    runs = []
    for _ in range(2):
        policy = _policy(name, seed=3)
        arms = play(policy, lambda t: np.linspace(0.2, 0.7, 6), 60, seed=0, contexts=_context)
        runs.append(arms.tolist())
        assert ((arms >= 0) & (arms < 6)).all() and policy.last_reason
        assert policy.values().shape == (6,)
    assert runs[0] == runs[1]
    policy.reset([2])
    values = policy.values()
    assert np.isnan(values[2]) and not np.isnan(values[[0, 1, 3, 4, 5]]).all()
    policy.reset()
    assert np.isnan(policy.values()).all()


def test_registry_names_and_errors():
    assert set(BANDITS) == {"epsilon_greedy", "ucb1", "thompson", "sw_ucb", "discounted_ucb",
                            "change_detect", "linucb", "switch_aware"}
    with pytest.raises(ValueError, match="valid: epsilon_greedy"):
        make_bandit("nope", 3)
    d = make_bandit("ucb1", 3).to_dict()
    with pytest.raises(ValueError, match="cannot be loaded"):
        make_bandit("thompson", 3).restore(d)
    assert isinstance(make_bandit("switch_aware", 4, inner="thompson").inner, Thompson)
    eg = EpsilonGreedy(27)
    assert (eg.epsilon, eg.window) == (0.1, 100)  # the seed's ε-greedy


# -- MABWiser cross-check --------------------------------------------------------------------

def _bernoulli_log(n_arms: int, steps: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    decisions = rng.integers(n_arms, size=steps)
    rewards = (rng.random(steps) < MEANS[:n_arms][decisions]).astype(float)
    return decisions, rewards


def test_same_data_same_estimates_as_mabwiser():
    """Fed the same log, ε-greedy's means, UCB1's upper bounds and Thompson's Beta posteriors
    equal MABWiser's (its EpsilonGreedy(0), UCB1(alpha=1), ThompsonSampling)."""
    mw = pytest.importorskip("mabwiser.mab")
    lp = mw.LearningPolicy
    decisions, rewards = _bernoulli_log(4, 400, seed=2)
    arms = list(range(4))
    ours_eg, ours_ucb, ours_ts = EpsilonGreedy(4, window=1000), UCB1(4), Thompson(4)
    for d, r in zip(decisions, rewards, strict=True):
        for p in (ours_eg, ours_ucb, ours_ts):
            p.update(int(d), float(r))
    theirs = {}
    for key, policy in (("eg", lp.EpsilonGreedy(epsilon=0.0)), ("ucb", lp.UCB1(alpha=1.0)),
                        ("ts", lp.ThompsonSampling())):
        mab = mw.MAB(arms, policy, seed=0)
        mab.fit(decisions, rewards)
        theirs[key] = mab
    eg = theirs["eg"].predict_expectations()
    ucb = theirs["ucb"].predict_expectations()
    assert ours_eg.values() == pytest.approx([eg[a] for a in arms])
    assert ours_ucb.index() == pytest.approx([ucb[a] for a in arms])
    ts = theirs["ts"]._imp  # MABWiser keeps the Beta parameters on its implementation object
    alpha = 1.0 + ours_ts._success
    beta = 1.0 + ours_ts._n - ours_ts._success
    assert alpha == pytest.approx([ts.arm_to_success_count[a] for a in arms])
    assert beta == pytest.approx([ts.arm_to_fail_count[a] for a in arms])


def test_online_regret_comparable_to_mabwiser():
    """Played online on a stationary Bernoulli bandit (3 seeds pooled), each of ε-greedy / UCB1
    / Thompson pulls the same best arm most in the second half as MABWiser's does, and its mean
    regret is within 1.5x (+10) of MABWiser's."""
    mw = pytest.importorskip("mabwiser.mab")
    lp = mw.LearningPolicy
    steps, arms = 600, list(range(len(MEANS)))
    pairs = [(EpsilonGreedy, lp.EpsilonGreedy(epsilon=0.1)), (UCB1, lp.UCB1(alpha=1.0)),
             (Thompson, lp.ThompsonSampling())]
    for ours_cls, their_policy in pairs:
        played: dict[str, list[np.ndarray]] = {"ours": [], "theirs": []}
        for seed in range(3):
            u = np.random.default_rng(seed).random(steps)
            ours = ours_cls(len(MEANS), seed)
            mab = mw.MAB(arms, their_policy, seed=seed)
            mab.fit(np.array(arms), (u[: len(arms)] < MEANS).astype(float))  # one pull each
            a_s, b_s = [], []
            for t in range(steps):
                a = ours.select()
                ours.update(a, float(u[t] < MEANS[a]))
                b = int(mab.predict())
                mab.partial_fit([b], [float(u[t] < MEANS[b])])
                a_s.append(a)
                b_s.append(b)
            played["ours"].append(np.array(a_s))
            played["theirs"].append(np.array(b_s))
        regret = {k: np.mean([(MEANS.max() - MEANS[a]).sum() for a in v])
                  for k, v in played.items()}
        best = {k: int(np.bincount(np.concatenate([a[steps // 2:] for a in v])).argmax())
                for k, v in played.items()}
        assert best["ours"] == best["theirs"] == MEANS.argmax(), (ours_cls.name, best)
        assert regret["ours"] <= 1.5 * regret["theirs"] + 10, (ours_cls.name, regret)
