"""Secure sums of known vectors over a Flower deployment."""
