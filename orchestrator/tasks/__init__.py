"""Synthetic tasks with checkable step-by-step solutions (the tiny world's `arith`)."""
