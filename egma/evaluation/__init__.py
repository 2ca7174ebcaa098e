"""Downstream evaluation: zero-shot classification, retrieval, linear probing and localisation,
with bootstrap confidence intervals and trivial baselines (DESIGN section 5)."""
