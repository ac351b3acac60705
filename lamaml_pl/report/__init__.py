"""Aggregate runs (results.json) into the paper's tables and figures: ``python -m lamaml_pl.report DIR``."""
