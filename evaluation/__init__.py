"""Scoring and the evaluation loop."""
