"""Benchmarks and their recorded results (see bench/README.md); run with ``python -m bench``."""
