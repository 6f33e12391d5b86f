"""Differential privacy: accounting, DP-SGD through Opacus, client-level DP."""
