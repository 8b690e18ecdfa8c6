"""`make bench`: the product's own figures, measured in the local stack with the real
release binaries. Run as `python -m tests.bench [--quick]`; see BENCHMARKS.md for the method."""
