"""The meta-scheduler: arms (server configurations), rewards per decision window, training and
evaluation of the bandit policies (core/bandits) in simulation."""
