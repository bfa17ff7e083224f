"""Bark Studio: the product (workspace, database, curation, voices, listening, experiments, CLI, UI)."""
