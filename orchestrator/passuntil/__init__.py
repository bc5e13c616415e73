"""PassUntil evaluation (Hu et al., 2023): sampling rule, per-instance estimates, scaling-law fits."""
