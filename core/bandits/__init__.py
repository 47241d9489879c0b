"""Bandit policies that pick a server configuration per decision window (see base.py).

``BANDITS`` maps each policy's name to its class; ``make_bandit(name, n_arms, seed, **params)``
builds a fresh one and ``load_bandit(d)`` the one a ``to_dict()`` describes (JSON, never pickle).

=================  ==========================================================================
name               policy
=================  ==========================================================================
epsilon_greedy     the seed's baseline: ε = 0.1, mean of each arm's last 100 rewards
ucb1               UCB1 (stationary)
thompson           Thompson sampling, Beta (Bernoulli trick) or Gaussian posterior (stationary)
sw_ucb             sliding-window UCB (non-stationary)
discounted_ucb     discounted UCB, ``gamma`` per decision (non-stationary)
change_detect      wrapper: restart on workload-feature shifts, reset an arm on reward shifts
linucb             disjoint LinUCB over ``Context.vector()`` (contextual)
switch_aware       wrapper: minimum dwell, hysteresis and switch cost vs estimated gain
=================  ==========================================================================

Wrappers take their inner policy as ``inner=`` (a name, a ``{"policy", "params"}`` dict or a
policy), e.g. ``make_bandit("switch_aware", 27, inner="sw_ucb", cost=2.0)``.
"""

from servelab.core.bandits.base import BanditPolicy, Context
from servelab.core.bandits.change_detect import ChangeDetect
from servelab.core.bandits.discounted import DiscountedUCB
from servelab.core.bandits.epsilon_greedy import EpsilonGreedy
from servelab.core.bandits.linucb import LinUCB
from servelab.core.bandits.registry import BANDITS, load_bandit, make_bandit
from servelab.core.bandits.sw_ucb import SlidingWindowUCB
from servelab.core.bandits.switching import SwitchAware
from servelab.core.bandits.thompson import Thompson
from servelab.core.bandits.ucb1 import UCB1

BANDITS.update({cls.name: cls for cls in (
    EpsilonGreedy, UCB1, Thompson, SlidingWindowUCB, DiscountedUCB, ChangeDetect, LinUCB,
    SwitchAware,
)})

__all__ = [
    "BANDITS", "BanditPolicy", "ChangeDetect", "Context", "DiscountedUCB", "EpsilonGreedy",
    "LinUCB", "SlidingWindowUCB", "SwitchAware", "Thompson", "UCB1", "load_bandit",
    "make_bandit",
]
