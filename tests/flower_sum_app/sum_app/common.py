"""The vector each node contributes: a function of its node id, session and dimension,
so the server can check the secure sum without ever seeing one."""

from __future__ import annotations

import numpy as np


def update_of(node_id: int, session: int, dimension: int) -> np.ndarray:
    """Node ``node_id``'s update in ``session``: values in [-1, 1]."""
    phase = (node_id % 100_003) * 1e-3 + session * 0.7
    return np.sin(np.arange(dimension, dtype=np.float64) * 0.013 + phase)
