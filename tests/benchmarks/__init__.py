"""Benchmarks: run as scripts (``python -m tests.benchmarks.<name>``), never in the test run."""
