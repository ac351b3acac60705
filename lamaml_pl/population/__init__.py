"""Populations: many configs of one learner trained as one batched model (docs/sweeps.md, "Populations")."""
