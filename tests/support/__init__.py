"""Helpers for the integration and e2e tests: round-trip counting and real server processes."""
