"""Benchmarks (`make bench`): figures and ratios against references measured in the same run."""

# The tool's process settings (numpy's OpenBLAS at one thread) before the generators load numpy:
# a bench that measures its own CPU (bench.parse_cost) measures what the tool runs.
import conflictradar  # noqa: F401
