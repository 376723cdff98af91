"""Katib suggestion service: surrogate-model (GP / random forest), grid and random search."""
