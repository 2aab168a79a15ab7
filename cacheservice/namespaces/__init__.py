"""Per-namespace configuration: the model, and the per-process registry that serves it."""
