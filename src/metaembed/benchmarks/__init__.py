"""Measured benchmarks, run as `metaembed bench ...`."""
