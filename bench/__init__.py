"""Benchmarks: one command each (`python -m bench.NAME`), against the local vendor stand-ins."""
