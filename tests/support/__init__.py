"""Helpers shared by the tests and the benchmarks (`bench/`): one copy of each, imported by both."""
