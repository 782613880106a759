"""Benchmarks (`make bench`): figures and ratios against references measured in the same run."""
