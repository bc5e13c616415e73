"""The AI-Scientist loop on a template: ideas -> up to max_runs runs with failure feedback ->
notes -> plots, one work unit per idea (see experiment.py for the flow)."""
