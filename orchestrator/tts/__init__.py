"""The test-time-compute sweep (Snell et al. 2024): config, work units, statistics, plots."""
