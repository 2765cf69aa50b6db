"""Projectors: per slice, how events change read-model rows."""
