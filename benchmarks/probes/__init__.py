"""Probes: one-question measurements behind a default or a lever (run as `python -m benchmarks.probes.<name>`)."""
