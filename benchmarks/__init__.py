"""TuneForge benchmarks: run each script as a module from the repository root, e.g.
`python -m benchmarks.bench_finetune`; shared helpers live in `benchmarks.common`. See benchmarks/README.md."""
