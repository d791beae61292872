"""Benchmark and fault scripts; `harness` is what they (and tests/load) share."""
